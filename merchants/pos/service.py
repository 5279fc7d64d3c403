"""The POS transaction rules: card-present purchases, refunds, voids, status, hotlist.

A card-present purchase has already happened on the chip when it reaches us: the terminal
debited the card and sends the card's transaction certificate. The backend checks the same
rules the terminal checked (hotlist, expiry, per-purchase limit), verifies the certificate with
the card's load key (which no terminal holds), and posts the sale to the ledger. A refused
record is kept with its reason for clearing's exceptions report.
"""

from __future__ import annotations

import hashlib
import json

from sqlalchemy import func, insert, select
from sqlalchemy.exc import IntegrityError

from cardsvc.audit import service as audit
from cardsvc.cards.models import Card, CardLoad, HotlistEntry
from cardsvc.cards.service import HOTLISTED
from cardsvc.context import TAIPEI, Ctx
from cardsvc.db_upsert import insert_if_absent
from cardsvc.errors import NotFound
from cardsvc.keystore.service import KeyStore
from cardsvc.ledger import codes
from cardsvc.ledger import service as ledger
from cardsvc.ledger.errors import InsufficientFunds
from cardsvc.ledger.models import Account, AccountKind
from merchants.pos import errors as e
from merchants.pos import invoices, qr
from merchants.pos import schemas as s
from merchants.pos.interfaces import clearing_state
from merchants.pos.models import (
    CHIP_DEBIT_KINDS,
    SALE_KINDS,
    PosBatch,
    PosKind,
    PosStatus,
    PosTransaction,
    QrTokenUse,
)
from merchants.registry.models import Terminal
from readers import protocol as p


def merchant_account(ctx: Ctx, merchant_id: int) -> Account:
    return ledger.system_account(ctx, AccountKind.MERCHANT_PAYABLE,
                                 codes.merchant_code(merchant_id))


def takings_code(terminal_id: int) -> str:
    return codes.terminal_code(terminal_id)


def takings_account(ctx: Ctx, terminal_id: int) -> Account:
    """Where a terminal's sales are credited until clearing sweeps them to its merchant."""
    return ledger.system_account(ctx, AccountKind.TERMINAL_TAKINGS, takings_code(terminal_id))


def transaction_out(ctx: Ctx, t: PosTransaction, balance: int | None = None) -> s.TransactionOut:
    return s.TransactionOut(transaction_id=t.id, kind=t.kind, status=t.status, reason=t.reason,
                            amount=t.amount, refunded=t.refunded, card_number=t.card_number,
                            terminal_id=t.terminal_id, merchant_id=t.merchant_id,
                            original_transaction_id=t.original_id, created_at=t.created_at,
                            purse_balance=balance)


def reject(ctx: Ctx, rec: PosTransaction, error: e.PosRefusal) -> e.PosRefusal:
    rec.status = PosStatus.REJECTED
    rec.reason = error.code
    ctx.db.add(rec)
    ctx.db.flush()
    error.extra["transaction_id"] = rec.id
    return error




def check_chip_debit(ctx: Ctx, rec: PosTransaction, card_number: str, chip_uid: str,
                     record: p.TxRecord, limit: int) -> Card:
    """The rules every online chip debit (a purchase, a bill paid at a terminal, a ride)
    passes before it is booked; a failure rejects `rec` with its reason (kept for clearing's
    exceptions report). Returns the card."""
    card = ctx.db.scalar(select(Card).where(Card.card_number == card_number))
    if card is None or card.chip_uid is None or card.chip_uid != chip_uid.upper():
        raise reject(ctx, rec, e.UnknownCard("no chip card with this number and UID"))
    rec.card_id = card.id
    if card.status in HOTLISTED:
        raise reject(ctx, rec, e.CardHotlisted(f"card {card.card_number} is {card.status}"))
    if card.expires_on < ctx.today:
        raise reject(ctx, rec, e.CardExpired(f"card expired on {card.expires_on}"))
    if record.amount > limit:
        raise reject(ctx, rec, e.AmountOverLimit(f"a purchase is at most NT${limit}"))
    secrets_ = ctx.keys.secrets
    store = KeyStore(ctx.db, secrets_.kek, secrets_.system_id)
    if card.load_key_version is None or not store.verify_certificate(
            bytes.fromhex(card.chip_uid), card.card_number, record, card.load_key_version):
        raise reject(ctx, rec, e.BadCertificate(
            "the certificate does not match this card, amount, counter, terminal and time"))
    seen = ctx.db.scalar(select(PosTransaction.id).where(
        PosTransaction.card_id == card.id, PosTransaction.card_counter == record.counter,
        PosTransaction.kind.in_(CHIP_DEBIT_KINDS), PosTransaction.status == PosStatus.ACCEPTED))
    if seen is not None:
        raise reject(ctx, rec, e.ReplayedCertificate(
            f"card transaction {record.counter} was already accepted as {seen}"))
    stored = ctx.db.scalar(select(PosTransaction.id).where(
        PosTransaction.card_id == card.id, PosTransaction.card_counter == record.counter,
        PosTransaction.kind == PosKind.OFFLINE_PURCHASE).limit(1))
    if stored is not None:
        # Clearing pays what offline batches bring: the same chip transaction sent online
        # afterwards would be paid twice.
        raise reject(ctx, rec, e.ReplayedCertificate(
            f"card transaction {record.counter} was already received in an offline batch "
            f"(record {stored})"))
    return card


# The idempotency operation of a card-present purchase (the fast path writes it too).
PURCHASE_OPERATION = "pos.purchase"


def purchase(ctx: Ctx, terminal: Terminal, data: s.CardPurchase, idempotency_key: str, *,
             kind: str = PosKind.PURCHASE, payee: Account | None = None,
             limit: int | None = None) -> s.TransactionOut:
    """A card-present debit, verified and booked: a sale to the terminal's merchant, or
    (`kind=PosKind.BILL_PAYMENT`, `payee` the biller's account) a bill paid at the terminal."""
    limit = ctx.settings.pos_purchase_limit if limit is None else limit
    rec = PosTransaction(kind=kind, status=PosStatus.PENDING, terminal_id=terminal.id,
                         merchant_id=terminal.merchant_id, card_number=data.card_number,
                         amount=data.amount, refunded=0, card_counter=data.card_counter,
                         balance_after=data.balance_after, terminal_seq=data.terminal_seq,
                         card_time=data.time, certificate=data.certificate.lower(),
                         idempotency_key=idempotency_key, created_at=ctx.now)
    record = p.TxRecord(p.TxType.DEBIT, data.card_counter, data.amount, data.balance_after,
                        terminal.id, data.terminal_seq, data.time,
                        bytes.fromhex(data.certificate))
    card = check_chip_debit(ctx, rec, data.card_number, data.chip_uid, record, limit)
    balance = book_chip_debit(ctx, rec, card, kind, payee or takings_account(ctx, terminal.id),
                              f"terminal {terminal.id} seq {data.terminal_seq}")
    return transaction_out(ctx, rec, balance)


def book_chip_debit(ctx: Ctx, rec: PosTransaction, card: Card, kind: str, payable: Account,
                    memo: str) -> int:
    """Book a verified chip debit (`rec`): the purse to `payable` (no transfer for a free
    ride's NT$0), `rec` accepted. A debit above the backend's balance rejects `rec` for
    clearing. Returns the purse's balance."""
    purse = ledger.purse_of(ctx, card.id)
    if rec.amount:
        try:
            # ledger.post checks every rule before it writes anything: no savepoint needed.
            t = ledger.post(ctx, kind, [ledger.Leg(purse, -rec.amount),
                                        ledger.Leg(payable, rec.amount)],
                            card_id=card.id, memo=memo)
        except InsufficientFunds:
            raise reject(ctx, rec, e.BalanceMismatch(
                "the card debited more than its balance in the backend: flagged for clearing"
            )) from None
        rec.transfer_id = t.id
    rec.status = PosStatus.ACCEPTED
    ctx.db.add(rec)
    ctx.db.flush()
    return purse.balance


def _own(ctx: Ctx, terminal: Terminal, transaction_id: int) -> PosTransaction:
    t = ctx.db.get(PosTransaction, transaction_id, with_for_update=True)
    if t is None or t.merchant_id != terminal.merchant_id:
        raise NotFound(f"no transaction {transaction_id} for this merchant")
    return t


def _credit_card(ctx: Ctx, card: Card, amount: int, kind: str, memo: str,
                 merchant_id: int) -> int:
    """Money back from the merchant to the card's purse; a chip gets it at its next tap.
    (Sales were credited to the terminal's takings; clearing sweeps them, voided ones
    included, to the merchant's payable, which refunds and voids debit.)"""
    purse = ledger.purse_of(ctx, card.id)
    t = ledger.post(ctx, kind, [ledger.Leg(merchant_account(ctx, merchant_id), -amount),
                                ledger.Leg(purse, amount)], card_id=card.id, memo=memo)
    if card.load_key_version is not None:
        ctx.db.add(CardLoad(card_id=card.id, transfer_id=t.id, amount=amount,
                            status=PosStatus.PENDING, created_at=ctx.now))
    ctx.db.flush()
    return t.id


def refund(ctx: Ctx, terminal: Terminal, data: s.RefundRequest,
           idempotency_key: str) -> s.TransactionOut:
    orig = _own(ctx, terminal, data.original_transaction_id)
    if orig.kind not in SALE_KINDS or orig.status != PosStatus.ACCEPTED:
        raise NotFound("only an accepted purchase can be refunded")
    left = orig.amount - orig.refunded
    if data.amount > left:
        raise e.RefundExceedsOriginal(
            f"NT${left} of the original NT${orig.amount} is left to refund", refundable=left)
    card = ctx.db.get(Card, orig.card_id)
    assert card is not None  # noqa: S101 - an accepted purchase has its card
    transfer = _credit_card(ctx, card, data.amount, "refund_pos",
                            f"refund of transaction {orig.id}", orig.merchant_id)
    orig.refunded += data.amount
    rec = PosTransaction(kind=PosKind.REFUND, status=PosStatus.ACCEPTED, terminal_id=terminal.id,
                         merchant_id=terminal.merchant_id, card_id=card.id,
                         card_number=card.card_number, amount=data.amount, refunded=0,
                         original_id=orig.id, transfer_id=transfer,
                         idempotency_key=idempotency_key, created_at=ctx.now)
    ctx.db.add(rec)
    ctx.db.flush()
    return transaction_out(ctx, rec, ledger.purse_of(ctx, card.id).balance)


def void(ctx: Ctx, terminal: Terminal, data: s.VoidRequest) -> s.TransactionOut:
    t = _own(ctx, terminal, data.transaction_id)
    last = ctx.db.scalar(select(func.max(PosTransaction.id)).where(
        PosTransaction.terminal_id == terminal.id, PosTransaction.status == PosStatus.ACCEPTED))
    same_day = t.created_at.astimezone(TAIPEI).date() == ctx.today
    # A purchase its clearing window already holds is settled as it was: refund it instead.
    cleared = clearing_state(ctx).holds(ctx, t.id)
    if (t.id != last or t.terminal_id != terminal.id or t.kind not in SALE_KINDS
            or t.refunded or not same_day or cleared):
        raise e.NotVoidable("void the terminal's last accepted purchase of today, not "
                            "refunded; otherwise refund it")
    card = ctx.db.get(Card, t.card_id)
    assert card is not None  # noqa: S101
    _credit_card(ctx, card, t.amount, "void", f"void of transaction {t.id}", t.merchant_id)
    t.status = PosStatus.VOIDED
    return transaction_out(ctx, t, ledger.purse_of(ctx, card.id).balance)


def status(ctx: Ctx, terminal: Terminal, transaction_id: int) -> s.TransactionOut:
    t = ctx.db.get(PosTransaction, transaction_id)
    if t is None or t.merchant_id != terminal.merchant_id:
        raise NotFound(f"no transaction {transaction_id} for this merchant")
    return transaction_out(ctx, t)


HOTLIST_PAGE = 5_000


def hotlist(ctx: Ctx, since: int) -> s.HotlistOut:
    rows = list(ctx.db.scalars(select(HotlistEntry).where(HotlistEntry.id > since)
                               .order_by(HotlistEntry.id).limit(HOTLIST_PAGE + 1)))
    more = len(rows) > HOTLIST_PAGE
    rows = rows[:HOTLIST_PAGE]
    version = rows[-1].id if rows else max(since, int(ctx.db.scalar(
        select(func.coalesce(func.max(HotlistEntry.id), 0))) or 0))
    return s.HotlistOut(version=version, more=more, entries=[
        s.HotlistEntryOut(version=r.id, card_number=r.card_number, action=r.action,
                          reason=r.reason) for r in rows])


def token_card(ctx: Ctx, token: qr.PaymentToken) -> Card | None:
    """The mobile card a payment token names (its signature is checked with the card's phone
    key by the caller)."""
    return ctx.db.scalar(select(Card).where(Card.card_number == token.card_number,
                                            Card.form == "mobile"))


def token_fresh(ctx: Ctx, token: qr.PaymentToken) -> bool:
    """Not expired, issued for no longer than the configured life, not from the future
    (30 s of clock difference allowed)."""
    now = int(ctx.now.timestamp())
    return (now < token.expires_at <= token.issued_at + ctx.settings.qr_token_ttl_seconds
            and token.issued_at <= now + 30)


def spend_token(ctx: Ctx, token: qr.PaymentToken, card: Card) -> bool:
    """Mark the token used, in the caller's transaction; False if it was used before."""
    return insert_if_absent(
        ctx.db, QrTokenUse, {"token_id": token.token_id, "card_id": card.id,
                             "used_at": ctx.now}, [QrTokenUse.token_id], QrTokenUse.id) is not None


def qr_purchase(ctx: Ctx, terminal: Terminal, data: s.QrPurchase,
                idempotency_key: str) -> s.TransactionOut:
    """Online debit of a mobile card's account-held purse against the phone's token."""
    token = qr.parse_payment_token(data.token)
    rec = PosTransaction(kind=PosKind.QR_PURCHASE, status=PosStatus.PENDING,
                         terminal_id=terminal.id,
                         merchant_id=terminal.merchant_id,
                         card_number=token.card_number if token else "0" * 16,
                         amount=data.amount, refunded=0, idempotency_key=idempotency_key,
                         created_at=ctx.now)
    if token is None:
        raise reject(ctx, rec, e.QrTokenInvalid("not a payment token"))
    card = token_card(ctx, token)
    if card is None or not card.device_public_key:
        raise reject(ctx, rec, e.QrTokenInvalid("no mobile card with this number"))
    rec.card_id = card.id
    if not qr.signature_valid(card.device_public_key, token):
        raise reject(ctx, rec, e.QrTokenInvalid("the token is not signed by the card's phone"))
    if not token_fresh(ctx, token):
        raise reject(ctx, rec, e.QrTokenExpired(
            f"a payment token is valid for {ctx.settings.qr_token_ttl_seconds} s; show a new "
            "one"))
    if card.status != "active" or card.expires_on < ctx.today:
        raise reject(ctx, rec, e.CardHotlisted(f"card {card.card_number} is {card.status}"))
    if data.amount > ctx.settings.pos_purchase_limit:
        raise reject(ctx, rec, e.AmountOverLimit(
            f"a purchase is at most NT${ctx.settings.pos_purchase_limit}"))
    if not spend_token(ctx, token, card):
        raise reject(ctx, rec, e.QrTokenSpent("this payment token was already used"))
    purse = ledger.purse_of(ctx, card.id)
    try:
        t = ledger.post(ctx, "qr_purchase",
                        [ledger.Leg(purse, -data.amount),
                         ledger.Leg(takings_account(ctx, terminal.id), data.amount)],
                        card_id=card.id, memo=f"QR at terminal {terminal.id}")
    except InsufficientFunds as exc:
        raise reject(ctx, rec, e.QrInsufficientFunds(exc.detail)) from None
    rec.status, rec.transfer_id = PosStatus.ACCEPTED, t.id
    ctx.db.add(rec)
    ctx.db.flush()
    return transaction_out(ctx, rec, purse.balance)


def upload_batch(ctx: Ctx, terminal: Terminal, data: s.OfflineBatch) -> s.BatchOut:
    """Store an offline terminal's records as facts, once. Clearing validates them."""
    # A record without an invoice hashes as it did before records could carry one.
    digest = hashlib.sha256(json.dumps(
        [r.model_dump(mode="json", exclude={"invoice"} if r.invoice is None else None)
         for r in data.records], sort_keys=True).encode()).hexdigest()
    batch = PosBatch(terminal_id=terminal.id, batch_ref=data.batch_ref,
                     records=len(data.records), content_hash=digest, received_at=ctx.now)
    try:
        with ctx.db.begin_nested():
            ctx.db.add(batch)
            ctx.db.flush()
    except IntegrityError:
        existing = ctx.db.scalar(select(PosBatch).where(PosBatch.terminal_id == terminal.id,
                                                        PosBatch.batch_ref == data.batch_ref))
        if existing is None or existing.content_hash != digest:
            raise e.BatchConflict(f"batch {data.batch_ref!r} was received with other "
                                  "records; give new records a new batch_ref") from None
        return s.BatchOut(batch_id=existing.id, batch_ref=existing.batch_ref,
                          records=existing.records, duplicate=True)
    cards = {c.card_number: c.id for c in ctx.db.scalars(select(Card).where(
        Card.card_number.in_({r.card_number for r in data.records})))}
    ids = ctx.db.scalars(insert(PosTransaction).returning(
        PosTransaction.id, sort_by_parameter_order=True), [
        {"kind": PosKind.OFFLINE_PURCHASE, "status": PosStatus.UPLOADED, "terminal_id": terminal.id,
         "merchant_id": terminal.merchant_id, "card_id": cards.get(r.card_number),
         "card_number": r.card_number, "amount": r.amount, "refunded": 0,
         "card_counter": r.card_counter, "balance_after": r.balance_after,
         "terminal_seq": r.terminal_seq, "card_time": r.time,
         "certificate": r.certificate.lower(), "batch_id": batch.id, "created_at": ctx.now}
        for r in data.records]).all()
    issued, refused = invoices.from_batch(ctx, terminal, data.records, list(ids), cards)
    audit.record(ctx, "pos.batch_upload", target_type="terminal", target_id=terminal.id,
                 detail={"batch_id": batch.id, "records": len(data.records),
                         "amount": sum(r.amount for r in data.records)})
    return s.BatchOut(batch_id=batch.id, batch_ref=batch.batch_ref, records=batch.records,
                      duplicate=False, invoices=issued, invoices_refused=refused)
