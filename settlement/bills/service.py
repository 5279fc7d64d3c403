"""Water bills and other government fees: billers, bill import, look-up, payment, receipts.

A biller is a registered merchant (the water plant) whose bills carry the three convenience-
store barcodes. A bill is paid once: the bill row is locked for the payment and
`bill_payments.bill_id` is unique. Money goes from the payer's purse (or from the collecting
store's payable, for cash taken at a convenience store) to the biller's payable account; the
daily clearing remits it.
"""

from __future__ import annotations

import base64
import csv
import datetime as dt
import hashlib
import hmac
import io
import json
import re
from dataclasses import dataclass
from typing import Any

from sqlalchemy import select

from cardsvc.audit import service as audit
from cardsvc.cards.errors import ChipPurse
from cardsvc.cards.models import Card
from cardsvc.cards.service import usable_for_money
from cardsvc.context import TAIPEI, Ctx
from cardsvc.errors import Conflict, NotFound
from cardsvc.ledger import codes
from cardsvc.ledger import service as ledger
from cardsvc.ledger.models import AccountKind
from cardsvc.security import signing
from merchants.pos import errors as e
from merchants.pos import qr
from merchants.pos import service as pos
from merchants.pos.models import PosKind, PosStatus, PosTransaction
from merchants.pos.schemas import CardPurchase
from merchants.registry.models import Merchant, Terminal
from settlement.bills import barcodes
from settlement.bills.errors import (
    BillAlreadyPaid,
    BillImportRefused,
    BillOverdue,
    PartialPayment,
)
from settlement.bills.models import Bill, Biller, BillImport, BillPayment, PaymentChannel
from settlement.bills.schemas import ReceiptCheck

IMPORT_FIELDS = ("account_number", "bill_number", "period", "amount", "due_date",
                 "payer_name")
MAX_IMPORT_ROWS = 200_000
ACCOUNT_NUMBER = re.compile(r"[0-9A-Z-]{4,20}")
_BILL_RE = re.compile(r"[0-9A-Z]{16}")
_PERIOD_RE = re.compile(r"[0-9]{2}(0[1-9]|1[0-2])")










def biller_code(biller_id: int) -> str:
    return codes.biller_code(biller_id)


def mask_name(name: str) -> str:
    """陳志明 → 陳○明; 林一 → 林○."""
    if len(name) <= 2:
        return name[:1] + "○"
    return name[0] + "○" * (len(name) - 2) + name[-1]


# --- billers and bills ----------------------------------------------------------------------


def create_biller(ctx: Ctx, merchant_id: int, code: str, collection_code: str,
                  grace_days: int) -> Biller:
    if ctx.db.get(Merchant, merchant_id) is None:
        raise NotFound(f"no merchant {merchant_id}")
    if ctx.db.scalar(select(Biller.id).where(
            (Biller.merchant_id == merchant_id) | (Biller.code == code))) is not None:
        raise Conflict(f"merchant {merchant_id} or code {code} is already a biller")
    b = Biller(merchant_id=merchant_id, code=code, collection_code=collection_code.upper(),
               grace_days=grace_days, created_at=ctx.now)
    ctx.db.add(b)
    ctx.db.flush()
    audit.record(ctx, "biller.create", target_type="biller", target_id=b.id,
                 detail={"merchant_id": merchant_id, "code": code})
    return b


def get_biller(ctx: Ctx, biller_id: int) -> Biller:
    b = ctx.db.get(Biller, biller_id)
    if b is None:
        raise NotFound(f"no biller {biller_id}")
    return b


@dataclass
class ImportResult:
    import_id: int
    rows: int
    amount: int
    duplicate: bool


def _parse_row(row: dict[str, str], line: int, seen: set[str],
               errors: list[dict[str, Any]]) -> dict[str, Any] | None:
    def bad(field: str, message: str) -> None:
        errors.append({"line": line, "field": field, "message": message})

    out: dict[str, Any] = {}
    account = (row.get("account_number") or "").strip().upper()
    if not ACCOUNT_NUMBER.fullmatch(account):
        bad("account_number", "4-20 letters, digits or -")
    number = (row.get("bill_number") or "").strip().upper()
    if not _BILL_RE.fullmatch(number):
        bad("bill_number", "16 letters or digits (slip segment 2)")
    elif number in seen:
        bad("bill_number", "appears twice in this file")
    period = (row.get("period") or "").strip()
    if not _PERIOD_RE.fullmatch(period):
        bad("period", "ROC YYMM, e.g. 1511")
    amount_text = (row.get("amount") or "").strip()
    if not (amount_text.isascii() and amount_text.isdigit()) or len(amount_text) > 12 \
            or not 0 < int(amount_text) <= 999_999_999:
        bad("amount", "whole NT dollars, 1 to 999,999,999")
    due_text = (row.get("due_date") or "").strip()
    try:
        due = dt.date.fromisoformat(due_text)
        if not dt.date(2011, 1, 1) <= due <= dt.date(2110, 12, 31):
            raise ValueError
    except ValueError:
        bad("due_date", "YYYY-MM-DD between 2011 and 2110 (the slip's ROC year)")
        due = None
    name = (row.get("payer_name") or "").strip()
    if not 0 < len(name) <= 60:
        bad("payer_name", "1-60 characters")
    if errors and errors[-1]["line"] == line:
        return None
    seen.add(number)
    out.update(account_number=account, bill_number=number, period=period,
               amount=int(amount_text), due_date=due, payer_name=name)
    return out


def import_bills(ctx: Ctx, biller_id: int, content: bytes) -> ImportResult:
    """All rows or none: a file with any bad row is refused with every error by line."""
    biller = get_biller(ctx, biller_id)
    digest = hashlib.sha256(content).hexdigest()
    earlier = ctx.db.scalar(select(BillImport).where(BillImport.biller_id == biller.id,
                                                     BillImport.content_sha256 == digest))
    if earlier is not None:
        return ImportResult(earlier.id, earlier.rows, earlier.amount, True)
    try:
        text = content.decode("utf-8-sig")
    except UnicodeDecodeError:
        raise BillImportRefused("the file is not UTF-8 text", errors=[
            {"line": 1, "field": None, "message": "not UTF-8"}]) from None
    reader = csv.DictReader(io.StringIO(text, newline=""))
    errors: list[dict[str, Any]] = []
    rows, seen = [], set[str]()
    try:
        missing = [f for f in IMPORT_FIELDS if f not in (reader.fieldnames or [])]
        if missing:
            raise BillImportRefused(f"the header must name {', '.join(IMPORT_FIELDS)}",
                                    errors=[{"line": 1, "field": f, "message": "missing column"}
                                            for f in missing])
        for line, row in enumerate(reader, start=2):
            if line - 1 > MAX_IMPORT_ROWS:
                errors.append({"line": line, "field": None,
                               "message": f"a file holds at most {MAX_IMPORT_ROWS:,} bills"})
                break
            parsed = _parse_row(row, line, seen, errors)
            if parsed is not None:
                rows.append((line, parsed))
    except csv.Error as exc:
        raise BillImportRefused("the file is not readable CSV", errors=[
            {"line": reader.line_num + 1, "field": None, "message": str(exc)}]) from None
    if not rows and not errors:
        errors.append({"line": 2, "field": None, "message": "the file has no bills"})
    numbers = [r["bill_number"] for _, r in rows]
    existing: set[str] = set()
    for i in range(0, len(numbers), 10_000):  # bound the statement's parameters
        existing.update(ctx.db.scalars(select(Bill.bill_number).where(
            Bill.bill_number.in_(numbers[i:i + 10_000]))))
    for line, r in rows:
        if r["bill_number"] in existing:
            errors.append({"line": line, "field": "bill_number",
                           "message": "a bill with this number was imported before"})
    if errors:
        errors.sort(key=lambda e: e["line"])
        raise BillImportRefused(f"{len(errors)} error(s); nothing was imported",
                                errors=errors[:200])
    imp = BillImport(biller_id=biller.id, content_sha256=digest, rows=len(rows),
                     amount=sum(r["amount"] for _, r in rows), actor=ctx.actor.username,
                     imported_at=ctx.now)
    ctx.db.add(imp)
    ctx.db.flush()
    pii = ctx.keys.pii
    for _, r in rows:
        s1, _s2, s3 = barcodes.make_segments(r["due_date"], biller.collection_code,
                                             r["bill_number"], r["period"], r["amount"])
        ctx.db.add(Bill(biller_id=biller.id, import_id=imp.id,
                        account_number=r["account_number"], bill_number=r["bill_number"],
                        period=r["period"], amount=r["amount"], due_date=r["due_date"],
                        payer_name_enc=pii.encrypt("payer_name", r["payer_name"]),
                        payer_name_masked=mask_name(r["payer_name"]), segment1=s1,
                        segment3=s3, status="unpaid", created_at=ctx.now))
    ctx.db.flush()
    audit.record(ctx, "bills.import", target_type="biller", target_id=biller.id,
                 detail={"import_id": imp.id, "rows": imp.rows, "amount": imp.amount})
    return ImportResult(imp.id, imp.rows, imp.amount, False)


def by_account(ctx: Ctx, account_number: str, biller_id: int | None = None) -> list[Bill]:
    stmt = select(Bill).where(Bill.account_number == account_number.strip().upper())
    if biller_id is not None:
        stmt = stmt.where(Bill.biller_id == biller_id)
    return list(ctx.db.scalars(stmt.order_by(Bill.status.desc(), Bill.due_date, Bill.id)))


def by_barcodes(ctx: Ctx, segment1: str, segment2: str, segment3: str) -> Bill:
    """The bill of a scanned slip. A slip that is malformed, fails its check characters or
    differs from the bill it names is refused, naming the segment that is wrong."""
    segs = [s.strip().upper() for s in (segment1, segment2, segment3)]
    try:
        barcodes.parse(*segs)
    except barcodes.SlipError as exc:
        if "check characters" not in exc.detail:
            raise
        bill = ctx.db.scalar(select(Bill).where(Bill.bill_number == segs[1]))
        if bill is None:
            raise barcodes.SlipError(2, "no bill with this number, and the check "
                                        "characters do not match: segment 2 was probably "
                                        "mistyped or altered") from None
        _compare(bill, segs)
        raise
    bill = ctx.db.scalar(select(Bill).where(Bill.bill_number == segs[1]))
    if bill is None:
        raise NotFound(f"no bill {segs[1]}")
    _compare(bill, segs)
    return bill


def _compare(bill: Bill, segs: list[str]) -> None:
    for i, (given, ours) in enumerate(((segs[0], bill.segment1), (segs[2], bill.segment3))):
        if given != ours:
            n = 1 if i == 0 else 3
            raise barcodes.SlipError(n, f"does not match bill {bill.bill_number}: mistyped "
                                        "or altered")


def get_bill(ctx: Ctx, bill_id: int, *, for_update: bool = False) -> Bill:
    bill = ctx.db.get(Bill, bill_id, with_for_update=for_update, populate_existing=for_update)
    if bill is None:
        raise NotFound(f"no bill {bill_id}")
    return bill


# --- paying ------------------------------------------------------------------------------------


@dataclass
class Paid:
    payment: BillPayment
    bill: Bill
    receipt: str
    balance: int | None  # the payer's purse after paying, when a purse paid


def _check_payable(ctx: Ctx, bill: Bill, amount: int | None) -> Biller:
    biller = get_biller(ctx, bill.biller_id)
    if bill.status == "paid":
        raise BillAlreadyPaid(f"bill {bill.bill_number} is paid", bill_id=bill.id)
    if amount is not None and amount != bill.amount:
        raise PartialPayment(f"bill {bill.bill_number} is NT${bill.amount}; pay it in full",
                             amount_due=bill.amount)
    last_day = bill.due_date + dt.timedelta(days=biller.grace_days)
    if ctx.today > last_day:
        raise BillOverdue(f"bill {bill.bill_number} was due {bill.due_date}; payable until "
                          f"{last_day}: ask the biller for a new bill", due_date=str(
                              bill.due_date))
    return biller


def _record(ctx: Ctx, bill: Bill, channel: str, transfer_id: int, card_id: int | None,
            merchant_id: int | None) -> BillPayment:
    payment = BillPayment(bill_id=bill.id, biller_id=bill.biller_id, channel=channel,
                          amount=bill.amount, card_id=card_id, merchant_id=merchant_id,
                          transfer_id=transfer_id, paid_at=ctx.now)
    ctx.db.add(payment)
    bill.status = "paid"
    ctx.db.flush()
    audit.record(ctx, "bills.pay", target_type="bill", target_id=bill.id,
                 detail={"channel": channel, "amount": bill.amount, "payment_id": payment.id})
    return payment


def pay_from_purse(ctx: Ctx, bill_id: int, card_id: int, channel: str,
                   amount: int | None = None) -> Paid:
    """At the counter or online: an online debit of an account-held purse (a chip purse
    keeps its value on the chip and pays at a terminal)."""
    bill = get_bill(ctx, bill_id, for_update=True)
    _check_payable(ctx, bill, amount)
    card = ctx.db.get(Card, card_id, with_for_update=True)
    if card is None:
        raise NotFound(f"no card {card_id}")
    usable_for_money(ctx, card)
    if card.load_key_version is not None:
        raise ChipPurse(f"card {card.card_number} keeps its value on the chip: pay the bill "
                        "with the card at a terminal")
    purse = ledger.purse_of(ctx, card.id)
    payable = ledger.system_account(ctx, AccountKind.BILLER_PAYABLE, biller_code(bill.biller_id))
    t = ledger.post(ctx, "bill_payment", [ledger.Leg(purse, -bill.amount),
                                          ledger.Leg(payable, bill.amount)],
                    card_id=card.id, memo=f"bill {bill.bill_number}")
    payment = _record(ctx, bill, channel, t.id, card.id, None)
    return Paid(payment, bill, receipt_token(ctx, payment, bill), purse.balance)


def collect_cash(ctx: Ctx, merchant_id: int, bill: Bill, amount: int) -> Paid:
    """A convenience store took cash against the slip: the store owes it to the biller (its
    payable is debited; clearing nets it against the store's sales)."""
    bill = get_bill(ctx, bill.id, for_update=True)
    _check_payable(ctx, bill, amount)
    store = ledger.system_account(ctx, AccountKind.MERCHANT_PAYABLE,
                                  codes.merchant_code(merchant_id))
    payable = ledger.system_account(ctx, AccountKind.BILLER_PAYABLE, biller_code(bill.biller_id))
    t = ledger.post(ctx, "bill_collection", [ledger.Leg(store, -bill.amount),
                                             ledger.Leg(payable, bill.amount)],
                    memo=f"cash for bill {bill.bill_number} at merchant {merchant_id}")
    payment = _record(ctx, bill, PaymentChannel.STORE_CASH, t.id, None, merchant_id)
    return Paid(payment, bill, receipt_token(ctx, payment, bill), None)


# --- receipts ----------------------------------------------------------------------------------
#
# A receipt is `KMRC2.<key id>.<payload>.<signature>`: the payload is the base64url JSON of the
# payment, bill number, amount and time; the signature is Ed25519 with the secrets file's
# signing key of that id, over the ASCII text before it. The water company checks it with the
# public keys alone (`cardsvc transit public-keys`); a rotated key (`cardsvc keys
# new-signing-key`) stays in the file, so what it signed still verifies. The "KMRC2." prefix
# keeps a receipt's signed text from ever reading as a fare table's (canonical JSON).

RECEIPT_PREFIX = "KMRC2"
# Receipts issued before key ids: an HMAC under a key derived from the staff token key. Still
# verified while that key is unchanged (a transition: rotating it ends them).
LEGACY_PREFIX = "KMRC1"
RECEIPT_MAX = 400  # characters: a receipt is far shorter; anything longer is not one
FORGED = "the signature does not match: forged or altered"


def _legacy_receipt_key(ctx: Ctx) -> bytes:
    return hmac.new(ctx.keys.secrets.token_key, b"cardsvc bill receipt v1",
                    hashlib.sha256).digest()


def _b64(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


def _unb64(text: str) -> bytes:
    """Base64url without padding; ValueError when it is not."""
    if not re.fullmatch(r"[A-Za-z0-9_-]*", text):
        raise ValueError("not base64url")
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def receipt_token(ctx: Ctx, payment: BillPayment, bill: Bill) -> str:
    """A signed receipt, short enough for a QR code: payment, bill, amount, time."""
    body = json.dumps({"p": payment.id, "b": bill.bill_number, "a": payment.amount,
                       "t": int(payment.paid_at.timestamp())}, separators=(",", ":"))
    kid = ctx.keys.secrets.signing_key[0]
    signed = f"{RECEIPT_PREFIX}.{kid}.{_b64(body.encode())}"
    _, signature = signing.sign(ctx.keys.secrets, signed.encode())
    return f"{signed}.{_b64(base64.b64decode(signature))}"


@dataclass(frozen=True)
class ReceiptBody:
    payment_id: int
    bill_number: str
    amount: int
    paid_at: int  # Unix time


class ReceiptRefused(ValueError):
    """Why a receipt is not one: `reason` is what the check answers."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


def _body(payload: str) -> ReceiptBody:
    try:
        body = json.loads(_unb64(payload))
        return ReceiptBody(int(body["p"]), str(body["b"]), int(body["a"]), int(body["t"]))
    except (ValueError, KeyError, TypeError):
        raise ReceiptRefused("not a receipt") from None


def open_receipt(token: str, public_keys: dict[str, str]) -> ReceiptBody:
    """What a KMRC2 receipt says, if the key it names (by id, base64 raw Ed25519 public key,
    as `cardsvc transit public-keys` prints them) signed exactly it: the check the water
    company can make with the public keys alone. Raises ReceiptRefused."""
    token = token.strip()
    parts = token.split(".")
    if len(token) > RECEIPT_MAX or not token.isascii() or len(parts) != 4 \
            or parts[0] != RECEIPT_PREFIX:
        raise ReceiptRefused("not a receipt")
    _, kid, payload, signature = parts
    try:
        raw = _unb64(signature)
    except ValueError:
        raw = b""
    if kid not in public_keys or not signing.verifies(  # an unknown key id is no better
            public_keys[kid], raw, f"{RECEIPT_PREFIX}.{kid}.{payload}".encode()):
        raise ReceiptRefused(FORGED)
    return _body(payload)


def _open_legacy(ctx: Ctx, token: str) -> ReceiptBody:
    parts = token.strip().split(".")
    if len(parts) != 3 or parts[0] != LEGACY_PREFIX or len(token) > RECEIPT_MAX \
            or not token.isascii():
        raise ReceiptRefused("not a receipt")
    expected = hmac.new(_legacy_receipt_key(ctx), f"{parts[0]}.{parts[1]}".encode(),
                        hashlib.sha256).digest()[:16]
    if not hmac.compare_digest(_b64(expected), parts[2]):
        raise ReceiptRefused(FORGED)
    return _body(parts[1])


def verify_receipt(ctx: Ctx, token: str) -> ReceiptCheck:
    try:
        if token.strip().startswith(f"{LEGACY_PREFIX}."):
            body = _open_legacy(ctx, token)
        else:
            body = open_receipt(token, signing.public_keys(ctx.keys.secrets))
    except ReceiptRefused as refused:
        return ReceiptCheck(valid=False, reason=refused.reason)
    payment = ctx.db.get(BillPayment, body.payment_id)
    bill = ctx.db.get(Bill, payment.bill_id) if payment else None
    if payment is None or bill is None or bill.bill_number != body.bill_number \
            or payment.amount != body.amount:
        return ReceiptCheck(valid=False, reason="no such payment")
    merchant = ctx.db.scalar(select(Merchant).join(Biller, Biller.merchant_id == Merchant.id)
                             .where(Biller.id == bill.biller_id))
    return ReceiptCheck(
        valid=True, reason="paid", bill_number=bill.bill_number, amount=payment.amount,
        paid_at=payment.paid_at.astimezone(TAIPEI).isoformat(timespec="seconds"),
        biller=merchant.legal_name if merchant else None)


def pay_at_pos(ctx: Ctx, terminal: Terminal, bill: Bill, debit: CardPurchase,
               idempotency_key: str) -> Paid:
    """A chip card pays at a terminal: the terminal debited the chip for the bill's amount and
    sends the certificate; it is checked like a purchase and booked to the biller."""
    bill = get_bill(ctx, bill.id, for_update=True)
    try:
        _check_payable(ctx, bill, debit.amount)
    except (BillAlreadyPaid, BillOverdue, PartialPayment) as exc:
        # The chip was debited already: keep its certificate for clearing's exceptions report
        # (the money is refunded from there), and answer with the refusal.
        ctx.db.add(PosTransaction(
            kind=PosKind.BILL_PAYMENT, status=PosStatus.REJECTED, reason=exc.code,
            terminal_id=terminal.id,
            merchant_id=terminal.merchant_id, card_number=debit.card_number,
            amount=debit.amount, refunded=0, card_counter=debit.card_counter,
            balance_after=debit.balance_after, terminal_seq=debit.terminal_seq,
            card_time=debit.time, certificate=debit.certificate.lower(),
            idempotency_key=idempotency_key, created_at=ctx.now))
        exc.keep_writes = True
        raise
    payable = ledger.system_account(ctx, AccountKind.BILLER_PAYABLE, biller_code(bill.biller_id))
    out = pos.purchase(ctx, terminal, debit, idempotency_key, kind=PosKind.BILL_PAYMENT,
                       payee=payable, limit=ctx.settings.purse_max_balance)
    rec = ctx.db.get(PosTransaction, out.transaction_id)
    assert rec is not None and rec.transfer_id is not None  # noqa: S101 - accepted above
    payment = _record(ctx, bill, PaymentChannel.POS, rec.transfer_id, rec.card_id,
                      terminal.merchant_id)
    return Paid(payment, bill, receipt_token(ctx, payment, bill), out.purse_balance)


def pay_online(ctx: Ctx, bill_id: int, token_text: str) -> Paid:
    """The resident pays from the mobile card's purse, authorised by a payment token signed
    with the phone's key (the same token a shop scans): single use, short-lived."""
    bill = get_bill(ctx, bill_id, for_update=True)
    _check_payable(ctx, bill, None)
    token = qr.parse_payment_token(token_text)
    card = None if token is None else pos.token_card(ctx, token)
    if token is None or card is None or not card.device_public_key \
            or not qr.signature_valid(card.device_public_key, token):
        raise e.QrTokenInvalid("not a payment token signed by a mobile card's phone")
    if not pos.token_fresh(ctx, token):
        raise e.QrTokenExpired("the payment token expired; show a new one")
    if not pos.spend_token(ctx, token, card):
        raise e.QrTokenSpent("this payment token was already used")
    return pay_from_purse(ctx, bill.id, card.id, PaymentChannel.ONLINE)


def unpaid_of_accounts(ctx: Ctx, accounts: set[str], limit: int = 20) -> list[Bill]:
    """Unpaid bills of these account numbers at any biller, the oldest due first (the
    counter's resident page: accounts the resident paid before, or one the clerk types)."""
    if not accounts:
        return []
    return list(ctx.db.scalars(
        select(Bill).where(Bill.biller_id.in_(select(Biller.id)),  # the (biller, account) index
                           Bill.account_number.in_(sorted(accounts)), Bill.status == "unpaid")
        .order_by(Bill.due_date, Bill.id).limit(limit)))


def paid_with_cards(ctx: Ctx, card_ids: list[int], limit: int = 20) -> list[tuple[Bill,
                                                                                BillPayment]]:
    """The bills a resident paid with their cards, newest first (the counter's resident
    page)."""
    if not card_ids:
        return []
    return [(b, p) for b, p in ctx.db.execute(
        select(Bill, BillPayment).join(BillPayment, BillPayment.bill_id == Bill.id)
        .where(BillPayment.card_id.in_(card_ids))
        .order_by(BillPayment.paid_at.desc()).limit(limit))]
