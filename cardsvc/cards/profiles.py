"""The concession profile a chip carries, and the updates that keep it true.

A profile (concession, last day, version) is written at personalisation. When a new proof
moves the concession's end (an enrolment for another year, a renewed certificate or
employment), the card gets a pending update with the next version; the counter writes it when
the card is on its reader, and every fare terminal fetches pending updates, each sealed for
its card (encrypted and MACed under keys of the card's load key, which only the backend
holds), and writes them at the card's next tap. The chip applies each version once and never
an older one, so delivering an update twice or late is harmless.
"""

from __future__ import annotations

from sqlalchemy import select, update

from cardsvc.audit import service as audit
from cardsvc.cards import eligibility
from cardsvc.cards.models import (
    LIVE_STATUSES,
    Card,
    CardStatus,
    Concession,
    ProfileStatus,
    ProfileUpdate,
)
from cardsvc.context import Ctx
from cardsvc.holders import schemas as hs
from cardsvc.holders import service as holders
from cardsvc.holders.models import Employment, Enrolment
from cardsvc.keystore.service import KeyStore
from readers import protocol as p
from readers.session import CardSession

FEED_PAGE = 1_000


def first_profile(decision: eligibility.Decision) -> p.CardProfile | None:
    """The profile a chip is personalised with (None: no concession)."""
    if decision.concession == Concession.NONE:
        return None
    return p.CardProfile(decision.concession.value, decision.concession_until, 1)


def _has_chip(card: Card) -> bool:
    return card.chip_uid is not None and card.load_key_version is not None


def refresh(ctx: Ctx, holder_id: int) -> list[ProfileUpdate]:
    """Bring the concession end of the holder's live cards in line with the proofs on record;
    queue a profile update for each chip whose profile changes."""
    holder = holders.get(ctx, holder_id)
    out = []
    for card in ctx.db.scalars(select(Card).where(
            Card.cardholder_id == holder.id, Card.status.in_(LIVE_STATUSES),
            Card.concession != Concession.NONE).order_by(Card.id).with_for_update()):
        until = eligibility.concession_end(ctx, holder, card.concession, card.expires_on,
                                           ctx.today)
        if until == card.concession_until:
            continue
        before = card.concession_until
        card.concession_until = until
        detail: dict[str, object] = {"concession": card.concession,
                                     "from": before.isoformat() if before else None,
                                     "to": until.isoformat() if until else None}
        if _has_chip(card) and card.status != CardStatus.APPLIED:
            card.profile_version += 1
            ctx.db.execute(update(ProfileUpdate).where(
                ProfileUpdate.card_id == card.id,
                ProfileUpdate.status == ProfileStatus.PENDING).values(
                status=ProfileStatus.SUPERSEDED))
            row = ProfileUpdate(card_id=card.id, version=card.profile_version,
                                concession=card.concession, ends_on=until,
                                status=ProfileStatus.PENDING, created_at=ctx.now)
            ctx.db.add(row)
            out.append(row)
            detail["profile_version"] = card.profile_version
        audit.record(ctx, "card.concession_change", target_type="card", target_id=card.id,
                     detail=detail)
    ctx.db.flush()
    return out


def record_enrolment(ctx: Ctx, holder_id: int, data: hs.EnrolmentCreate) -> Enrolment:
    """A student enrolment, and the student card's concession moved with it."""
    row = holders.add_enrolment(ctx, holder_id, data)
    refresh(ctx, holder_id)
    return row


def record_employment(ctx: Ctx, holder_id: int, data: hs.EmploymentCreate) -> Employment:
    row = holders.add_employment(ctx, holder_id, data)
    refresh(ctx, holder_id)
    return row


def record_certificate(ctx: Ctx, holder_id: int, data: hs.DisabilityCertificateCreate
                       ) -> hs.DisabilityCertificateOut:
    """A disability certificate: its holder's and its companion's concessions follow it."""
    out = holders.add_disability_certificate(ctx, holder_id, data)
    refresh(ctx, holder_id)
    if data.companion_id is not None:
        refresh(ctx, data.companion_id)
    return out


def change_enrolment_end(ctx: Ctx, holder_id: int, enrolment_id: int,
                         data: hs.EnrolmentEnd) -> Enrolment:
    row = holders.change_enrolment_end(ctx, holder_id, enrolment_id, data)
    refresh(ctx, holder_id)
    return row


def pending(ctx: Ctx, card_id: int) -> ProfileUpdate | None:
    return ctx.db.scalar(select(ProfileUpdate).where(
        ProfileUpdate.card_id == card_id, ProfileUpdate.status == ProfileStatus.PENDING)
        .order_by(ProfileUpdate.version.desc()).limit(1)
        .execution_options(populate_existing=True))


def profile_of(u: ProfileUpdate) -> p.CardProfile:
    return p.CardProfile(u.concession, u.ends_on, u.version)


def _store(ctx: Ctx) -> KeyStore:
    s = ctx.keys.secrets
    return KeyStore(ctx.db, s.kek, s.system_id)


def sealed(ctx: Ctx, card: Card, u: ProfileUpdate, store: KeyStore | None = None) -> bytes:
    """The update sealed for the card (readers.profiles): what a terminal carries to it
    without being able to read or change it."""
    if card.chip_uid is None or card.load_key_version is None:
        raise ValueError("only a personalised chip takes a profile")
    return (store or _store(ctx)).seal_profile(
        bytes.fromhex(card.chip_uid), card.card_number, profile_of(u), card.load_key_version)


def mark_delivered(ctx: Ctx, card: Card, version: int, by: str) -> int:
    """Record that the chip carries profile `version` (the chip refuses older ones, so every
    pending update up to it is done). Returns how many updates this settled."""
    rows = list(ctx.db.scalars(select(ProfileUpdate).where(
        ProfileUpdate.card_id == card.id, ProfileUpdate.status == ProfileStatus.PENDING,
        ProfileUpdate.version <= version).with_for_update()))
    for row in rows:
        row.status = ProfileStatus.DELIVERED
        row.delivered_at, row.delivered_by = ctx.now, by
        audit.record(ctx, "card.profile_delivered", target_type="card", target_id=card.id,
                     detail={"version": row.version, "by": by})
    ctx.db.flush()
    return len(rows)


def deliver_on_chip(ctx: Ctx, card: Card, session: CardSession,
                    store: KeyStore) -> p.CardProfile | None:
    """Write the card's pending update in an authenticated session (the counter's). Returns
    the profile the chip now carries, or None when nothing was pending."""
    u = pending(ctx, card.id)
    if u is None:
        return None
    written, _recovered = session.write_profile(sealed(ctx, card, u, store))
    mark_delivered(ctx, card, written.version, "counter")
    return written


def terminal_feed(ctx: Ctx, since: int) -> tuple[list[tuple[ProfileUpdate, Card, bytes]], bool]:
    """Pending updates after id `since`, each with its card and sealed for it: what fare
    terminals write at a card's next tap (they learn which cards have an update, not what
    it says)."""
    rows = [(u, c) for u, c in ctx.db.execute(select(ProfileUpdate, Card).join(
        Card, Card.id == ProfileUpdate.card_id).where(
        ProfileUpdate.id > since, ProfileUpdate.status == ProfileStatus.PENDING)
        .order_by(ProfileUpdate.id).limit(FEED_PAGE + 1))]
    more = len(rows) > FEED_PAGE
    store = _store(ctx)
    return [(u, c, sealed(ctx, c, u, store)) for u, c in rows[:FEED_PAGE]], more

