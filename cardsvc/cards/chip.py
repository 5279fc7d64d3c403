"""The chip side of the counter: personalising a card at issuance and delivering loads.

The database decides, the chip follows: a load is authorised (and committed to the ledger)
before the chip is touched, so a card that leaves the reader early never holds value the
ledger does not know; the load stays pending and is delivered at the next tap, and the card
recognises a load it already applied by its load id.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from sqlalchemy import func, select
from sqlalchemy.exc import IntegrityError

from cardsvc.audit import service as audit
from cardsvc.cards import eligibility, profiles, purse
from cardsvc.cards import schemas as s
from cardsvc.cards import service as cards
from cardsvc.cards.errors import CardNotPresented, ChipRefused, LoadNotInReview, WrongCardOnReader
from cardsvc.cards.models import Card, CardLoad, LoadStatus, Product
from cardsvc.cards.reader import CounterReader
from cardsvc.context import Ctx
from cardsvc.errors import DomainError, InvalidInput, NotFound
from cardsvc.holders import service as holders
from cardsvc.idempotency.service import IdempotentResult, idempotent
from cardsvc.keystore.service import KeyStore
from cardsvc.ledger import codes
from cardsvc.ledger import service as ledger
from cardsvc.ledger.models import AccountKind
from cardsvc.staff import service as staff_service
from readers import protocol as p
from readers.base import Reader
from readers.errors import CardError, CardRemoved, NoCard, ProtocolError, ReaderError
from readers.protocol import KeyPurpose
from readers.session import CardSession, personalise


def keystore(ctx: Ctx) -> KeyStore:
    s = ctx.keys.secrets
    return KeyStore(ctx.db, s.kek, s.system_id)


def _chip_error(exc: Exception, action: str) -> Exception:
    if isinstance(exc, CardError):
        return ChipRefused(f"the card refused {action} (SW {exc.sw:04X})", sw=f"{exc.sw:04X}")
    if isinstance(exc, CardRemoved | NoCard):
        return CardNotPresented(f"the card left the reader during {action}; tap it again")
    if isinstance(exc, ProtocolError):
        return ChipRefused(f"the card failed {action}: {exc}")
    return CardNotPresented(f"reader error during {action}: {exc}")


CHIP_ERRORS = (CardError, ReaderError, ProtocolError)


def personalise_and_issue(ctx: Ctx, card_id: int, counter: CounterReader) -> Card:
    """Issue a physical card by personalising a blank chip on the counter reader.

    Safe to repeat: a chip already personalised as this very card (the database commit failed
    after the chip was locked) is recognised and bound."""
    card = cards.get(ctx, card_id, for_update=True)
    cards.check_transition(ctx, card, "issue")
    if card.form != "physical":
        raise InvalidInput("mobile cards have no chip to personalise")
    holder = holders.get(ctx, card.cardholder_id)
    decision = eligibility.decide(ctx, holder, Product(card.product), ctx.today)
    uid, load_version = personalise_chip(ctx, card, decision, counter)
    cards.require_free_chip(ctx, uid, card.id)
    card.chip_uid = uid
    card.load_key_version = load_version
    cards.take_decision(card, decision)
    card.issued_at = ctx.now
    cards.transition(ctx, card, "issue", f"personalised at the counter: {decision.basis}")
    return card


def personalise_chip(ctx: Ctx, card: Card, decision: eligibility.Decision,
                     counter: CounterReader) -> tuple[str, int]:
    """Write a blank chip on the counter reader as `card`; return (UID, load key version).

    A chip already locked as this card (a retry after a failed commit) is accepted as is."""
    store = keystore(ctx)
    reader = counter.present(None, transport_key_for=store.transport_key)
    session = CardSession(reader, store.system_id)
    info = p.CardInfo(card.card_number, card.product, decision.expires_on)
    try:
        sel = session.select()
        keys = store.personalisation_keys(sel.uid)
        if sel.locked:
            auth = session.authenticate(KeyPurpose.IDENTITY, keys[KeyPurpose.IDENTITY][1],
                                        sel.key_versions.get(KeyPurpose.IDENTITY, 0))
            if auth.info is None or auth.info.card_number != card.card_number:
                raise WrongCardOnReader("the card on the reader is already issued; put a "
                                        "blank card on the reader")
        else:
            personalise(session, info, keys, store.transport_key(sel.uid),
                        profiles.first_profile(decision))
    except CHIP_ERRORS as exc:
        raise _chip_error(exc, "personalisation") from None
    finally:
        reader.close()
    uid = sel.uid.hex().upper()
    audit.record(ctx, "card.personalise", target_type="card", target_id=card.id,
                 detail={"chip_uid": uid, "reader": reader.name, "key_versions": {
                     p.PURPOSE_NAMES[k]: v for k, (v, _) in keys.items()}})
    return uid, keys[KeyPurpose.LOAD][0]


@dataclass(frozen=True)
class LoadOutcome:
    load_id: int
    amount: int
    status: str
    card_balance: int | None
    card_counter: int | None
    recovered: bool = False


def pending_loads(ctx: Ctx, card_id: int) -> list[CardLoad]:
    return list(ctx.db.scalars(select(CardLoad).where(CardLoad.card_id == card_id,
                                                      CardLoad.status == LoadStatus.PENDING)
                               .order_by(CardLoad.id)
                               .execution_options(populate_existing=True)))


def waiting_loads(ctx: Ctx) -> int:
    """Chip loads booked and still waiting for their card's next visit."""
    return int(ctx.db.scalar(select(func.count()).select_from(CardLoad).where(
        CardLoad.status == LoadStatus.PENDING)) or 0)


def deliver_loads(ctx: Ctx, card_id: int, counter: CounterReader,
                  commit: Callable[[], None], terminal_id: int = 1) -> list[LoadOutcome]:
    """Put every pending load of this card onto its chip (the card must be on the reader).

    `commit` is called after recording the counter a load is authorised for and before the
    LOAD reaches the chip: that write-ahead fact must survive whatever happens next. It is
    also called once before the reader is taken, so no transaction stays open while this
    waits for another session to finish with the card (on SQLite an open transaction holds
    the write lock that session needs to commit), and once before the reader is let go."""
    card = cards.get(ctx, card_id)
    if card.chip_uid is None or card.load_key_version is None:
        raise InvalidInput("this card's purse is held in the account, not on a chip")
    if not pending_loads(ctx, card.id) and profiles.pending(ctx, card.id) is None:
        return []
    chip_uid = card.chip_uid
    commit()
    # One session per card at a time, on either database: row locks end at the commits
    # below, and SQLite has none. The reader is held until the `finally`.
    reader = counter.present(chip_uid)
    outcomes: list[LoadOutcome] = []
    loads: list[CardLoad] = []
    try:
        try:
            # Read under the session: an earlier session committed what it delivered
            # before it let go of the card (below).
            card = cards.get(ctx, card_id, for_update=True)
            loads = pending_loads(ctx, card.id)
            if loads:
                _deliver(ctx, card, loads, reader, commit, terminal_id, outcomes)
            _deliver_profile(ctx, card, reader)
        except CHIP_ERRORS as exc:
            if not outcomes:
                raise _chip_error(exc, "the load") from None
            # Some loads reached the chip: keep those facts; the rest stay pending.
        # What reached the chip is committed while the session still holds the card, so the
        # next session never finds a delivered load pending.
        commit()
    finally:
        reader.close()
    done = {o.load_id for o in outcomes}
    outcomes += [LoadOutcome(ld.id, ld.amount, ld.status, None, None) for ld in loads
                 if ld.id not in done and ld.status != LoadStatus.REVIEW]
    return outcomes


def _deliver(ctx: Ctx, card: Card, loads: list[CardLoad], reader: Reader,
             commit: Callable[[], None], terminal_id: int, outcomes: list[LoadOutcome]) -> None:
    version = card.load_key_version
    if version is None:  # checked by the caller; narrows the type
        raise InvalidInput("this card's purse is held in the account, not on a chip")
    store = keystore(ctx)
    session = CardSession(reader, store.system_id)
    sel = session.select()
    if sel.uid.hex().upper() != card.chip_uid:
        raise WrongCardOnReader(f"the card on the reader is not card {card.card_number}")
    # The load key, which terminals never hold: the counter and records the card reports in
    # this session are the card's own, not a card emulator's.
    load_masters = store.masters(KeyPurpose.LOAD)
    for load in loads:
        auth = session.authenticate_with_master(KeyPurpose.LOAD, load_masters)
        if auth.info is None or auth.info.card_number != card.card_number:
            raise WrongCardOnReader("the chip carries another card number")
        counter_now = auth.purse.counter
        if load.authorised_counter is None:
            load.authorised_counter = counter_now
            commit()
        elif counter_now != load.authorised_counter:
            # An earlier attempt may have reached the chip before it left the reader.
            done = [r for r in session.read_records()
                    if r.tx_type == p.TxType.LOAD and r.terminal_seq == load.id]
            if done:
                rec = done[0]
                fits = rec.amount == load.amount and rec.counter > load.authorised_counter
                if not (fits and _record_delivery(ctx, card, load, rec, recovered=True)):
                    outcomes.append(_to_review(ctx, card, load, rec, "recovered record "
                                               "does not fit the load"))
                    return
                outcomes.append(LoadOutcome(load.id, load.amount, LoadStatus.DELIVERED,
                                            rec.balance_after, rec.counter, True))
                session.select()
                continue
            if not 0 < counter_now - load.authorised_counter <= p.RECORDS_KEPT:
                # Cannot prove either way: a supervisor decides.
                outcomes.append(_to_review(ctx, card, load, None, "the chip's records no "
                                           "longer show whether the load was applied"))
                session.select()
                continue
            load.authorised_counter = counter_now
            commit()
        mac = store.load_authorisation(sel.uid, card.card_number, counter_now,
                                       load.amount, load.id, version)
        when = int(ctx.now.timestamp())
        result = session.load(load.amount, load.id, terminal_id, when, mac)
        rec = result.record
        if not store.verify_certificate(sel.uid, card.card_number, rec, version):
            raise ChipRefused("the card's load certificate does not verify")
        # The card applies a load at the counter it was authorised for, one step on; an
        # answer at any other counter, or at one already recorded, is not this delivery.
        fits = (rec.amount == load.amount and rec.terminal_seq == load.id
                and (result.recovered or rec.counter == counter_now + 1))
        if not (fits and _record_delivery(ctx, card, load, rec, result.recovered)):
            outcomes.append(_to_review(ctx, card, load, rec, "the chip answered at a "
                                       "counter that is not this load's"))
            return  # the chip's state is in doubt: nothing more is loaded onto it now
        outcomes.append(LoadOutcome(load.id, load.amount, LoadStatus.DELIVERED, rec.balance_after,
                                    rec.counter, result.recovered))
        session.select()


def _deliver_profile(ctx: Ctx, card: Card, reader: Reader) -> None:
    """A pending concession profile, written in the backend's own session."""
    if profiles.pending(ctx, card.id) is None:
        return
    store = keystore(ctx)
    session = CardSession(reader, store.system_id)
    sel = session.select()
    if sel.uid.hex().upper() != card.chip_uid:
        raise WrongCardOnReader(f"the card on the reader is not card {card.card_number}")
    auth = session.authenticate_with_master(KeyPurpose.LOAD, store.masters(KeyPurpose.LOAD))
    if auth.info is None or auth.info.card_number != card.card_number:
        raise WrongCardOnReader("the chip carries another card number")
    profiles.deliver_on_chip(ctx, card, session, store)


def _record_delivery(ctx: Ctx, card: Card, load: CardLoad, rec: p.TxRecord,
                     recovered: bool) -> bool:
    """Mark `load` delivered by the chip's record `rec`; False (nothing written) when another
    delivery of this card already holds that chip counter."""
    taken = ctx.db.scalar(select(CardLoad.id).where(
        CardLoad.card_id == card.id, CardLoad.card_counter == rec.counter,
        CardLoad.status == LoadStatus.DELIVERED, CardLoad.id != load.id).limit(1))
    if taken is not None:
        return False
    try:
        # The unique index is the guarantee; the look-up above gives the clear path.
        with ctx.db.begin_nested():
            load.status = LoadStatus.DELIVERED
            load.delivered_at = ctx.now
            load.card_counter = rec.counter
            load.card_balance = rec.balance_after
            load.certificate = rec.certificate.hex()
            ctx.db.flush()
    except IntegrityError:
        ctx.db.refresh(load)
        return False
    audit.record(ctx, "card.load_delivered", target_type="card", target_id=card.id,
                 detail={"load_id": load.id, "amount": load.amount,
                         "card_counter": rec.counter, "recovered": recovered})
    return True


def _to_review(ctx: Ctx, card: Card, load: CardLoad, rec: p.TxRecord | None,
               why: str) -> LoadOutcome:
    load.status = LoadStatus.REVIEW
    audit.record(ctx, "card.load_review", target_type="card", target_id=card.id,
                 detail={"load_id": load.id, "why": why,
                         "card_counter": rec.counter if rec is not None else None})
    return LoadOutcome(load.id, load.amount, LoadStatus.REVIEW, None, None)


def verify_certificate(ctx: Ctx, card_id: int, record: p.TxRecord) -> bool:
    card = cards.get(ctx, card_id)
    if card.chip_uid is None or card.load_key_version is None:
        raise NotFound("this card has no personalised chip")
    ok = keystore(ctx).verify_certificate(bytes.fromhex(card.chip_uid), card.card_number,
                                          record, card.load_key_version)
    audit.record(ctx, "card.certificate_check", target_type="card", target_id=card.id,
                 detail={"counter": record.counter, "amount": record.amount, "valid": ok})
    return ok


def issue(ctx: Ctx, card_id: int, chip_uid: str | None, counter: CounterReader) -> Card:
    """Issue at the counter: personalise a blank chip on the reader, or bind the UID of a chip
    personalised elsewhere (card bureau); mobile cards have no chip."""
    card = cards.get(ctx, card_id)
    if card.form == "physical" and chip_uid is None:
        return personalise_and_issue(ctx, card_id, counter)
    return cards.issue(ctx, card_id, s.IssueRequest(chip_uid=chip_uid))


def counter_topup(ctx: Ctx, card_id: int, data: s.TopUpRequest, idempotency_key: str | None,
                  counter: CounterReader) -> IdempotentResult:
    """A cash top-up at the counter, as the API and the counter's page both make it: booked
    once per idempotency key (a double click or a reload replays the first answer), committed,
    then carried to the chip if it is on the reader."""
    result = idempotent(ctx, idempotency_key, "purse.topup",
                        {"card_id": card_id, **data.model_dump()},
                        lambda: purse.topup(ctx, card_id, data))
    out = topup_and_load(ctx, card_id, result.body, data.load_card, counter, ctx.db.commit,
                         ctx.db.rollback)
    return IdempotentResult(out, result.status_code, result.replayed)


def counter_replace(ctx: Ctx, card_id: int, data: s.ReplaceRequest,
                    idempotency_key: str | None, counter: CounterReader) -> IdempotentResult:
    """Replace a card at the counter (the API and the page): the new chip personalised on the
    reader, the balance moved once per idempotency key, then loaded onto the new chip."""
    result = idempotent(ctx, idempotency_key, "card.replace",
                        {"card_id": card_id, **data.model_dump()},
                        lambda: cards.replace(ctx, card_id, data, personaliser(ctx, counter)))
    new_card = result.body["new_card"]["id"]
    out = topup_and_load(ctx, new_card, result.body, True, counter, ctx.db.commit,
                         ctx.db.rollback)
    return IdempotentResult(out, result.status_code, result.replayed)


def topup_and_load(ctx: Ctx, card_id: int, result_body: dict[str, object], load_now: bool,
                   counter: CounterReader, commit: Callable[[], None],
                   rollback: Callable[[], None]) -> dict[str, object]:
    """After a committed top-up (or replacement): carry the value to the chip if asked. A card
    that is not on the reader leaves the load pending, and the answer says so; the money
    movement stands.

    The answer's `card_loads` always shows what became of this request's own load, also when
    the request is a retry or another session delivered it, followed by any other loads this
    session delivered. `commit` and `rollback` are the boundary's (the request's): the ledger
    entry is committed before the chip is touched, and a chip session that fails leaves it."""
    load_id = result_body.get("card_load_id")
    if not isinstance(load_id, int):
        return result_body
    commit()  # the ledger entry exists before the chip is touched
    outcomes: list[LoadOutcome] = []
    note = None
    own = ctx.db.get(CardLoad, load_id, populate_existing=True)
    if load_now and own is not None and own.status == LoadStatus.PENDING:
        try:
            outcomes = deliver_loads(ctx, card_id, counter, commit=commit)
        except DomainError as exc:
            rollback()
            note = f"{exc.detail} — the value stays pending and is loaded at the next tap"
    reported = {o.load_id for o in outcomes}
    if load_id not in reported:
        own = ctx.db.get(CardLoad, load_id, populate_existing=True)
        if own is not None:
            outcomes.insert(0, load_outcome(own))
    body = dict(result_body)
    body["card_loads"] = [o.__dict__ for o in outcomes]
    if note:
        body["card_load_note"] = note
    return body


def resolve_load(ctx: Ctx, card_id: int, load_id: int,
                 data: s.LoadResolution) -> s.LoadResolved:
    """A supervisor settles a load in review: the value is on the chip after all (marked
    delivered; its counter stays unknown), or it is not and goes back to the resident in cash
    (the purse in the ledger, which holds it, is debited)."""
    card = cards.get(ctx, card_id, for_update=True)
    load = ctx.db.get(CardLoad, load_id, with_for_update=True, populate_existing=True)
    if load is None or load.card_id != card.id:
        raise NotFound(f"card {card.card_number} has no load {load_id}")
    if load.status != LoadStatus.REVIEW:
        raise LoadNotInReview(f"load {load_id} is {load.status}; only a load in review is "
                              "resolved", load_status=load.status)
    transfer_id, refund = None, 0
    if data.outcome == "on_chip":
        load.status, load.delivered_at = LoadStatus.DELIVERED, ctx.now
    else:
        counter = staff_service.desk_for(ctx, data.counter)
        purse = ledger.purse_of(ctx, card.id)
        cash = ledger.system_account(ctx, AccountKind.COUNTER_CASH, codes.cash_code(counter))
        transfer_id = ledger.post(ctx, "load_refund", [ledger.Leg(purse, -load.amount),
                                                        ledger.Leg(cash, load.amount)],
                                  card_id=card.id, memo=f"load {load.id} refunded at "
                                  f"{counter}: {data.reason}"[:200]).id
        load.status, refund = LoadStatus.REFUNDED, load.amount
    audit.record(ctx, "card.load_resolved", target_type="card", target_id=card.id,
                 detail={"load_id": load.id, "outcome": data.outcome, "reason": data.reason,
                         "amount": load.amount})
    return s.LoadResolved(load=s.CardLoadOut(**load_outcome(load).__dict__), refund_cash=refund,
                          transfer_id=transfer_id, balance=ledger.purse_of(ctx, card.id).balance)


def load_outcome(load: CardLoad) -> LoadOutcome:
    return LoadOutcome(load.id, load.amount, load.status, load.card_balance, load.card_counter)


def loads_of(ctx: Ctx, card_id: int) -> list[CardLoad]:
    cards.get(ctx, card_id)
    return list(ctx.db.scalars(select(CardLoad).where(CardLoad.card_id == card_id)
                               .order_by(CardLoad.id.desc()).limit(50)))


def personaliser(ctx: Ctx, counter: CounterReader) -> cards.Personaliser:
    return lambda card, decision: personalise_chip(ctx, card, decision, counter)
