"""County events: organising them, checking residents in, and the draws among them.

A check-in proves the card was there without the station holding any key: the station asks
the card to answer a challenge made from the event and its own random nonce, and the server
checks the answer with the card's identity key (a cloned UID, or an answer replayed from
another tap, does not verify). The phone's mobile card signs a check-in token instead. The
nonce (or the token's id) is the check-in's reference, so an offline station's upload sent
twice stores each tap once.

The draw: the seed is drawn and committed to (SHA-256, public) when the event is published,
before anyone checks in; the ticket list freezes when check-in closes (its Merkle root
public); the draw reveals the seed and picks winners by `drawrule`, which anyone can rerun.
"""

from __future__ import annotations

import datetime as dt
import secrets
from typing import Any

from sqlalchemy import select, update
from sqlalchemy.exc import IntegrityError

from cardsvc.audit import service as audit
from cardsvc.cards import device
from cardsvc.cards.chip import keystore
from cardsvc.cards.models import Card, CardStatus
from cardsvc.context import TAIPEI, Ctx
from cardsvc.db_upsert import insert_if_absent
from cardsvc.errors import DomainError, InvalidInput, NotFound
from cardsvc.events import drawrule, rules
from cardsvc.events import schemas as s
from cardsvc.events.errors import (
    AlreadyCheckedIn,
    BadToken,
    CardNotActive,
    CheckinClosed,
    EventFull,
    EventState,
    NotGenuine,
    NotYourDepartment,
    TicketClash,
    UnknownCard,
    UnknownTicket,
)
from cardsvc.events.models import CheckIn, CheckinMethod, Event, EventStatus, Winner
from cardsvc.holders import service as holders
from cardsvc.notify.models import Notification, NotificationStatus
from cardsvc.points import service as points
from cardsvc.staff.models import Staff
from cardsvc.staff.roles import Role
from readers.protocol import KeyPurpose
from readers.session import proof_valid

# --- organising ----------------------------------------------------------------------------


def _department_of(ctx: Ctx) -> str | None:
    """An organiser's department; None for the roles that see every department."""
    if ctx.actor.role != Role.ORGANISER:
        return None
    staff = ctx.db.get(Staff, ctx.actor.staff_id)
    return (staff.department if staff is not None else None) or ""


def _may_manage(ctx: Ctx, event: Event) -> None:
    own = _department_of(ctx)
    if own is not None and own != event.department:
        raise NotYourDepartment(f"event {event.id} is organised by {event.department}; you "
                                f"organise for {own or 'no department'}")


def get(ctx: Ctx, event_id: int, *, for_update: bool = False) -> Event:
    event = ctx.db.get(Event, event_id, with_for_update=for_update, populate_existing=True)
    if event is None:
        raise NotFound(f"no event {event_id}")
    return event


def managed(ctx: Ctx, event_id: int, *, for_update: bool = False) -> Event:
    event = get(ctx, event_id, for_update=for_update)
    _may_manage(ctx, event)
    return event


def create(ctx: Ctx, data: s.EventCreate) -> Event:
    own = _department_of(ctx)
    department = (data.department or "").strip() or own
    if own is not None and department != own:
        raise NotYourDepartment(f"you organise events for {own or 'no department'} only")
    if not department:
        raise InvalidInput("give the organising department", field="department")
    event = Event(title=data.title, department=department, venue=data.venue,
                  starts_at=data.starts_at, ends_at=data.ends_at,
                  checkin_opens=data.checkin_opens, checkin_closes=data.checkin_closes,
                  points=data.points, capacity=data.capacity, prizes=data.prizes,
                  prize_description=data.prize_description, status=EventStatus.DRAFT,
                  checkins=0, created_by=ctx.actor.username, created_at=ctx.now)
    ctx.db.add(event)
    ctx.db.flush()
    audit.record(ctx, "event.create", target_type="event", target_id=event.id,
                 detail={"department": department, "prizes": data.prizes,
                         "points": data.points})
    return event


def list_events(ctx: Ctx, *, public: bool = False) -> list[Event]:
    q = select(Event).order_by(Event.starts_at.desc(), Event.id.desc())
    if public:
        q = q.where(Event.status.in_([EventStatus.PUBLISHED, EventStatus.FROZEN,
                                      EventStatus.DRAWN]))
    else:
        own = _department_of(ctx)
        if own is not None:
            q = q.where(Event.department == own)
    return list(ctx.db.scalars(q))


def publish(ctx: Ctx, event_id: int) -> Event:
    """Make the event public; an event with a draw gets its seed and commitment now, before
    anyone can check in."""
    event = managed(ctx, event_id, for_update=True)
    if event.status != EventStatus.DRAFT:
        raise EventState(f"event {event_id} is {event.status}; only a draft is published")
    if ctx.now >= event.checkin_closes:
        raise EventState("check-in of this event has already closed")
    if event.prizes:
        seed = secrets.token_bytes(32)
        event.seed_enc = ctx.keys.pii.encrypt("draw_seed", seed.hex())
        event.commitment = drawrule.commitment(seed)
    event.status, event.published_at = EventStatus.PUBLISHED, ctx.now
    audit.record(ctx, "event.publish", target_type="event", target_id=event.id,
                 detail={"commitment": event.commitment})
    return event


def cancel(ctx: Ctx, event_id: int) -> Event:
    event = managed(ctx, event_id, for_update=True)
    if event.status not in (EventStatus.DRAFT, EventStatus.PUBLISHED):
        raise EventState(f"event {event_id} is {event.status}: its list is frozen")
    event.status = EventStatus.CANCELLED
    audit.record(ctx, "event.cancel", target_type="event", target_id=event.id)
    return event


def tickets(ctx: Ctx, event_id: int) -> list[str]:
    return sorted(ctx.db.scalars(select(CheckIn.ticket).where(CheckIn.event_id == event_id)))


def freeze(ctx: Ctx, event_id: int) -> Event:
    """Close check-in (now, if its window is still open) and freeze the ticket list."""
    event = managed(ctx, event_id, for_update=True)
    if event.status != EventStatus.PUBLISHED:
        raise EventState(f"event {event_id} is {event.status}; only a published event's "
                         "list freezes")
    closed_early = ctx.now < event.checkin_closes
    if closed_early:
        event.checkin_closes = ctx.now
    listed = tickets(ctx, event_id)
    event.merkle_root = drawrule.merkle_root(listed)
    event.status, event.frozen_at = EventStatus.FROZEN, ctx.now
    audit.record(ctx, "event.freeze", target_type="event", target_id=event.id,
                 detail={"tickets": len(listed), "merkle_root": event.merkle_root,
                         "closed_early": closed_early})
    return event


def draw(ctx: Ctx, event_id: int, public_value: str) -> list[Winner]:
    event = managed(ctx, event_id, for_update=True)
    if event.status != EventStatus.FROZEN:
        raise EventState(f"event {event_id} is {event.status}; the draw follows the freeze")
    if not event.prizes or event.seed_enc is None:
        raise EventState(f"event {event_id} has no draw")
    seed_hex = ctx.keys.pii.decrypt("draw_seed", event.seed_enc)
    listed = tickets(ctx, event_id)
    if drawrule.merkle_root(listed) != event.merkle_root:
        raise EventState("the ticket list changed after it froze; the draw is not held")
    picked = drawrule.winners(bytes.fromhex(seed_hex), public_value, listed, event.prizes)
    drawn = {c.ticket: c for c in ctx.db.scalars(select(CheckIn).where(
        CheckIn.event_id == event_id, CheckIn.ticket.in_(picked)))}
    found = [Winner(event_id=event_id, rank=n, ticket=t, checkin_id=drawn[t].id)
             for n, t in enumerate(picked, start=1)]
    ctx.db.add_all(found)
    event.public_value, event.seed_revealed = public_value, seed_hex
    event.status, event.drawn_at, event.drawn_by = EventStatus.DRAWN, ctx.now, \
        ctx.actor.username
    ctx.db.flush()
    _notify_winners(ctx, event, [drawn[t] for t in picked])
    audit.record(ctx, "event.draw", target_type="event", target_id=event.id,
                 detail={"public_value": public_value, "winners": picked})
    return found


def _notify_winners(ctx: Ctx, event: Event, winning: list[CheckIn]) -> None:
    for c in winning:
        insert_if_absent(ctx.db, Notification, {
            "dedup_key": f"event:{event.id}:win:{c.ticket}",
            "cardholder_id": c.cardholder_id, "kind": "event.win",
            "text": (f"恭喜！您在「{event.title}」簽到抽獎中獎（獎項：{event.prize_description}，"
                     f"抽獎券 {c.ticket}），請持卡至縣民卡服務台領獎。Congratulations: your "
                     f"ticket {c.ticket} won at {event.title}; bring your card to the counter "
                     "to collect the prize."),
            "status": NotificationStatus.PENDING, "attempts": 0, "created_at": ctx.now},
            [Notification.dedup_key], Notification.id)


def winners(ctx: Ctx, event_id: int) -> list[Winner]:
    return list(ctx.db.scalars(select(Winner).where(Winner.event_id == event_id)
                               .order_by(Winner.rank)))


def collect(ctx: Ctx, event_id: int, ticket: str) -> Winner:
    """The prize handed over (the winner showed the card whose check-in holds the ticket)."""
    found = ctx.db.scalar(select(Winner).where(Winner.event_id == event_id,
                                               Winner.ticket == ticket.upper())
                          .with_for_update())
    if found is None:
        raise UnknownTicket(f"ticket {ticket} did not win at event {event_id}")
    if found.collected_at is not None:
        raise EventState(f"the prize of ticket {found.ticket} was collected on "
                         f"{found.collected_at:%Y-%m-%d %H:%M} UTC by {found.collected_by}")
    found.collected_at, found.collected_by = ctx.now, ctx.actor.username
    audit.record(ctx, "event.prize_collect", target_type="event", target_id=event_id,
                 detail={"ticket": found.ticket, "rank": found.rank})
    return found


# --- the public record ---------------------------------------------------------------------


def public_record(ctx: Ctx, event_id: int) -> dict[str, Any]:
    """The draw's whole record, as `drawrule.verify` reads it: public, no names."""
    event = get(ctx, event_id)
    if event.status in (EventStatus.DRAFT, EventStatus.CANCELLED):
        raise NotFound(f"no public event {event_id}")
    frozen = event.status in (EventStatus.FROZEN, EventStatus.DRAWN)
    return {
        "rule": drawrule.RULE,
        "event": {"id": event.id, "title": event.title, "department": event.department,
                  "venue": event.venue, "starts_at": event.starts_at.isoformat(),
                  "prize_description": event.prize_description},
        "prizes": event.prizes,
        "commitment": event.commitment,
        "committed_at": event.published_at.isoformat() if event.published_at else None,
        "checkin_closes": event.checkin_closes.isoformat(),
        "tickets": tickets(ctx, event_id) if frozen else None,
        "merkle_root": event.merkle_root,
        "frozen_at": event.frozen_at.isoformat() if event.frozen_at else None,
        "seed": event.seed_revealed,
        "public_value": event.public_value,
        "winners": [w.ticket for w in winners(ctx, event_id)] if event.drawn_at else None,
        "drawn_at": event.drawn_at.isoformat() if event.drawn_at else None,
    }


def inclusion_proof(ctx: Ctx, event_id: int, ticket: str) -> s.ProofOut:
    event = get(ctx, event_id)
    if event.merkle_root is None:
        raise EventState(f"event {event_id}'s list has not frozen yet")
    listed = tickets(ctx, event_id)
    ticket = ticket.upper()
    if ticket not in listed:
        raise UnknownTicket(f"ticket {ticket} is not in event {event_id}'s list")
    return s.ProofOut(ticket=ticket, merkle_root=event.merkle_root,
                      path=drawrule.inclusion_proof(listed, ticket))


# --- check-in ------------------------------------------------------------------------------


def _card_by_chip(ctx: Ctx, event: Event, proof: s.ChipProof) -> tuple[Card, str]:
    uid = proof.uid.upper()
    card = ctx.db.scalar(select(Card).where(Card.chip_uid == uid))
    if card is None:
        raise UnknownCard(f"no card of the programme has chip {uid}")
    try:
        key = keystore(ctx).card_key(KeyPurpose.IDENTITY, proof.key_version,
                                     bytes.fromhex(uid))
    except NotFound:
        raise NotGenuine(f"no identity key version {proof.key_version}") from None
    challenge = rules.challenge(event.id, proof.nonce.lower())
    if not proof_valid(key, bytes.fromhex(uid), challenge, bytes.fromhex(proof.rnd_b),
                       bytes.fromhex(proof.proof)):
        raise NotGenuine("the card's answer does not verify with its identity key: a copied "
                         "UID or a replayed answer")
    return card, f"chip:{proof.nonce.lower()}"


def make_phone_token(private_key: Any, card_number: str, event_id: int,
                     now: float) -> str:
    """What the residents' app shows at the station (the demo and the tests use it)."""
    return device.make_token(private_key, rules.TOKEN_PREFIX, {
        "v": 1, "card": card_number, "event": event_id, "tid": secrets.token_urlsafe(12),
        "iat": int(now)})


def _card_by_phone(ctx: Ctx, event: Event, proof: s.PhoneProof,
                   tapped_at: dt.datetime) -> tuple[Card, str]:
    opened = device.open_token(proof.token, rules.TOKEN_PREFIX)
    if opened is None:
        raise BadToken("not a check-in token")
    claims, signed, signature = opened
    number, tid, event_id, iat = (claims.get("card"), claims.get("tid"), claims.get("event"),
                                  claims.get("iat"))
    if not (claims.get("v") == 1 and isinstance(number, str) and isinstance(tid, str)
            and 8 <= len(tid) <= 64 and isinstance(iat, int) and isinstance(event_id, int)):
        raise BadToken("the token lacks card, event, tid or iat")
    if event_id != event.id:
        raise BadToken(f"the token is for event {event_id}, not {event.id}")
    if abs(tapped_at.timestamp() - iat) > ctx.settings.checkin_token_ttl_seconds:
        raise BadToken("the token is stale: show a fresh one")
    card = ctx.db.scalar(select(Card).where(Card.card_number == number))
    if card is None or not card.device_public_key:
        raise UnknownCard("no mobile card with this number")
    if not device.verify(card.device_public_key, signed, signature):
        raise BadToken("the token is not signed by the card's phone")
    return card, f"phone:{tid}"


def _existing(ctx: Ctx, proof_ref: str) -> CheckIn | None:
    return ctx.db.scalar(select(CheckIn).where(CheckIn.proof_ref == proof_ref))


def _out(row: CheckIn, repeated: bool) -> s.CheckinOut:
    return s.CheckinOut(checkin_id=row.id, event_id=row.event_id, ticket=row.ticket,
                        method=row.method, points=row.points, tapped_at=row.tapped_at,
                        repeated=repeated)


def check_in(ctx: Ctx, event_id: int, data: s.CheckinRequest) -> s.CheckinOut:
    """One tap at a station that is online."""
    event = managed(ctx, event_id)
    return _check_in(ctx, event, data, offline=False)


def _refuse_if_checked_in(ctx: Ctx, event_id: int, cardholder_id: int) -> None:
    already = ctx.db.scalar(select(CheckIn.ticket).where(
        CheckIn.event_id == event_id, CheckIn.cardholder_id == cardholder_id))
    if already is not None:
        raise AlreadyCheckedIn(f"this resident checked in already (ticket {already})",
                               ticket=already)


def _check_in(ctx: Ctx, event: Event, data: s.CheckinRequest, *,
              offline: bool) -> s.CheckinOut:
    """One tap: the card's proof checked, one check-in per resident, a ticket, points."""
    event_id = event.id
    tapped_at = data.tapped_at if offline and data.tapped_at is not None else ctx.now
    if event.status != EventStatus.PUBLISHED:
        if event.status in (EventStatus.FROZEN, EventStatus.DRAWN):
            raise CheckinClosed(f"event {event_id}'s list froze at {event.frozen_at:%H:%M} "
                                "UTC: check-in is closed")
        raise EventState(f"event {event_id} is {event.status}, not open for check-in")
    if not event.checkin_opens <= tapped_at <= event.checkin_closes:
        raise CheckinClosed(f"check-in is open {event.checkin_opens:%Y-%m-%d %H:%M} to "
                            f"{event.checkin_closes:%Y-%m-%d %H:%M} UTC")
    if offline and tapped_at > ctx.now + dt.timedelta(minutes=5):
        raise InvalidInput("the tap is dated in the future: check the station's clock",
                           field="tapped_at")
    proof = data.proof
    card, proof_ref = (_card_by_chip(ctx, event, proof) if isinstance(proof, s.ChipProof)
                       else _card_by_phone(ctx, event, proof, tapped_at))
    found = _existing(ctx, proof_ref)
    if found is not None:
        if found.event_id != event_id:
            raise BadToken("this proof belongs to another event's check-in")
        return _out(found, True)
    if card.status != CardStatus.ACTIVE or card.expires_on < tapped_at.date():
        raise CardNotActive(f"card {card.card_number} is {card.status}",
                            card_status=card.status)
    _refuse_if_checked_in(ctx, event_id, card.cardholder_id)
    holder = holders.get(ctx, card.cardholder_id)
    row = CheckIn(event_id=event_id, cardholder_id=card.cardholder_id, card_id=card.id,
                  ticket=rules.ticket_for(proof_ref), method=(
                      CheckinMethod.CHIP if isinstance(proof, s.ChipProof)
                      else CheckinMethod.PHONE),
                  proof_ref=proof_ref, station=data.station, tapped_at=tapped_at,
                  received_at=ctx.now, offline=offline, township=holder.township,
                  age_band=rules.age_band(holders.birth_date(ctx, holder),
                                          tapped_at.astimezone(TAIPEI).date()),
                  points=event.points)
    savepoint = ctx.db.begin_nested()
    try:
        seat = ctx.db.execute(update(Event).where(
            Event.id == event_id,
            (Event.capacity.is_(None)) | (Event.checkins < Event.capacity))
            .values(checkins=Event.checkins + 1).execution_options(synchronize_session=False))
        if not getattr(seat, "rowcount", 0):
            savepoint.rollback()
            raise EventFull(f"event {event_id} is full ({event.capacity} check-ins)")
        ctx.db.add(row)
        ctx.db.flush()
    except IntegrityError:
        savepoint.rollback()
        return _after_clash(ctx, event_id, card, proof_ref, row.ticket)
    savepoint.commit()
    points.award(ctx, card.cardholder_id, event.points, f"checkin:{row.id}", event.title)
    audit.record(ctx, "event.checkin", target_type="event", target_id=event_id,
                 detail={"card": card.id, "method": row.method, "ticket": row.ticket,
                         "station": data.station, "offline": offline})
    return _out(row, False)


def _after_clash(ctx: Ctx, event_id: int, card: Card, proof_ref: str,
                 ticket: str) -> s.CheckinOut:
    """A unique key stopped the insert: the same tap stored meanwhile (an upload racing a
    retry), the resident checked in meanwhile (two taps at once), or a ticket clash."""
    found = _existing(ctx, proof_ref)
    if found is not None:
        return _out(found, True)
    _refuse_if_checked_in(ctx, event_id, card.cardholder_id)
    raise TicketClash(f"ticket {ticket} is taken at this event; tap again")


def upload(ctx: Ctx, event_id: int, batch: s.CheckinBatch) -> s.BatchOut:
    """An offline station's taps, each stored once (a batch sent again changes nothing);
    a tap refused is reported, and the rest are stored."""
    event = managed(ctx, event_id)
    results: list[s.BatchResult] = []
    for n, record in enumerate(batch.records):
        try:
            out = _check_in(ctx, event, record, offline=True)
        except DomainError as exc:
            results.append(s.BatchResult(index=n, status="refused", code=exc.code,
                                         detail=exc.detail, ticket=exc.extra.get("ticket")))
            continue
        results.append(s.BatchResult(index=n, status="repeated" if out.repeated else "stored",
                                     ticket=out.ticket))
    counts = {k: sum(1 for r in results if r.status == k)
              for k in ("stored", "repeated", "refused")}
    audit.record(ctx, "event.checkin_upload", target_type="event", target_id=event_id,
                 detail={"station": batch.station, **counts})
    return s.BatchOut(results=results, **counts)


def checkins_of_holder(ctx: Ctx, cardholder_id: int) -> list[tuple[CheckIn, Event]]:
    return list(ctx.db.execute(select(CheckIn, Event).join(Event, Event.id == CheckIn.event_id)
                               .where(CheckIn.cardholder_id == cardholder_id)
                               .order_by(CheckIn.tapped_at.desc())).all())

