"""E-invoice refusals, each with its stable code."""

from __future__ import annotations

from cardsvc.errors import Conflict, DomainError, InvalidInput, NotFound


class BadInvoice(InvalidInput):
    code = "invoice_invalid"
    title = "The invoice is not valid"


class SellerMismatch(InvalidInput):
    code = "invoice_seller_mismatch"
    title = "The seller is not this merchant"


class NumberUsed(Conflict):
    code = "invoice_number_used"
    title = "This invoice number was already used"


class PeriodMismatch(InvalidInput):
    code = "invoice_period_mismatch"
    title = "The invoice date is outside the purchase's period"


class AmountMismatch(InvalidInput):
    code = "invoice_amount_mismatch"
    title = "The amount does not match the purchase"


class UnknownPurchase(NotFound):
    code = "invoice_unknown_purchase"
    title = "No such purchase of this merchant"


class InvoiceVoided(Conflict):
    code = "invoice_voided"
    title = "The invoice is voided"


class BadDraw(InvalidInput):
    code = "draw_invalid"
    title = "The draw file is not valid"


class NoDraw(NotFound):
    code = "draw_missing"
    title = "No draw imported for this period"


class BadBarcode(InvalidInput):
    code = "mobile_barcode_invalid"
    title = "Not a mobile barcode"


class AlreadyBound(Conflict):
    code = "carrier_already_bound"
    title = "The carrier is bound to a mobile barcode"


class BadSignature(DomainError):
    status = 401
    code = "binding_bad_signature"
    title = "Not signed by the mobile card"


class PlatformRefused(InvalidInput):
    """The MOF platform said no to a binding (a barcode it does not know, say)."""

    code = "mobile_barcode_refused"
    title = "The e-invoice platform refused the barcode"


class PlatformUnavailable(DomainError):
    """The MOF platform did not answer; nothing was changed, and asking again is safe."""

    status = 503
    code = "einvoice_platform_unavailable"
    title = "The e-invoice platform does not answer"
