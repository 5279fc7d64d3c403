"""The MOF e-invoice platform's carrier aggregation (the edge of the world), and the
unbindings it is owed.

A binding is made on the platform while the resident waits: the counter must hear at once
if the platform refuses the barcode. An unbinding is owed instead: the transaction that ends
a binding (a resident's wish, or retention erasing them) writes what the platform must be
told, and the platform is told after that transaction commits: that transaction's unbindings
right away by the root's teller, and whatever the platform did not take by the sweep (with
workers) or `cardsvc einvoice tell-platform`. So a binding the database ended is never left
standing on the platform, and the platform never hears of an unbinding the database undid.
A new binding of a carrier first tells the platform what that carrier is still owed, so a
late unbinding never undoes a newer binding.

A platform client raises `PlatformRefused` when the platform says no and anything else when
it cannot be reached.
"""

from __future__ import annotations

import datetime as dt
import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Protocol

from sqlalchemy import event, select
from sqlalchemy.orm import Session, sessionmaker

from cardsvc.context import Ctx, ctx_of
from cardsvc.db import unit_of_work, utcnow
from cardsvc.einvoice.models import Carrier, CarrierBinding, OwedUnbind
from cardsvc.services import Services

log = logging.getLogger("cardsvc.einvoice")
_OWED = "cardsvc.einvoice.unbinds_owed"


class CarrierPlatform(Protocol):
    """The MOF e-invoice platform's carrier aggregation."""

    def bind(self, carrier_type: str, carrier_id: str, hidden_id: str,
             mobile_barcode: str) -> None: ...

    def unbind(self, carrier_type: str, carrier_id: str, mobile_barcode: str) -> None: ...


class FakePlatform:
    """Takes every well-formed barcode, and remembers what is bound to what."""

    def __init__(self) -> None:
        self.bound: dict[str, str] = {}

    def bind(self, carrier_type: str, carrier_id: str, hidden_id: str,
             mobile_barcode: str) -> None:
        self.bound[carrier_id] = mobile_barcode

    def unbind(self, carrier_type: str, carrier_id: str, mobile_barcode: str) -> None:
        # The platform ends the carrier's binding to that barcode; one to another barcode
        # stands, and unbinding what is not bound changes nothing.
        if self.bound.get(carrier_id) == mobile_barcode:
            del self.bound[carrier_id]


class UnbindTeller(Protocol):
    """Told after a commit which unbindings it left owed (the root binds one that tells the
    platform, in this process or through a worker)."""

    def owed(self, ids: list[int]) -> None: ...


def platform_of(services: Services) -> CarrierPlatform:
    found: CarrierPlatform = services.find_or(CarrierPlatform, FakePlatform())
    return found


def owe_unbind(ctx: Ctx, carrier: Carrier, binding: CarrierBinding) -> None:
    """Write, in the caller's transaction, that the platform is to be told the binding
    ended."""
    row = OwedUnbind(binding_id=binding.id, carrier_id=carrier.id,
                     carrier_type=carrier.carrier_type, visible_id=carrier.visible_id,
                     mobile_barcode=binding.mobile_barcode, owed_since=ctx.now)
    ctx.db.add(row)
    ctx.db.flush()
    ctx.db.info.setdefault(_OWED, []).append(row.id)


@dataclass
class Told:
    told: int = 0
    left: int = 0  # not told: the platform did not answer (tried again later)


def _tell_one(row: OwedUnbind, platform: CarrierPlatform, now: dt.datetime) -> None:
    platform.unbind(row.carrier_type, row.visible_id, row.mobile_barcode)
    row.told_at, row.mobile_barcode, row.last_error = now, "", None


def tell(sessions: sessionmaker[Session], platform: CarrierPlatform,
         ids: list[int] | None = None,
         now: Callable[[], dt.datetime] = utcnow) -> Told:
    """Tell the platform the unbindings it is owed (those of `ids`, or all), oldest first,
    each in a transaction of its own that holds the row while the platform is asked (two
    tellers never both ask; a commit lost after the platform answered leaves the row owed,
    and it is told again). Once told, the barcode is blanked: nothing more is owed. The
    first failure stops the round: the platform is down, and the rest wait for the next."""
    out = Told()
    with sessions() as db:
        query = select(OwedUnbind.id).where(OwedUnbind.told_at.is_(None))
        if ids is not None:
            query = query.where(OwedUnbind.id.in_(ids))
        pending = list(db.scalars(query.order_by(OwedUnbind.id)))
    for n, owed_id in enumerate(pending):
        with unit_of_work(sessions) as db:
            row = db.scalars(select(OwedUnbind).where(OwedUnbind.id == owed_id)
                             .with_for_update(skip_locked=True)).first()
            if row is None or row.told_at is not None:
                continue  # another teller has it, or had it
            try:
                _tell_one(row, platform, now())
            except Exception as exc:  # the platform's client, whatever it raises
                row.attempts += 1
                row.last_error = f"{type(exc).__name__}: {exc}"[:200]
                out.left = len(pending) - n
                break
            out.told += 1
    return out


def settle_carrier(ctx: Ctx, carrier: Carrier, platform: CarrierPlatform) -> None:
    """Before the carrier is bound again, tell the platform what it is still owed for it,
    in the caller's transaction (waiting for a teller that holds one): a late unbinding
    would otherwise undo the new binding. Raises what the platform's client raises."""
    for row in ctx.db.scalars(select(OwedUnbind).where(
            OwedUnbind.carrier_id == carrier.id, OwedUnbind.told_at.is_(None))
            .order_by(OwedUnbind.id).with_for_update()):
        _tell_one(row, platform, ctx.now)


@event.listens_for(Session, "after_commit")
def _owed(db: Session) -> None:
    if db.in_nested_transaction():
        return
    ids = db.info.pop(_OWED, None)
    if not ids:
        return
    ctx = ctx_of(db)
    teller: Any = ctx.services.find_or(UnbindTeller, None) if ctx is not None else None
    if teller is None:
        return  # the sweep tells the platform
    try:
        teller.owed(list(ids))
    except Exception:  # what was committed stands; the sweep tells the platform later
        log.exception("telling the e-invoice platform of an unbinding failed")


@event.listens_for(Session, "after_transaction_end")
def _forget(db: Session, transaction: Any) -> None:
    # The outermost transaction ended: a commit has told the teller already; a rollback or a
    # close without commit owes nothing (a savepoint's end changes nothing here).
    if transaction.parent is None:
        db.info.pop(_OWED, None)
