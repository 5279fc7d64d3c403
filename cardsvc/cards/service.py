"""The card lifecycle and the counter's money operations on a card's purse.

applied → issued → active ⇄ suspended (lost/stolen)
                   active/suspended → blocked → back where it was (supervisor)
                   active/suspended/issued → expired
          active/suspended/expired/blocked* → replaced (balance moves to the new card)
          applied/issued/active/suspended/expired/blocked* → closed (balance refunded in cash)
          (* from blocked: supervisors only)
"""

from __future__ import annotations

import base64
import binascii
from collections.abc import Callable

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519
from sqlalchemy import func, select
from sqlalchemy.exc import IntegrityError

from cardsvc.audit import service as audit
from cardsvc.cards import eligibility
from cardsvc.cards import schemas as s
from cardsvc.cards.errors import (
    CardLimitReached,
    CardNotUsable,
    IllegalTransition,
    Ineligible,
)
from cardsvc.cards.models import (
    LIVE_STATUSES,
    Card,
    CardEvent,
    CardLoad,
    CardStatus,
    Concession,
    HotlistEntry,
    LoadStatus,
    Product,
)
from cardsvc.context import Ctx
from cardsvc.errors import Conflict, Forbidden, InvalidInput, NotFound
from cardsvc.holders import service as holders
from cardsvc.identifiers import new_card_number, normalize_chip_uid
from cardsvc.ledger import codes
from cardsvc.ledger import service as ledger
from cardsvc.ledger.models import AccountKind
from cardsvc.staff import service as staff_service

A = CardStatus
TRANSITIONS: dict[str, tuple[frozenset[CardStatus], CardStatus]] = {
    "issue": (frozenset({A.APPLIED}), A.ISSUED),
    "activate": (frozenset({A.ISSUED}), A.ACTIVE),
    "suspend": (frozenset({A.ACTIVE}), A.SUSPENDED),
    "reinstate": (frozenset({A.SUSPENDED}), A.ACTIVE),
    "block": (frozenset({A.ACTIVE, A.SUSPENDED}), A.BLOCKED),
    "unblock": (frozenset({A.BLOCKED}), A.ACTIVE),
    "expire": (frozenset({A.ISSUED, A.ACTIVE, A.SUSPENDED}), A.EXPIRED),
    "replace": (frozenset({A.ACTIVE, A.SUSPENDED, A.EXPIRED, A.BLOCKED}), A.REPLACED),
    "close": (frozenset({A.APPLIED, A.ISSUED, A.ACTIVE, A.SUSPENDED, A.EXPIRED, A.BLOCKED}),
              A.CLOSED),
}
# Closing or replacing a blocked card settles a supervisor's case: supervisors only.
SUPERVISOR_ONLY_FROM_BLOCKED = frozenset({"replace", "close"})
RENEWAL_WINDOW_DAYS = 90


def form_of(product: str) -> str:
    return "mobile" if product == Product.MOBILE else "physical"


def get(ctx: Ctx, card_id: int, *, for_update: bool = False) -> Card:
    card = ctx.db.get(Card, card_id, with_for_update=for_update,
                      populate_existing=for_update)
    if card is None:
        raise NotFound(f"no card {card_id}")
    return card


def by_number(ctx: Ctx, number: str) -> Card:
    card = ctx.db.scalar(select(Card).where(Card.card_number == number))
    if card is None:
        raise NotFound("no card with this number")
    return card


def list_for_holder(ctx: Ctx, holder_id: int) -> list[Card]:
    holders.get(ctx, holder_id, erased_ok=True)
    return list(ctx.db.scalars(select(Card).where(Card.cardholder_id == holder_id)
                               .order_by(Card.id)))


def check_transition(ctx: Ctx, card: Card, action: str) -> None:
    """Raise unless `action` may happen to this card now, by this actor (409 / 403)."""
    allowed, _ = TRANSITIONS[action]
    if card.status not in allowed:
        raise IllegalTransition(
            f"cannot {action} card {card.card_number}: it is {card.status}; {action} is "
            f"allowed only from {', '.join(sorted(allowed))}",
            card_status=card.status, action=action)
    if (card.status == A.BLOCKED and action in SUPERVISOR_ONLY_FROM_BLOCKED
            and ctx.actor.role not in ("supervisor", "system")):
        raise Forbidden(f"card {card.card_number} is blocked: only a supervisor may {action} it")


def transition(ctx: Ctx, card: Card, action: str, reason: str) -> None:
    check_transition(ctx, card, action)
    _, target = TRANSITIONS[action]
    if action == "unblock":
        # Back to where it was: a card blocked while reported stolen stays suspended.
        before = ctx.db.scalar(select(CardEvent.from_status).where(
            CardEvent.card_id == card.id, CardEvent.to_status == A.BLOCKED)
            .order_by(CardEvent.id.desc()).limit(1))
        target = A(before) if before in (A.ACTIVE, A.SUSPENDED) else A.ACTIVE
    previous = card.status
    card.status = target
    card.status_changed_at = ctx.now
    if target not in LIVE_STATUSES:
        card.live_form = None
        card.live_device_id = None
    reason = reason[:500]  # the column's size; composed reasons ("stolen: ...") may be longer
    seq = int(ctx.db.scalar(select(func.count()).select_from(CardEvent)
                            .where(CardEvent.card_id == card.id)) or 0)
    ctx.db.add(CardEvent(card_id=card.id, at=ctx.now, action=action, from_status=previous,
                         to_status=target, actor=ctx.actor.username, reason=reason, seq=seq))
    _update_hotlist(ctx, card, previous, target, action)
    audit.record(ctx, f"card.{action}", target_type="card", target_id=card.id,
                 detail={"from": previous, "to": target.value, "reason": reason})


# A card terminals must refuse: lost or stolen, blocked, replaced, closed, expired.
HOTLISTED = frozenset({A.SUSPENDED, A.BLOCKED, A.REPLACED, A.CLOSED, A.EXPIRED})


def _update_hotlist(ctx: Ctx, card: Card, previous: str, target: CardStatus,
                    action: str) -> None:
    was, now = previous in HOTLISTED, target in HOTLISTED
    if was == now or card.form != "physical":
        return
    ctx.db.add(HotlistEntry(card_number=card.card_number, action="add" if now else "remove",
                            reason=action, created_at=ctx.now))


def _created_event(ctx: Ctx, card: Card, reason: str) -> None:
    ctx.db.add(CardEvent(card_id=card.id, at=ctx.now, action="apply", from_status=None,
                         to_status=card.status, actor=ctx.actor.username, reason=reason,
                         seq=0))
    audit.record(ctx, "card.apply", target_type="card", target_id=card.id,
                 detail={"product": card.product, "concession": card.concession,
                         "cardholder_id": card.cardholder_id})


def normalize_public_key(text: str) -> str:
    """Accept a P-256 or Ed25519 public key as PEM or base64 DER; return PEM."""
    raw = text.strip()
    try:
        if raw.startswith("-----BEGIN"):
            key = serialization.load_pem_public_key(raw.encode())
        else:
            key = serialization.load_der_public_key(base64.b64decode(raw, validate=True))
    except (ValueError, binascii.Error, TypeError):
        raise InvalidInput("device_public_key is not a readable public key",
                           field="device_public_key") from None
    if isinstance(key, ec.EllipticCurvePublicKey):
        if not isinstance(key.curve, ec.SECP256R1):
            raise InvalidInput("device_public_key must be on curve P-256",
                               field="device_public_key")
    elif not isinstance(key, ed25519.Ed25519PublicKey):
        raise InvalidInput("device_public_key must be a P-256 or Ed25519 key",
                           field="device_public_key")
    return key.public_bytes(serialization.Encoding.PEM,
                            serialization.PublicFormat.SubjectPublicKeyInfo).decode()


def _device_binding(product: str, device_id: str | None, public_key: str | None
                    ) -> tuple[str | None, str | None]:
    if product == Product.MOBILE:
        if not device_id or not public_key:
            raise Ineligible("mobile.device_binding",
                             "a mobile card is bound to one phone: give device_id and "
                             "device_public_key")
        return device_id, normalize_public_key(public_key)
    if device_id or public_key:
        raise InvalidInput("device_id and device_public_key belong to mobile cards only")
    return None, None


def _insert_card(ctx: Ctx, card: Card) -> None:
    """Insert with a fresh card number; map slot/device collisions to clear errors.

    The explicit look-up gives the clear message; the unique constraints are the guarantee
    when two counters race."""
    live = ctx.db.scalar(select(Card.card_number).where(
        Card.cardholder_id == card.cardholder_id, Card.live_form == card.form))
    if live is not None:
        raise CardLimitReached(
            f"the cardholder already holds a live {card.form} card ({live}); replace it "
            "(e.g. with a product change) or close it first", form=card.form)
    for _ in range(5):
        card.card_number = new_card_number(card.product)
        try:
            with ctx.db.begin_nested():
                ctx.db.add(card)
                ctx.db.flush()
            return
        except IntegrityError as exc:
            text = str(exc.orig).lower()
            if "live_form" in text:
                raise CardLimitReached(
                    f"the cardholder already holds a live {card.form} card; replace it "
                    "(e.g. with a product change) or close it first",
                    form=card.form) from None
            if "live_device" in text:
                raise Conflict("this phone is already bound to a live mobile card") from None
            if "card_number" not in text:
                raise
    raise Conflict("could not allocate a unique card number")  # pragma: no cover


def take_decision(card: Card, decision: eligibility.Decision) -> None:
    """What an eligibility decision sets on the card; a chip personalised with it starts at
    profile version 1 (0: no concession profile written)."""
    card.concession = decision.concession.value
    card.expires_on = decision.expires_on
    card.concession_until = decision.concession_until
    card.profile_version = 0 if decision.concession == Concession.NONE else 1


def apply(ctx: Ctx, data: s.CardApplication) -> Card:
    holder = holders.get(ctx, data.cardholder_id, for_update=True)
    device_id, public_key = _device_binding(data.product, data.device_id,
                                            data.device_public_key)
    decision = eligibility.decide(ctx, holder, data.product, ctx.today)
    form = form_of(data.product)
    card = Card(cardholder_id=holder.id, product=decision.product.value, form=form,
                live_form=form, status=A.APPLIED, device_id=device_id,
                live_device_id=device_id, device_public_key=public_key,
                counter=staff_service.desk_for(ctx, data.counter), applied_at=ctx.now,
                status_changed_at=ctx.now)
    take_decision(card, decision)
    _insert_card(ctx, card)
    ledger.open_purse(ctx, card.id)
    _created_event(ctx, card, f"application: {decision.basis}")
    return card


def require_free_chip(ctx: Ctx, uid: str, card_id: int) -> None:
    """A chip UID is bound to one card only."""
    if ctx.db.scalar(select(Card.id).where(Card.chip_uid == uid, Card.id != card_id)):
        raise Conflict("this chip UID is already bound to another card", field="chip_uid")


def _bind_chip(ctx: Ctx, card: Card, chip_uid: str | None) -> None:
    if card.form == "mobile":
        if chip_uid:
            raise InvalidInput("a mobile card has no chip UID")
        return
    uid = normalize_chip_uid(chip_uid or "")
    if uid is None:
        raise InvalidInput("chip_uid must be the 4, 7 or 10-byte UID in hex", field="chip_uid")
    require_free_chip(ctx, uid, card.id)
    card.chip_uid = uid


def issue(ctx: Ctx, card_id: int, data: s.IssueRequest) -> Card:
    card = get(ctx, card_id, for_update=True)
    check_transition(ctx, card, "issue")
    holder = holders.get(ctx, card.cardholder_id)
    decision = eligibility.decide(ctx, holder, Product(card.product), ctx.today)
    _bind_chip(ctx, card, data.chip_uid)
    take_decision(card, decision)
    card.issued_at = ctx.now
    transition(ctx, card, "issue", f"issued: {decision.basis}")
    return card


def simple_transition(ctx: Ctx, card_id: int, action: str, reason: str) -> Card:
    card = get(ctx, card_id, for_update=True)
    transition(ctx, card, action, reason)
    return card


def expire_due(ctx: Ctx) -> int:
    """Expire every card whose validity ended before today (a concession that ended leaves
    the card valid: its holder pays the full fare)."""
    due = ctx.db.scalars(
        select(Card).where(Card.expires_on < ctx.today,
                           Card.status.in_([A.ISSUED, A.ACTIVE, A.SUSPENDED]))
        .order_by(Card.id).with_for_update()
    ).all()
    for card in due:
        transition(ctx, card, "expire", f"validity ended on {card.expires_on}")
    return len(due)


def usable_for_money(ctx: Ctx, card: Card) -> None:
    if card.status != A.ACTIVE:
        raise CardNotUsable(f"card {card.card_number} is {card.status}; only an active card "
                            "takes top-ups and charges", card_status=card.status)
    if card.expires_on < ctx.today:
        raise CardNotUsable(f"card {card.card_number} expired on {card.expires_on}",
                            card_status="expired")


def card_out(card: Card) -> s.CardOut:
    return s.CardOut.model_validate(card)










# Personalises a blank chip for a card record; returns (chip UID, load key version).
Personaliser = Callable[[Card, eligibility.Decision], tuple[str, int]]


def replace(ctx: Ctx, card_id: int, data: s.ReplaceRequest,
            personaliser: Personaliser | None = None) -> s.ReplaceResult:
    """Replace or renew a card. A physical replacement either binds a bureau chip's UID
    (`data.chip_uid`) or has `personaliser` write a blank chip on the counter reader; a new
    chip then receives the carried-over balance as a chip load."""
    old = get(ctx, card_id, for_update=True)
    check_transition(ctx, old, "replace")
    if data.fee_payment == "waived" and ctx.actor.role != "supervisor":
        raise Forbidden("only a supervisor may waive the replacement fee")
    product = data.product or Product(old.product)
    if form_of(product) != old.form:
        raise InvalidInput("a replacement keeps the card's form (physical or mobile)")
    # The fee-free reasons must be what they say.
    if data.reason == "product_change" and product == old.product:
        raise InvalidInput("a product change needs a different product")
    if data.reason == "renewal" and (old.expires_on - ctx.today).days > RENEWAL_WINDOW_DAYS:
        raise InvalidInput(f"a card is renewed within {RENEWAL_WINDOW_DAYS} days of its expiry "
                           f"({old.expires_on}); use the reason that applies")
    if (old.form == "mobile" and data.device_id and data.device_id != old.device_id
            and not data.device_public_key):
        raise InvalidInput("a new phone needs its own device_public_key",
                           field="device_public_key")
    holder = holders.get(ctx, old.cardholder_id, for_update=True)
    # Renewal re-checks eligibility: a student whose enrolment ended gets refused here.
    decision = eligibility.decide(ctx, holder, product, ctx.today)
    device_id, public_key = (old.device_id, old.device_public_key)
    if old.form == "mobile":
        device_id, public_key = _device_binding(product, data.device_id or old.device_id,
                                                data.device_public_key or
                                                old.device_public_key)
    transition(ctx, old, "replace", f"{data.reason}: {data.note}".rstrip(": "))
    ctx.db.flush()  # frees the holder's slot before the new card takes it
    counter = staff_service.desk_for(ctx, data.counter)
    new = Card(cardholder_id=holder.id, product=decision.product.value, form=old.form,
               live_form=old.form, status=A.APPLIED, device_id=device_id,
               live_device_id=device_id, device_public_key=public_key, counter=counter,
               replaces_card_id=old.id, applied_at=ctx.now, status_changed_at=ctx.now)
    take_decision(new, decision)
    on_reader = old.form == "physical" and data.chip_uid is None
    if on_reader and personaliser is None:
        raise InvalidInput("chip_uid of the new card is required (hex UID)", field="chip_uid")
    if old.form == "physical" and not on_reader and normalize_chip_uid(data.chip_uid or "") is None:
        raise InvalidInput("chip_uid must be the 4, 7 or 10-byte UID in hex", field="chip_uid")
    _insert_card(ctx, new)
    new_purse = ledger.open_purse(ctx, new.id)
    _created_event(ctx, new, f"replaces card {old.card_number} ({data.reason})")
    if on_reader:
        assert personaliser is not None  # noqa: S101 - checked above; narrows the type
        uid, load_version = personaliser(new, decision)
        require_free_chip(ctx, uid, new.id)
        new.chip_uid, new.load_key_version = uid, load_version
    else:
        _bind_chip(ctx, new, data.chip_uid)
    new.issued_at = ctx.now
    transition(ctx, new, "issue", f"replacement for {old.card_number}")
    transition(ctx, new, "activate", "handed over at the counter")
    old_purse = ledger.purse_of(ctx, old.id)
    moved = old_purse.balance
    moved_transfer = None
    if moved > 0:
        moved_transfer = ledger.post(ctx, "replacement", [ledger.Leg(old_purse, -moved),
                                                          ledger.Leg(new_purse, moved)],
                                     card_id=new.id, memo=f"balance from {old.card_number}")
    fee = 0 if data.reason in ("renewal", "product_change") or data.fee_payment == "waived" \
        else ctx.settings.replacement_fee
    if fee:
        income = ledger.system_account(ctx, AccountKind.FEE_INCOME, codes.FEE_INCOME)
        source = (new_purse if data.fee_payment == "purse" else
                  ledger.system_account(ctx, AccountKind.COUNTER_CASH, codes.cash_code(counter)))
        ledger.post(ctx, "replacement_fee", [ledger.Leg(source, -fee), ledger.Leg(income, fee)],
                    card_id=new.id, memo=f"replacement fee ({data.fee_payment})")
    load_id = None
    if moved_transfer is not None and new_purse.balance > 0:
        load_id = queue_chip_load(ctx, new, moved_transfer.id, new_purse.balance)
    return s.ReplaceResult(old_card=card_out(old), new_card=card_out(new), balance_moved=moved,
                           fee=fee, fee_payment=data.fee_payment if fee else "none",
                           new_balance=new_purse.balance, card_load_id=load_id)


def close(ctx: Ctx, card_id: int, data: s.CloseRequest) -> s.CloseResult:
    card = get(ctx, card_id, for_update=True)
    check_transition(ctx, card, "close")
    purse = ledger.purse_of(ctx, card.id)
    refund = purse.balance
    if refund > 0:
        counter = staff_service.desk_for(ctx, data.counter)
        cash = ledger.system_account(ctx, AccountKind.COUNTER_CASH, codes.cash_code(counter))
        ledger.post(ctx, "refund", [ledger.Leg(purse, -refund), ledger.Leg(cash, refund)],
                    card_id=card.id, memo=f"cash refund on closing at {counter}")
    card.closed_at = ctx.now
    transition(ctx, card, "close", data.reason)
    return s.CloseResult(card=card_out(card), refund_cash=refund)




def events(ctx: Ctx, card_id: int) -> list[CardEvent]:
    get(ctx, card_id)
    return list(ctx.db.scalars(select(CardEvent).where(CardEvent.card_id == card_id)
                               .order_by(CardEvent.id)))


def queue_chip_load(ctx: Ctx, card: Card, transfer_id: int, amount: int) -> int | None:
    """Value for a chip purse: authorised now, delivered to the chip at the next tap."""
    if card.load_key_version is None:
        return None  # account-held purse
    load = CardLoad(card_id=card.id, transfer_id=transfer_id, amount=amount,
                    status=LoadStatus.PENDING, created_at=ctx.now)
    ctx.db.add(load)
    ctx.db.flush()
    return load.id
