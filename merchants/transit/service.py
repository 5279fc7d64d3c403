"""Fare tables (published, signed, fetched by terminals) and rides (verified and booked).

A ride is a chip debit like a purchase, with three more certified fields: the card's product
and concession and the full fare beside the fare charged. It passes the same checks as every
online chip debit (`merchants.pos.service.check_chip_debit`), then: the full fare must be the
route's in the fare table version the terminal charged by. Whether the concession was valid
on the ride's day is clearing's question (settlement.subsidies): a ride is booked as the card
paid it, and its subsidy is decided there.
"""

from __future__ import annotations

import datetime as dt
import json

from sqlalchemy import func, select
from sqlalchemy.exc import IntegrityError

from cardsvc.audit import service as audit
from cardsvc.cards import profiles
from cardsvc.context import TAIPEI, Ctx
from cardsvc.security import signing
from merchants.pos import errors as pe
from merchants.pos import service as pos
from merchants.pos.models import PosKind, PosStatus, PosTransaction
from merchants.registry.models import Merchant, MerchantCategory, Terminal
from merchants.registry.service import get_merchant
from merchants.transit import errors as e
from merchants.transit import fares
from merchants.transit import schemas as s
from merchants.transit.models import FareTableRow, Ride

RIDE_OPERATION = "pos.ride"


def operator(ctx: Ctx, merchant_id: int, *, for_update: bool = False) -> Merchant:
    m = get_merchant(ctx, merchant_id, for_update=for_update)
    if m.category != MerchantCategory.TRANSIT:
        raise e.NotTransitOperator(f"merchant {m.id} is a {m.category} merchant; fare tables "
                                   "and rides belong to transit operators")
    return m


def publish(ctx: Ctx, merchant_id: int, data: s.FareTableCreate) -> FareTableRow:
    """A new version of the operator's fare table, signed with the backend's key."""
    m = operator(ctx, merchant_id, for_update=True)  # one publisher at a time per operator
    last = ctx.db.scalar(select(func.max(FareTableRow.version)).where(
        FareTableRow.merchant_id == m.id)) or 0
    routes = {r: f.model_dump() for r, f in sorted(data.routes.items())}
    doc: dict[str, object] = {"operator_id": m.id, "version": int(last) + 1, "routes": routes,
                              "classes": dict(data.classes
                                              or ctx.settings.concession_fare_classes)}
    try:
        fares.check_document(doc)
    except fares.FareTableRejected as exc:
        raise e.InvalidFareTable(str(exc)) from None
    kid, sig = signing.sign(ctx.keys.secrets, fares.canonical(doc))
    row = FareTableRow(merchant_id=m.id, version=doc["version"],
                       document=fares.canonical(doc).decode(), key_id=kid, signature=sig,
                       created_by=ctx.actor.username, created_at=ctx.now)
    try:
        with ctx.db.begin_nested():
            ctx.db.add(row)
            ctx.db.flush()
    except IntegrityError:
        raise e.InvalidFareTable("another fare table was published for this operator at the "
                                 "same time; publish again") from None
    audit.record(ctx, "transit.fare_table_publish", target_type="merchant", target_id=m.id,
                 detail={"version": row.version, "routes": len(routes),
                         "key_id": kid})
    return row


def table_out(row: FareTableRow) -> s.FareTableOut:
    doc = json.loads(row.document)
    return s.FareTableOut(version=row.version, operator_id=row.merchant_id,
                          routes=doc["routes"], classes=doc["classes"], key_id=row.key_id,
                          created_by=row.created_by, created_at=row.created_at)


def tables(ctx: Ctx, merchant_id: int) -> list[FareTableRow]:
    operator(ctx, merchant_id)
    return list(ctx.db.scalars(select(FareTableRow).where(
        FareTableRow.merchant_id == merchant_id).order_by(FareTableRow.version.desc())))


def table_row(ctx: Ctx, merchant_id: int, version: int | None = None) -> FareTableRow:
    q = select(FareTableRow).where(FareTableRow.merchant_id == merchant_id)
    q = (q.where(FareTableRow.version == version) if version is not None
         else q.order_by(FareTableRow.version.desc()).limit(1))
    row = ctx.db.scalar(q)
    if row is None:
        raise e.NoFareTable(f"operator {merchant_id} has no fare table"
                            + (f" version {version}" if version is not None else ""))
    return row


def signed(row: FareTableRow) -> s.SignedFareTable:
    return s.SignedFareTable(table=json.loads(row.document), key_id=row.key_id,
                             signature=row.signature)


def ride(ctx: Ctx, terminal: Terminal, data: s.RideReport,
         idempotency_key: str) -> s.RideOut:
    operator(ctx, terminal.merchant_id)
    rec = PosTransaction(kind=PosKind.RIDE, status=PosStatus.PENDING, terminal_id=terminal.id,
                         merchant_id=terminal.merchant_id, card_number=data.card_number,
                         amount=data.amount, refunded=0, card_counter=data.card_counter,
                         balance_after=data.balance_after, terminal_seq=data.terminal_seq,
                         card_time=data.time, certificate=data.certificate.lower(),
                         idempotency_key=idempotency_key, created_at=ctx.now)
    card = pos.check_chip_debit(ctx, rec, data.card_number, data.chip_uid,
                                data.record(terminal.id), fares.MAX_FARE)
    table = ctx.db.scalar(select(FareTableRow).where(
        FareTableRow.merchant_id == terminal.merchant_id,
        FareTableRow.version == data.fare_table_version))
    route_fares = json.loads(table.document)["routes"].get(data.route) if table else None
    if route_fares is None or route_fares["full"] != data.full_fare:
        raise pos.reject(ctx, rec, e.RideFareMismatch(
            f"route {data.route!r} of fare table version {data.fare_table_version} has no "
            f"full fare of NT${data.full_fare}"))
    balance = pos.book_chip_debit(ctx, rec, card, PosKind.RIDE,
                                  pos.takings_account(ctx, terminal.id),
                                  f"ride: terminal {terminal.id} seq {data.terminal_seq}")
    at = dt.datetime.fromtimestamp(data.time, dt.UTC)
    try:
        with ctx.db.begin_nested():
            ctx.db.add(Ride(transaction_id=rec.id, merchant_id=terminal.merchant_id,
                            terminal_id=terminal.id, card_id=card.id,
                            card_counter=data.card_counter, route=data.route,
                            fare_table_version=data.fare_table_version, product=data.product,
                            concession=data.concession, full_fare=data.full_fare,
                            fare=data.amount, ride_at=at,
                            ride_date=at.astimezone(TAIPEI).date()))
            ctx.db.flush()
    except IntegrityError:
        # The same chip transaction sent twice at once under two keys: one is booked.
        raise pe.ReplayedCertificate(f"card transaction {data.card_counter} was already "
                                     "accepted") from None
    if data.profile_version and data.profile_version <= card.profile_version:
        profiles.mark_delivered(ctx, card, data.profile_version, f"terminal:{terminal.id}")
    out = pos.transaction_out(ctx, rec, balance)
    return s.RideOut(**out.model_dump(), full_fare=data.full_fare, concession=data.concession,
                     route=data.route)


def profile_updates(ctx: Ctx, terminal: Terminal, since: int) -> s.ProfileUpdatesOut:
    """Pending profile updates for a validator, each sealed for its card: a validator learns
    which cards have one, not what it says. Only transit operators' validators get them, and
    each page is audited."""
    operator(ctx, terminal.merchant_id)
    rows, more = profiles.terminal_feed(ctx, since)
    if rows:
        audit.record(ctx, "transit.profile_updates_disclosed", target_type="terminal",
                     target_id=terminal.id, detail={"updates": [u.id for u, _c, _m in rows]})
    return s.ProfileUpdatesOut(
        since=rows[-1][0].id if rows else since, more=more,
        updates=[s.ProfileUpdateOut(id=u.id, card_number=c.card_number,
                                    chip_uid=c.chip_uid or "", version=u.version,
                                    sealed=blob.hex()) for u, c, blob in rows])
