"""Retention: a resident's personal data is erased once nothing needs it any more.

Due, at a moment (`due`), for `years` (the setting `retention_years`, or the operator's choice):

- not erased already;
- **no live card**: none applied for, issued, active, reported lost (suspended) or blocked. An
  expired card is not live here: it can no longer be used, what it still holds counts as a
  balance (below), and its expiry is a state change, so the resident's clock starts there;
- **no open balance**: every purse of the resident's cards stands at NT$0 (nothing owed to
  them, nothing by them after an offline overspend), and no chip load waits for the chip or for
  a supervisor's decision (pending, review). Water bills are the water account's, not the
  resident's, and points are not money: neither holds anyone back;
- **no activity** for `years` years: the latest of the moments in `ACTIVITY` (registration and
  corrections to the record, card applications, card events and state changes, postings on the
  cards' purses, chip loads delivered at a counter, concession profiles delivered to the chip
  at a tap, proofs recorded (as holder or as a certificate's companion), library links made or
  removed, e-invoices on the cards' carriers, 歸戶 bound or unbound, event check-ins, points
  redeemed).

Not activity: staff reading or searching the record (audit rows: a look-up must not postpone
erasure for ever), notices the system sent, points the system let expire. Rides and purchases
are the POS domain's records, which the core does not read: each one that moved money is a
posting on the card's purse, and a card is only used while it is live, whose end is a card
event that counts.

Erasure (`erase`) is one transaction per resident, checked again under the resident's row lock
(an application at the counter meanwhile wins), and changes nothing when run again:

- every standing library link is unlinked (the library's feed says the patron is gone) and
  the name, phone, e-mail and township are taken out of every record the libraries were sent;
- every standing 歸戶 binding is ended, and the mobile barcode is blanked in every binding of
  the resident's carriers; the MOF platform is told once the erasure has committed, and the
  barcode it is owed is blanked when it has been told (`einvoice.platform`);
- the proofs go (enrolments, employments, disability certificates); a certificate that named
  the resident as companion no longer names anyone;
- the phone's identity goes from the resident's cards (device id and public key);
- the record keeps its id (the pseudonym that cards, the ledger, statistics and the audit trail
  name) and its township (the issuance statistics count cards by township); the name, national
  ID, its blind index (freed, so the same person can register again as a new resident), birth
  date, phone and e-mail are blanked, and `erased_at` is set;
- one audit row, `cardholder.erase`, says so: the rule and the years, never personal data.

The ledger and the audit trail are append-only and stay as they are; so do invoices, check-ins
(their township and age band are the participation statistics) and points.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import sqlite3
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import (
    ColumnElement,
    Engine,
    Select,
    delete,
    exists,
    func,
    or_,
    select,
    type_coerce,
    union_all,
    update,
)

from cardsvc.audit import service as audit
from cardsvc.cards.models import (
    Card,
    CardEvent,
    CardLoad,
    CardStatus,
    LoadStatus,
    ProfileUpdate,
)
from cardsvc.context import Actor, Ctx
from cardsvc.db import UTCDateTime, unit_of_work
from cardsvc.einvoice import service as einvoice
from cardsvc.einvoice.models import Carrier, CarrierBinding, Invoice
from cardsvc.events.models import CheckIn
from cardsvc.holders import service as holders
from cardsvc.holders.models import Cardholder, DisabilityCertificate, Employment, Enrolment
from cardsvc.ledger.models import Account, Posting
from cardsvc.library import records
from cardsvc.library import service as library
from cardsvc.library.models import LibraryEvent, LibraryLink
from cardsvc.points.models import Redemption
from cardsvc.runtime import Runtime

log = logging.getLogger("cardsvc.retention")

RULE = "retention"
# Cards that can still be used or brought back (an expired card can only be renewed, which
# needs the resident at the counter: a new card, itself activity).
LIVE = frozenset({CardStatus.APPLIED, CardStatus.ISSUED, CardStatus.ACTIVE,
                  CardStatus.SUSPENDED, CardStatus.BLOCKED})
# Chip loads whose money has not reached the chip or been decided on.
OPEN_LOADS = frozenset({LoadStatus.PENDING, LoadStatus.REVIEW})
# The blind index of an erased resident: unique as the column wants, never a keyed hash (those
# are 64 hex digits), so the national ID is free to register again.
ERASED_INDEX = "erased:{id}"


def _moment(holder: Any, at: Any) -> Select[Any]:
    return select(holder.label("holder_id"), at.label("at"))


def _activity() -> list[Select[Any]]:
    """Each kind of activity as (holder id, moment) rows: one list, which both who is due and
    their last activity read."""
    on_card = Card.cardholder_id
    return [
        _moment(Cardholder.id, Cardholder.created_at),
        _moment(Cardholder.id, Cardholder.updated_at),
        _moment(on_card, Card.applied_at),
        _moment(on_card, Card.status_changed_at),
        _moment(on_card, CardEvent.at).select_from(CardEvent)
        .join(Card, Card.id == CardEvent.card_id),
        _moment(on_card, Posting.created_at).select_from(Posting)
        .join(Account, Account.id == Posting.account_id)
        .join(Card, Card.id == Account.card_id),
        _moment(on_card, CardLoad.delivered_at).select_from(CardLoad)
        .join(Card, Card.id == CardLoad.card_id),
        _moment(on_card, ProfileUpdate.delivered_at).select_from(ProfileUpdate)
        .join(Card, Card.id == ProfileUpdate.card_id),
        _moment(Enrolment.cardholder_id, Enrolment.created_at),
        _moment(Employment.cardholder_id, Employment.created_at),
        _moment(DisabilityCertificate.cardholder_id, DisabilityCertificate.created_at),
        _moment(DisabilityCertificate.companion_id, DisabilityCertificate.created_at)
        .where(DisabilityCertificate.companion_id.is_not(None)),
        _moment(LibraryLink.cardholder_id, LibraryLink.consented_at),
        _moment(LibraryLink.cardholder_id, LibraryLink.unlinked_at),
        _moment(Carrier.cardholder_id, Invoice.created_at).select_from(Invoice)
        .join(Carrier, Carrier.id == Invoice.carrier_id),
        _moment(Carrier.cardholder_id, CarrierBinding.bound_at).select_from(CarrierBinding)
        .join(Carrier, Carrier.id == CarrierBinding.carrier_id),
        _moment(Carrier.cardholder_id, CarrierBinding.unbound_at).select_from(CarrierBinding)
        .join(Carrier, Carrier.id == CarrierBinding.carrier_id),
        _moment(CheckIn.cardholder_id, CheckIn.tapped_at),
        _moment(Redemption.cardholder_id, Redemption.created_at),
    ]


ACTIVITY = _activity()


def _has_live_card() -> ColumnElement[bool]:
    return exists(select(Card.id).where(Card.cardholder_id == Cardholder.id,
                                        Card.status.in_(LIVE)))


def _has_open_balance() -> ColumnElement[bool]:
    return or_(
        exists(select(Account.id).join(Card, Card.id == Account.card_id)
               .where(Card.cardholder_id == Cardholder.id, Account.balance != 0)),
        exists(select(CardLoad.id).join(Card, Card.id == CardLoad.card_id)
               .where(Card.cardholder_id == Cardholder.id, CardLoad.status.in_(OPEN_LOADS))))


def cutoff(now: dt.datetime, years: int) -> dt.datetime:
    """The same moment `years` years earlier (29 February falls back to the 28th): activity
    before it is old enough."""
    try:
        return now.replace(year=now.year - years)
    except ValueError:
        return now.replace(year=now.year - years, day=28)


def _due_query(now: dt.datetime, years: int) -> Select[Any]:
    moments = union_all(*ACTIVITY).subquery("activity")
    last = (select(moments.c.holder_id,
                   type_coerce(func.max(moments.c.at), UTCDateTime).label("last"))
            .group_by(moments.c.holder_id).subquery("last_activity"))
    return (select(Cardholder.id, last.c.last)
            .join(last, last.c.holder_id == Cardholder.id)
            .where(Cardholder.erased_at.is_(None), last.c.last < cutoff(now, years),
                   ~_has_live_card(), ~_has_open_balance())
            .order_by(Cardholder.id))


@dataclass(frozen=True)
class Due:
    holder_id: int
    last_activity: dt.datetime


def due(ctx: Ctx, years: int) -> list[Due]:
    """Everyone due at `ctx.now`, by id; reads no personal data."""
    return [Due(int(row[0]), row[1]) for row in ctx.db.execute(_due_query(ctx.now, years))]


@dataclass(frozen=True)
class Candidate:
    holder_id: int
    last_activity: dt.datetime
    person_id_masked: str


def review(ctx: Ctx, years: int) -> list[Candidate]:
    """Who is due, with the masked national ID an operator checks the list by (the reading
    is audited, as every read of personal data is)."""
    found = due(ctx, years)
    masked: dict[int, str] = {}
    ids = [d.holder_id for d in found]
    for i in range(0, len(ids), 500):
        for holder in ctx.db.scalars(select(Cardholder).where(Cardholder.id.in_(ids[i:i + 500]))):
            masked[holder.id] = holders.masked_person_id(ctx, holder)
    audit.record(ctx, "retention.review", target_type="cardholder", purpose="retention review",
                 detail={"rule": RULE, "years": years, "due": len(found)})
    return [Candidate(d.holder_id, d.last_activity, masked[d.holder_id]) for d in found]


def _redacted(record: str) -> str:
    """A library record without what the resident chose to share (name, phone, ...)."""
    fields: dict[str, Any] = json.loads(record)
    for name in records.OPTIONAL_FIELDS:
        fields.pop(name, None)
    return records.encode(fields)


def _unlink_libraries(ctx: Ctx, holder_id: int) -> int:
    links = list(ctx.db.scalars(select(LibraryLink).where(
        LibraryLink.cardholder_id == holder_id).order_by(LibraryLink.id)))
    unlinked = 0
    for link in links:
        if link.live_holder_id is not None:
            library.unlink(ctx, link.id)
            unlinked += 1
        if link.last_record is not None:
            link.last_record = _redacted(link.last_record)
    patrons = [link.patron_id for link in links]
    if patrons:
        for event in ctx.db.scalars(select(LibraryEvent).where(
                LibraryEvent.patron_id.in_(patrons))):
            event.record = _redacted(event.record)
    return unlinked


def _unbind_carriers(ctx: Ctx, holder_id: int) -> int:
    carriers = {c.id: c for c in ctx.db.scalars(select(Carrier).where(
        Carrier.cardholder_id == holder_id))}
    if not carriers:
        return 0
    unbound = 0
    for binding in ctx.db.scalars(select(CarrierBinding).where(
            CarrierBinding.carrier_id.in_(list(carriers))).order_by(CarrierBinding.id)
            .with_for_update()):
        if binding.live_carrier_id is not None:
            einvoice.end_binding(ctx, carriers[binding.carrier_id], binding)
            unbound += 1
        binding.mobile_barcode = ""
    return unbound


def _remove_proofs(ctx: Ctx, holder_id: int) -> int:
    removed = 0
    for model in (Enrolment, Employment, DisabilityCertificate):
        result = ctx.db.execute(delete(model).where(model.cardholder_id == holder_id))
        removed += int(getattr(result, "rowcount", 0) or 0)
    ctx.db.execute(update(DisabilityCertificate)
                   .where(DisabilityCertificate.companion_id == holder_id)
                   .values(companion_id=None))
    return removed


def erase(ctx: Ctx, holder_id: int, years: int) -> bool:
    """Erase one resident's personal data if they are (still) due; False when there was
    nothing to do (erased already, or no longer due)."""
    holder = ctx.db.get(Cardholder, holder_id, with_for_update=True, populate_existing=True)
    if holder is None or holder.erased_at is not None:
        return False
    still_due = ctx.db.execute(_due_query(ctx.now, years)
                               .where(Cardholder.id == holder_id)).first()
    if still_due is None:
        return False
    links = _unlink_libraries(ctx, holder.id)
    bindings = _unbind_carriers(ctx, holder.id)
    proofs = _remove_proofs(ctx, holder.id)
    ctx.db.execute(update(Card).where(Card.cardholder_id == holder.id).values(
        device_id=None, live_device_id=None, device_public_key=None))
    holder.name = ""
    holder.person_id_enc = ""
    holder.person_id_hash = ERASED_INDEX.format(id=holder.id)
    holder.person_id_kind = ""
    holder.birth_date_enc = ""
    holder.phone_enc = None
    holder.email_enc = None
    holder.erased_at = holder.updated_at = ctx.now
    ctx.db.flush()
    audit.record(ctx, "cardholder.erase", target_type="cardholder", target_id=holder.id,
                 detail={"rule": RULE, "years": years, "library_links": links,
                         "einvoice_bindings": bindings, "proofs": proofs})
    return True


@dataclass
class RunResult:
    due: int = 0
    erased: int = 0
    skipped: int = 0  # no longer due when their turn came (a card applied for meanwhile)
    failed: list[int] = field(default_factory=list)  # refused or unreachable: tried next run
    compacted: bool = False


def run(rt: Runtime, actor: Actor, years: int, *,
        progress: Callable[[int, int], None] | None = None,
        now: dt.datetime | None = None) -> RunResult:
    """Erase everyone due, each in a transaction of their own (an interrupted run leaves
    each resident whole or erased, and the next run finishes the rest); then compact the
    embedded database so that what was erased is not left in its free pages."""
    result = RunResult()

    def ctx_for(db: Any) -> Ctx:
        ctx = rt.ctx(db, actor)
        if now is not None:
            ctx.now = now
        return ctx

    with unit_of_work(rt.sessions) as db:
        ids = [d.holder_id for d in due(ctx_for(db), years)]
    result.due = len(ids)
    for done, holder_id in enumerate(ids, start=1):
        try:
            with unit_of_work(rt.sessions) as db:
                erased = erase(ctx_for(db), holder_id, years)
        except Exception as exc:
            # A deadlock, a busy database, a refusal of a service it calls: that resident's
            # transaction rolled back whole and the next run tries again; one resident never
            # stops the others.
            log.warning("cardholder %s not erased: %s", holder_id, type(exc).__name__)
            result.failed.append(holder_id)
        else:
            if erased:
                result.erased += 1
            else:
                result.skipped += 1
        if progress is not None:
            progress(done, len(ids))
    if result.erased:
        result.compacted = compact(rt.engine)
    return result


def compact(engine: Engine) -> bool:
    """SQLite keeps deleted and overwritten content in free pages and in its write-ahead log
    until they are reused: rebuild the file and empty the log (PostgreSQL's dead row versions
    are its vacuum's to reclaim). False when another writer held the database meanwhile."""
    if engine.dialect.name != "sqlite":
        return False
    raw = engine.raw_connection()
    try:
        cur = raw.cursor()
        cur.execute("VACUUM")
        cur.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        cur.close()
    except sqlite3.OperationalError as exc:
        log.warning("database not compacted after erasure: %s", exc)
        return False
    finally:
        raw.close()
    return True
