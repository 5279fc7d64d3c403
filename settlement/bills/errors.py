"""Bill refusals, each with its stable code (see docs/water-bills.md)."""

from __future__ import annotations

from cardsvc.errors import Conflict, InvalidInput


class BillImportRefused(InvalidInput):
    code = "bill_import_refused"
    title = "The bill file has errors; nothing was imported"


class BillAlreadyPaid(Conflict):
    code = "bill_already_paid"
    title = "This bill is paid"


class BillOverdue(Conflict):
    code = "bill_overdue"
    title = "This bill is past its due date and grace period"


class PartialPayment(InvalidInput):
    code = "partial_payment"
    title = "A bill is paid in full or not at all"
