"""Carriers, the invoices merchants report onto them, 歸戶 to a mobile barcode, the periods'
draws, paper invoice checks, winners' notices and the reports."""

from __future__ import annotations

import base64
import csv
import datetime as dt
import io
import json
import secrets
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from sqlalchemy import case, delete, func, select
from sqlalchemy.exc import IntegrityError

from cardsvc.audit import service as audit
from cardsvc.cards import device
from cardsvc.cards.models import Card, CardStatus
from cardsvc.context import TAIPEI, Ctx
from cardsvc.einvoice import check, rules
from cardsvc.einvoice import schemas as s
from cardsvc.einvoice.errors import (
    AlreadyBound,
    AmountMismatch,
    BadBarcode,
    BadDraw,
    BadInvoice,
    BadSignature,
    InvoiceVoided,
    NoDraw,
    NumberUsed,
    PeriodMismatch,
    PlatformRefused,
    PlatformUnavailable,
    SellerMismatch,
)
from cardsvc.einvoice.models import (
    Allowance,
    Carrier,
    CarrierBinding,
    CloudPrize,
    Draw,
    Invoice,
    InvoiceStatus,
    PrizeCheck,
    PrizeNumber,
    Winning,
)
from cardsvc.einvoice.platform import owe_unbind, platform_of, settle_carrier
from cardsvc.einvoice.rules import Tier
from cardsvc.errors import NotFound
from cardsvc.holders import service as holders

# --- carriers ------------------------------------------------------------------------------


def carrier_of(ctx: Ctx, card: Card) -> Carrier:
    """The card's carrier, made the first time it is needed."""
    found = ctx.db.scalar(select(Carrier).where(Carrier.card_id == card.id))
    if found is not None:
        return found
    carrier = Carrier(card_id=card.id, cardholder_id=card.cardholder_id,
                      carrier_type=ctx.settings.einvoice_carrier_type,
                      visible_id=card.card_number, hidden_id=secrets.token_hex(8).upper(),
                      created_at=ctx.now)
    ctx.db.add(carrier)
    ctx.db.flush()
    return carrier


def _card(ctx: Ctx, card_id: int) -> Card:
    card = ctx.db.get(Card, card_id)
    if card is None:
        raise NotFound(f"no card {card_id}")
    return card


# --- invoices from merchants ---------------------------------------------------------------


@dataclass(frozen=True)
class Purchase:
    """What the POS domain knows of the purchase an invoice is for."""

    transaction_id: int
    card_id: int
    merchant_id: int
    seller_tax_id: str
    amount: int
    at: dt.datetime


def record(ctx: Ctx, purchase: Purchase, data: s.InvoiceReport) -> Invoice:
    """An invoice a merchant's terminal issued for one of its purchases."""
    if data.seller_tax_id != purchase.seller_tax_id:
        raise SellerMismatch("the seller's 統一編號 is not this merchant's",
                             field="seller_tax_id")
    if data.amount != purchase.amount:
        raise AmountMismatch(f"the purchase was NT${purchase.amount}; the invoice says "
                             f"NT${data.amount}", field="amount")
    bought = purchase.at.astimezone(TAIPEI).date()
    period = rules.period_of(data.invoice_date)
    if period != rules.period_of(bought) and not data.after_the_fact:
        raise PeriodMismatch(f"the purchase was on {bought}, period {rules.period_of(bought)};"
                             f" the invoice date {data.invoice_date} is in period {period}",
                             field="invoice_date")
    if data.buyer_tax_id is not None and data.donation_code is not None:
        raise BadInvoice("an invoice with a buyer's 統一編號 cannot be donated",
                         field="donation_code")
    existing = ctx.db.scalar(select(Invoice).where(Invoice.period == period,
                                                   Invoice.number == data.invoice_number))
    if existing is not None:
        raise NumberUsed(f"{data.invoice_number} was already issued in period {period}")
    carrier = carrier_of(ctx, _card(ctx, purchase.card_id))
    invoice = Invoice(
        number=data.invoice_number, digits=data.invoice_number[2:],
        suffix=data.invoice_number[-3:], period=period, invoice_date=data.invoice_date,
        random_code=data.random_code, amount=data.amount, allowances=0,
        buyer_tax_id=data.buyer_tax_id or rules.NO_BUYER, seller_tax_id=data.seller_tax_id,
        donation_code=data.donation_code, after_the_fact=data.after_the_fact,
        status=InvoiceStatus.ISSUED, carrier_id=carrier.id, merchant_id=purchase.merchant_id,
        pos_transaction_id=purchase.transaction_id, created_at=ctx.now)
    try:
        with ctx.db.begin_nested():
            ctx.db.add(invoice)
            ctx.db.flush()
    except IntegrityError:
        raise NumberUsed(f"{data.invoice_number} was already issued in period {period}, or "
                         "the purchase already has its invoice") from None
    audit.record(ctx, "einvoice.issue", target_type="invoice", target_id=invoice.id,
                 detail={"number": invoice.number, "period": period, "amount": data.amount,
                         "merchant_id": purchase.merchant_id, "carrier_id": carrier.id})
    return invoice


def merchant_invoice(ctx: Ctx, merchant_id: int, number: str, date: dt.date) -> Invoice:
    found = ctx.db.scalar(select(Invoice).where(
        Invoice.period == rules.period_of(date), Invoice.number == number,
        Invoice.merchant_id == merchant_id).with_for_update())
    if found is None:
        raise NotFound(f"this merchant issued no invoice {number} in period "
                       f"{rules.period_of(date)}")
    return found


def void(ctx: Ctx, merchant_id: int, data: s.InvoiceVoid) -> Invoice:
    invoice = merchant_invoice(ctx, merchant_id, data.invoice_number, data.invoice_date)
    if invoice.status != InvoiceStatus.VOIDED:
        invoice.status, invoice.voided_at = InvoiceStatus.VOIDED, ctx.now
        audit.record(ctx, "einvoice.void", target_type="invoice", target_id=invoice.id,
                     detail={"number": invoice.number, "reason": data.reason})
    return invoice


def allowance(ctx: Ctx, merchant_id: int, data: s.AllowanceRequest) -> Invoice:
    invoice = merchant_invoice(ctx, merchant_id, data.invoice_number, data.invoice_date)
    if invoice.status == InvoiceStatus.VOIDED:
        raise InvoiceVoided(f"{invoice.number} is voided: no allowance on it")
    if invoice.allowances + data.amount > invoice.amount:
        raise AmountMismatch(f"allowances would exceed the invoice's NT${invoice.amount}",
                             field="amount")
    invoice.allowances += data.amount
    ctx.db.add(Allowance(invoice_id=invoice.id, amount=data.amount, reason=data.reason,
                         created_at=ctx.now))
    audit.record(ctx, "einvoice.allowance", target_type="invoice", target_id=invoice.id,
                 detail={"number": invoice.number, "amount": data.amount})
    return invoice


def invoice_out(ctx: Ctx, invoice: Invoice) -> s.InvoiceOut:
    carrier = ctx.db.get(Carrier, invoice.carrier_id)
    assert carrier is not None  # noqa: S101 - foreign key
    donated = invoice.donation_code is not None
    return s.InvoiceOut(
        id=invoice.id, number=rules.mask_donated(invoice.number) if donated else invoice.number,
        period=invoice.period, invoice_date=invoice.invoice_date, amount=invoice.amount,
        allowances=invoice.allowances, status=invoice.status, donated=donated,
        seller_tax_id=invoice.seller_tax_id, carrier=carrier.visible_id)


# --- 歸戶 -----------------------------------------------------------------------------------


def bind(ctx: Ctx, card_id: int, barcode: str) -> CarrierBinding:
    if not rules.MOBILE_BARCODE.fullmatch(barcode):
        raise BadBarcode("a mobile barcode is / and 7 of 0-9 A-Z . + -", field="mobile_barcode")
    found = ctx.db.get(Card, card_id)
    if found is None:
        raise NotFound(f"no card {card_id}")
    # The resident first, as erasure locks them: an erased resident gets no new binding,
    # and an erasure running now finishes before this one looks.
    holders.get(ctx, found.cardholder_id, for_update=True)
    card = ctx.db.get(Card, card_id, with_for_update=True, populate_existing=True)
    assert card is not None  # noqa: S101 - cards are never deleted
    carrier = carrier_of(ctx, card)
    standing = ctx.db.scalar(select(CarrierBinding).where(
        CarrierBinding.live_carrier_id == carrier.id))
    if standing is not None:
        if standing.mobile_barcode == barcode:
            return standing
        raise AlreadyBound(f"card {card.card_number} is bound to {standing.mobile_barcode}: "
                           "unbind it first")
    mof = platform_of(ctx.services)
    try:
        settle_carrier(ctx, carrier, mof)
        mof.bind(carrier.carrier_type, carrier.visible_id, carrier.hidden_id, barcode)
    except PlatformRefused:
        raise
    except Exception as exc:  # the platform's client: it did not answer
        raise PlatformUnavailable(f"the e-invoice platform did not answer "
                                  f"({type(exc).__name__}); nothing changed, ask again "
                                  "later") from None
    binding = CarrierBinding(carrier_id=carrier.id, live_carrier_id=carrier.id,
                             mobile_barcode=barcode, bound_at=ctx.now,
                             bound_by=ctx.actor.username)
    ctx.db.add(binding)
    ctx.db.flush()
    audit.record(ctx, "einvoice.bind", target_type="card", target_id=card.id,
                 detail={"carrier_id": carrier.id,
                         "mobile_barcode": rules.mask_barcode(barcode)})
    return binding


SIGNED_WINDOW = 120  # seconds either side of the server's clock


def binding_message(card_number: str, barcode: str, issued_at: int) -> bytes:
    return f"KMBIND1|{card_number}|{barcode}|{issued_at}".encode()


def sign_binding(private_key: Any, card_number: str, barcode: str, issued_at: int) -> str:
    """What the residents' app sends (the demo and the tests use it too)."""
    raw = device.sign(private_key, binding_message(card_number, barcode, issued_at))
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


def sign_read(private_key: Any, card_number: str, issued_at: int) -> str:
    raw = device.sign(private_key, f"KMINV1|{card_number}|{issued_at}".encode())
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


def _signed_card(ctx: Ctx, card_number: str, issued_at: int, message: bytes,
                 signature_text: str) -> Card:
    """The active mobile card whose phone signed `message` within the window."""
    card = ctx.db.scalar(select(Card).where(Card.card_number == card_number))
    try:
        signature = base64.urlsafe_b64decode(signature_text + "=" * (-len(signature_text) % 4))
    except ValueError:
        signature = b""
    fresh = abs(ctx.now.timestamp() - issued_at) <= SIGNED_WINDOW
    if (card is None or card.device_public_key is None or card.status != CardStatus.ACTIVE
            or not fresh or not device.verify(card.device_public_key, message, signature)):
        raise BadSignature("not signed by this active mobile card's key within two minutes")
    return card


def bind_signed(ctx: Ctx, data: s.SignedBinding) -> CarrierBinding:
    """歸戶 from the resident's phone: the mobile card's own key signed the request."""
    card = _signed_card(ctx, data.card_number, data.issued_at, binding_message(
        data.card_number, data.mobile_barcode, data.issued_at), data.signature)
    return bind(ctx, card.id, data.mobile_barcode)


def resident_signed(ctx: Ctx, data: s.SignedRead) -> s.ResidentInvoices:
    """The resident's app: their own invoices and winnings, asked with the phone's key."""
    card = _signed_card(ctx, data.card_number, data.issued_at,
                        f"KMINV1|{data.card_number}|{data.issued_at}".encode(), data.signature)
    audit.record(ctx, "einvoice.resident_read", target_type="cardholder",
                 target_id=card.cardholder_id, purpose="the resident's own app",
                 detail={"card_id": card.id})
    return resident(ctx, card.cardholder_id, data.period)


def end_binding(ctx: Ctx, carrier: Carrier, standing: CarrierBinding) -> None:
    """The binding kept as history (unbound, by whom, when), and the platform owed the
    news: it is told once this transaction has committed (`einvoice.platform`)."""
    owe_unbind(ctx, carrier, standing)
    standing.live_carrier_id = None
    standing.unbound_at, standing.unbound_by = ctx.now, ctx.actor.username


def unbind(ctx: Ctx, card_id: int) -> CarrierBinding:
    card = ctx.db.get(Card, card_id, with_for_update=True)
    if card is None:
        raise NotFound(f"no card {card_id}")
    carrier = carrier_of(ctx, card)
    standing = ctx.db.scalar(select(CarrierBinding).where(
        CarrierBinding.live_carrier_id == carrier.id))
    if standing is None:
        raise NotFound(f"card {card.card_number} is not bound to a mobile barcode")
    end_binding(ctx, carrier, standing)
    audit.record(ctx, "einvoice.unbind", target_type="card", target_id=card.id,
                 detail={"carrier_id": carrier.id,
                         "mobile_barcode": rules.mask_barcode(standing.mobile_barcode)})
    return standing


def standing_bindings(ctx: Ctx, card_ids: list[int]) -> dict[int, CarrierBinding]:
    """The cards' standing 歸戶 bindings, by card id (a card without one is absent)."""
    if not card_ids:
        return {}
    return {card_id: binding for binding, card_id in ctx.db.execute(
        select(CarrierBinding, Carrier.card_id)
        .join(Carrier, Carrier.id == CarrierBinding.live_carrier_id)
        .where(Carrier.card_id.in_(card_ids)))}


def binding_out(ctx: Ctx, binding: CarrierBinding) -> s.BindingOut:
    carrier = ctx.db.get(Carrier, binding.carrier_id)
    assert carrier is not None  # noqa: S101 - foreign key
    return s.BindingOut(carrier=carrier.visible_id, mobile_barcode=binding.mobile_barcode,
                        bound_at=binding.bound_at, bound_by=binding.bound_by,
                        unbound_at=binding.unbound_at)


# --- draws ---------------------------------------------------------------------------------

AMOUNT_FIELDS = {Tier.SPECIAL: "superPrizeAmt", Tier.GRAND: "spcPrizeAmt",
                 Tier.FIRST: "firstPrizeAmt", Tier.SECOND: "secondPrizeAmt",
                 Tier.THIRD: "thirdPrizeAmt", Tier.FOURTH: "fourthPrizeAmt",
                 Tier.FIFTH: "fifthPrizeAmt", Tier.SIXTH: "sixthPrizeAmt"}


def parse_draw(data: Any) -> rules.Draw:
    """A QryWinningList answer, validated: an even-month period, eight-digit numbers,
    three-digit extra sixth prizes, whole amounts; unused slots are empty strings."""
    if not isinstance(data, dict):
        raise BadDraw("the draw is a JSON object (the QryWinningList answer)")

    def text_of(key: str) -> str:
        value = data.get(key, "")
        if not isinstance(value, str):
            raise BadDraw(f"{key} must be a string", field=key)
        return value.strip()

    period_text = text_of("invoYm")
    if not rules.valid_period(period_text):
        raise BadDraw("invoYm is yyyMM with an even month (114年9-10月 is 11410)",
                      field="invoYm")
    numbers: dict[str, str] = {}
    for key in ("superPrizeNo", "spcPrizeNo"):
        value = text_of(key)
        if len(value) != 8 or not value.isdigit() or not value.isascii():
            raise BadDraw(f"{key} must be eight digits", field=key)
        numbers[key] = value
    first = []
    for n in range(1, 11):
        value = text_of(f"firstPrizeNo{n}")
        if value and (len(value) != 8 or not value.isdigit() or not value.isascii()):
            raise BadDraw(f"firstPrizeNo{n} must be eight digits or empty",
                          field=f"firstPrizeNo{n}")
        if value:
            first.append(value)
    if not first:
        raise BadDraw("a draw has at least one first-prize number", field="firstPrizeNo1")
    extra = []
    for n in range(1, 7):
        value = text_of(f"sixthPrizeNo{n}")
        if value and (len(value) != 3 or not value.isdigit() or not value.isascii()):
            raise BadDraw(f"sixthPrizeNo{n} must be three digits or empty",
                          field=f"sixthPrizeNo{n}")
        if value:
            extra.append(value)
    amounts = {}
    for tier, key in AMOUNT_FIELDS.items():
        value = text_of(key)
        if not value.isdigit() or not value.isascii() or int(value) <= 0 \
                or int(value) > 100_000_000:
            raise BadDraw(f"{key} must be a whole amount in NT dollars", field=key)
        amounts[tier] = int(value)
    return rules.Draw(int(period_text), numbers["superPrizeNo"], numbers["spcPrizeNo"],
                      tuple(first), tuple(extra), amounts)


def read_draw_file(content: bytes) -> Any:
    try:
        return json.loads(content.decode("utf-8-sig"))
    except (UnicodeDecodeError, ValueError):
        raise BadDraw("the draw file is not JSON") from None


def import_draw(ctx: Ctx, data: Any) -> Draw:
    """Import (or replace) a period's draw; a replaced draw's check is run again."""
    parsed = parse_draw(data)
    ctx.db.execute(delete(PrizeNumber).where(PrizeNumber.period == parsed.period))
    draw = ctx.db.get(Draw, parsed.period, with_for_update=True)
    replaced = draw is not None
    if draw is None:
        draw = Draw(period=parsed.period)
        ctx.db.add(draw)
    for tier in AMOUNT_FIELDS:
        setattr(draw, f"{tier.value}_amount", parsed.amounts[tier])
    draw.source = json.dumps(data, ensure_ascii=False, sort_keys=True)
    draw.imported_at, draw.imported_by = ctx.now, ctx.actor.username
    ctx.db.flush()
    rows = [("special", parsed.special), ("grand", parsed.grand),
            *(("first", n) for n in parsed.first),
            *(("extra_sixth", n) for n in parsed.extra_sixth)]
    for kind, number in dict.fromkeys(rows):
        ctx.db.add(PrizeNumber(period=parsed.period, kind=kind, number=number,
                               suffix=number[-3:]))
    ctx.db.flush()
    audit.record(ctx, "einvoice.draw_import", target_type="period", target_id=parsed.period,
                 detail={"replaced": replaced, "first": list(parsed.first),
                         "extra_sixth": list(parsed.extra_sixth)})
    if replaced and ctx.db.get(PrizeCheck, parsed.period) is not None:
        run_check(ctx, parsed.period)
    return draw


def import_cloud(ctx: Ctx, period: int, content: bytes) -> int:
    """A period's cloud-prize list: CSV (invoice number, amount) or a JSON list of
    {"invoice_number", "amount"}. Replaces the period's list."""
    if not rules.valid_period(period):
        raise BadDraw("the period is yyyMM with an even month", field="period")
    try:
        text = content.decode("utf-8-sig")
    except UnicodeDecodeError:
        raise BadDraw("the cloud list must be UTF-8 text") from None
    pairs: list[tuple[str, str]] = []
    if text.lstrip().startswith("["):
        try:
            items = json.loads(text)
            pairs = [(str(x["invoice_number"]), str(x["amount"])) for x in items]
        except (ValueError, KeyError, TypeError):
            raise BadDraw("a JSON cloud list is [{\"invoice_number\", \"amount\"}, ...]") \
                from None
    else:
        try:
            rows = [r for r in csv.reader(io.StringIO(text, newline=""))
                    if r and any(c.strip() for c in r)]
        except csv.Error as exc:
            raise BadDraw(f"the cloud list is not readable CSV: {exc}") from None
        if rows and not rules.valid_invoice_number(rows[0][0].strip()):
            head = rows[0][0].strip().lower()
            if not any(word in head for word in ("invoice", "number", "發票")):
                raise BadDraw("the cloud list is CSV: invoice number, amount (a header line "
                              "may name them)", line=1)
            rows = rows[1:]
        pairs = [(r[0], r[1] if len(r) > 1 else "") for r in rows]
    prizes: dict[str, int] = {}
    for line, (number, amount) in enumerate(pairs, start=1):
        number, amount = number.strip(), amount.strip()
        if not rules.valid_invoice_number(number) or not amount.isdigit() \
                or not 0 < int(amount) <= 10_000_000:
            raise BadDraw(f"line {line}: an invoice number and a whole amount", line=line)
        prizes[number] = int(amount)
    ctx.db.execute(delete(CloudPrize).where(CloudPrize.period == period))
    ctx.db.add_all(CloudPrize(period=period, number=n, amount=a) for n, a in prizes.items())
    ctx.db.flush()
    audit.record(ctx, "einvoice.cloud_import", target_type="period", target_id=period,
                 detail={"prizes": len(prizes)})
    if ctx.db.get(PrizeCheck, period) is not None:
        run_check(ctx, period)
    return len(prizes)


# --- the check -----------------------------------------------------------------------------


def run_check(ctx: Ctx, period: int, progress: Callable[[int, int], None] | None = None
              ) -> s.CheckOut:
    if not rules.valid_period(period):
        raise BadDraw("the period is yyyMM with an even month", field="period")
    # Locked: two checks of a period (or a check and a corrected draw) take turns.
    if ctx.db.get(Draw, period, with_for_update=True) is None:
        raise NoDraw(f"no draw imported for period {period}: `cardsvc einvoice draw import`")
    checked = check.run(ctx, period, progress)
    found, notified = checked.found, checked.notified
    audit.record(ctx, "einvoice.check", target_type="period", target_id=period,
                 detail={"invoices": found.invoices, "winners": found.winners,
                         "amount": found.amount, "notified": notified})
    return s.CheckOut(period=period, invoices=found.invoices, winners=found.winners,
                      amount=found.amount, exclusions=json.loads(found.exclusions),
                      notified=notified)


def winning_out(winning: Winning, invoice: Invoice) -> s.WinningOut:
    tier = Tier(winning.tier)
    return s.WinningOut(
        period=winning.period,
        invoice_number=rules.mask_donated(invoice.number) if winning.donated
        else invoice.number,
        tier=tier.value, tier_name=rules.TIER_NAMES[tier], amount=winning.amount,
        income_tax=winning.income_tax, stamp_duty=winning.stamp_duty,
        net=winning.amount - winning.income_tax - winning.stamp_duty, donated=winning.donated,
        claim_from=winning.claim_from, claim_until=winning.claim_until)


def resident(ctx: Ctx, holder_id: int, period: int | None = None) -> s.ResidentInvoices:
    """A resident's invoices on all their carriers (old cards' too) and their winnings."""
    q = select(Invoice).join(Carrier, Carrier.id == Invoice.carrier_id).where(
        Carrier.cardholder_id == holder_id)
    if period is not None:
        q = q.where(Invoice.period == period)
    invoices = list(ctx.db.scalars(q.order_by(Invoice.invoice_date.desc(), Invoice.id.desc())
                                   .limit(500)))
    wins = ctx.db.execute(select(Winning, Invoice).join(Invoice, Invoice.id == Winning.invoice_id)
                          .where(Winning.cardholder_id == holder_id)
                          .order_by(Winning.period.desc())).all()
    return s.ResidentInvoices(cardholder_id=holder_id,
                              invoices=[invoice_out(ctx, i) for i in invoices],
                              winnings=[winning_out(w, i) for w, i in wins])


def report(ctx: Ctx, period: int) -> s.PeriodReport:
    found = ctx.db.get(PrizeCheck, period)
    rows = ctx.db.execute(select(Winning.tier, func.count(), func.sum(Winning.amount),
                                 func.sum(case((Winning.donated, 1), else_=0)))
                          .where(Winning.period == period).group_by(Winning.tier)).all()
    by_tier = {str(t): (int(n), int(a or 0), int(d or 0)) for t, n, a, d in rows}
    tiers = [s.TierLine(tier=t.value, tier_name=rules.TIER_NAMES[t], winners=by_tier[t][0],
                        amount=by_tier[t][1], donated=by_tier[t][2])
             for t in Tier if t.value in by_tier]
    return s.PeriodReport(
        period=period, label=rules.period_label(period),
        checked_at=found.checked_at if found else None,
        invoices=found.invoices if found else 0, winners=found.winners if found else 0,
        amount=found.amount if found else 0, tiers=tiers,
        exclusions=json.loads(found.exclusions) if found else {})


# --- paper invoices ------------------------------------------------------------------------


def paper_check(ctx: Ctx, data: s.PaperCheck) -> list[s.PaperResult]:
    """Check paper invoices by period and numbers, or by the text of a proof's QR code."""
    queries: list[tuple[int, str, str]] = []
    if data.qr:
        try:
            proof = rules.parse_proof_qr(data.qr)
        except rules.QrError as exc:
            raise BadInvoice(str(exc), field="qr") from None
        note = "" if proof.buyer == rules.NO_BUYER else \
            "an invoice with a buyer's 統一編號 does not win"
        queries.append((proof.period, proof.number, note))
    else:
        if data.period is None or not rules.valid_period(data.period):
            raise BadInvoice("give the period (yyyMM, even month) with the numbers",
                             field="period")
        for number in data.numbers:
            if not rules.valid_invoice_number(number.strip().upper()):
                raise BadInvoice(f"{number!r} is not two letters and eight digits",
                                 field="numbers")
            queries.append((data.period, number.strip().upper(), ""))
    if not queries:
        raise BadInvoice("give numbers with their period, or a QR code's text")
    out = []
    for period, number, note in queries:
        draw = _draw(ctx, period)
        if draw is None:
            out.append(s.PaperResult(period=period, number=number, tier=None, tier_name=None,
                                     amount=0, note=f"period {period} is not drawn yet"))
            continue
        tier = None if note else rules.regular_tier(number[2:], draw)
        if tier is None and not note:
            cloud = ctx.db.scalar(select(CloudPrize.amount).where(
                CloudPrize.period == period, CloudPrize.number == number))
            if cloud is not None:
                tier = Tier.CLOUD
        amount = 0 if tier is None else (draw.amounts.get(tier) or int(ctx.db.scalar(
            select(CloudPrize.amount).where(CloudPrize.period == period,
                                            CloudPrize.number == number)) or 0))
        out.append(s.PaperResult(period=period, number=number,
                                 tier=tier.value if tier else None,
                                 tier_name=rules.TIER_NAMES[tier] if tier else None,
                                 amount=amount, note=note))
    return out


def _draw(ctx: Ctx, period: int) -> rules.Draw | None:
    draw = ctx.db.get(Draw, period)
    if draw is None:
        return None
    numbers = ctx.db.execute(select(PrizeNumber.kind, PrizeNumber.number)
                             .where(PrizeNumber.period == period)).all()
    by_kind: dict[str, list[str]] = {}
    for kind, number in numbers:
        by_kind.setdefault(kind, []).append(number)
    return rules.Draw(period, by_kind["special"][0], by_kind["grand"][0],
                      tuple(by_kind.get("first", ())), tuple(by_kind.get("extra_sixth", ())),
                      {t: getattr(draw, f"{t.value}_amount") for t in AMOUNT_FIELDS})


def report_csv(out: s.PeriodReport) -> str:
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\r\n")
    w.writerow(["period", "tier", "tier_name", "winners", "amount", "donated"])
    for line in out.tiers:
        w.writerow([out.period, line.tier, line.tier_name, line.winners, line.amount,
                    line.donated])
    for reason, n in sorted(out.exclusions.items()):
        w.writerow([out.period, f"excluded:{reason}", "", n, 0, 0])
    return buf.getvalue()
