"""Reading a biller's confirmation file back against what a window remitted.

The biller (the water plant) confirms the bills it booked as paid: a CSV with at least
`bill_number` and `amount`. Each remitted bill is matched, missing from the confirmation, or
confirmed with another amount; a confirmed bill the window did not remit is extra. Every
difference goes to the window's exceptions report. The same file read twice changes nothing.
"""

from __future__ import annotations

import csv
import datetime as dt
import hashlib
import io
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import delete, select

from cardsvc.audit import service as audit
from cardsvc.context import Ctx
from cardsvc.errors import InvalidInput
from settlement.bills.models import Bill, BillerReconciliation, BillPayment
from settlement.bills.service import get_biller
from settlement.clearing import windows
from settlement.clearing.errors import WindowNotReady
from settlement.clearing.files import File, _csv
from settlement.clearing.models import ClearingException, ClearingFile, WindowStatus

RECONCILIATION_REASONS = ("remittance_missing", "remittance_amount_differs",
                          "remittance_extra")


class ConfirmationRefused(InvalidInput):
    code = "confirmation_refused"
    title = "The confirmation file has errors; nothing was reconciled"


@dataclass
class Reconciliation:
    matched: int = 0
    missing: list[dict[str, Any]] = field(default_factory=list)
    extra: list[dict[str, Any]] = field(default_factory=list)
    amount_differs: list[dict[str, Any]] = field(default_factory=list)
    duplicate: bool = False


def _parse(content: bytes) -> dict[str, int]:
    try:
        text = content.decode("utf-8-sig")
    except UnicodeDecodeError:
        raise ConfirmationRefused("the file is not UTF-8 text") from None
    try:
        return _parse_rows(csv.DictReader(io.StringIO(text, newline="")))
    except csv.Error as exc:
        raise ConfirmationRefused(f"the file is not readable CSV: {exc}") from None


def _parse_rows(reader: csv.DictReader[str]) -> dict[str, int]:
    if not {"bill_number", "amount"} <= set(reader.fieldnames or []):
        raise ConfirmationRefused("the header must name bill_number and amount")
    out: dict[str, int] = {}
    errors = []
    for line, row in enumerate(reader, start=2):
        number = (row.get("bill_number") or "").strip().upper()
        amount = (row.get("amount") or "").strip()
        if len(number) != 16 or not number.isalnum():
            errors.append({"line": line, "field": "bill_number", "message": "16 characters"})
        elif not (amount.isascii() and amount.isdigit()) or len(amount) > 10:
            errors.append({"line": line, "field": "amount", "message": "whole NT dollars"})
        elif number in out:
            errors.append({"line": line, "field": "bill_number", "message": "appears twice"})
        else:
            out[number] = int(amount)
    if errors:
        raise ConfirmationRefused(f"{len(errors)} error(s)", errors=errors[:200])
    return out


def reconcile(ctx: Ctx, day: dt.date, biller_id: int, content: bytes) -> Reconciliation:
    biller = get_biller(ctx, biller_id)
    window = windows.get(ctx, day)
    if window.status not in (WindowStatus.CLEARED, WindowStatus.SETTLED):
        raise WindowNotReady(f"the window of {day} is {window.status}: clear it first")
    digest = hashlib.sha256(content).hexdigest()
    confirmed = _parse(content)
    result = Reconciliation()
    ours = {b.bill_number: p.amount for p, b in ctx.db.execute(
        select(BillPayment, Bill).join(Bill, Bill.id == BillPayment.bill_id).where(
            BillPayment.window_id == window.id, BillPayment.biller_id == biller.id))}
    for number in sorted(ours):
        if number not in confirmed:
            result.missing.append({"bill_number": number, "remitted": ours[number]})
        elif confirmed[number] != ours[number]:
            result.amount_differs.append({"bill_number": number, "remitted": ours[number],
                                          "confirmed": confirmed[number]})
        else:
            result.matched += 1
    result.extra = [{"bill_number": n, "confirmed": confirmed[n]}
                    for n in sorted(set(confirmed) - set(ours))]
    earlier = ctx.db.scalar(select(BillerReconciliation).where(
        BillerReconciliation.window_id == window.id, BillerReconciliation.biller_id == biller.id,
        BillerReconciliation.content_sha256 == digest))
    if earlier is not None:
        result.duplicate = True
        return result
    rec = BillerReconciliation(window_id=window.id, biller_id=biller.id, content_sha256=digest,
                               matched=result.matched, missing=len(result.missing),
                               extra=len(result.extra),
                               amount_differs=len(result.amount_differs),
                               reconciled_at=ctx.now)
    ctx.db.add(rec)
    ctx.db.flush()
    # The latest confirmation of a biller's window supersedes the earlier ones' differences
    # (their files and records stay).
    ctx.db.execute(delete(ClearingException).where(
        ClearingException.window_id == window.id,
        ClearingException.merchant_id == biller.merchant_id,
        ClearingException.reason.in_(RECONCILIATION_REASONS)))
    rows: list[list[object]] = []
    for reason, items, paid in (("remittance_missing", result.missing, True),
                                ("remittance_amount_differs", result.amount_differs, True),
                                ("remittance_extra", result.extra, False)):
        for item in items:
            detail = (f"biller {biller.code}, bill {item['bill_number']}: remitted "
                      f"{item.get('remitted', '-')}, confirmed {item.get('confirmed', '-')}")
            ctx.db.add(ClearingException(
                window_id=window.id, reason=reason, merchant_id=biller.merchant_id,
                amount=int(item.get("remitted", item.get("confirmed", 0))), paid=paid,
                detail=detail[:200]))
            rows.append([reason, item["bill_number"], item.get("remitted", ""),
                         item.get("confirmed", "")])
    f = File(f"reconciliation-{biller.code}-{rec.id}.csv", "text/csv",
             _csv(rows, ("difference", "bill_number", "remitted", "confirmed")))
    ctx.db.add(ClearingFile(window_id=window.id, name=f.name, media_type=f.media_type,
                            encrypted=False, content=f.content, sha256=f.sha256))
    audit.record(ctx, "clearing.reconcile", target_type="biller", target_id=biller.id,
                 detail={"date": day.isoformat(), "matched": result.matched,
                         "missing": len(result.missing), "extra": len(result.extra),
                         "amount_differs": len(result.amount_differs)})
    return result
