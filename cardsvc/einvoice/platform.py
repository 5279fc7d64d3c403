"""The MOF e-invoice platform's carrier aggregation (the edge of the world), and the
unbindings it is owed.

A binding is made on the platform while the resident waits: the counter must hear at once
if the platform refuses the barcode. An unbinding is owed instead: the transaction that ends
a binding (a resident's wish, or retention erasing them) writes what the platform must be
told, and the platform is told after that transaction commits, right away by the root's
teller and then by the sweep until it has it. So a binding the database ended is never left
standing on the platform, and the platform never hears of an unbinding the database undid.
Telling it twice is harmless: unbinding what is unbound changes nothing there.
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
        self.bound.pop(carrier_id, None)


class UnbindTeller(Protocol):
    """Told after a commit that left unbindings owed (the root binds one that tells the
    platform, in this process or through a worker)."""

    def owed(self) -> None: ...


def platform_of(services: Services) -> CarrierPlatform:
    found: CarrierPlatform = services.find_or(CarrierPlatform, FakePlatform())
    return found


def owe_unbind(ctx: Ctx, carrier: Carrier, binding: CarrierBinding) -> None:
    """Write, in the caller's transaction, that the platform is to be told the binding
    ended."""
    ctx.db.add(OwedUnbind(binding_id=binding.id, carrier_type=carrier.carrier_type,
                          visible_id=carrier.visible_id,
                          mobile_barcode=binding.mobile_barcode, owed_since=ctx.now))
    ctx.db.info[_OWED] = True


@dataclass
class Told:
    told: int = 0
    left: int = 0  # the platform did not take them: tried again by the sweep


def tell(sessions: sessionmaker[Session], platform: CarrierPlatform,
         now: Callable[[], dt.datetime] = utcnow) -> Told:
    """Tell the platform every unbinding it is owed, oldest first, each in a transaction of
    its own that holds the row while the platform is asked (two tellers never both ask; a
    commit lost after the platform answered leaves it owed, and it is told again). Once told,
    the barcode is blanked: nothing more is owed to anyone."""
    out = Told()
    with sessions() as db:
        ids = list(db.scalars(select(OwedUnbind.id).where(OwedUnbind.told_at.is_(None))
                              .order_by(OwedUnbind.id)))
    for owed_id in ids:
        with unit_of_work(sessions) as db:
            row = db.scalars(select(OwedUnbind).where(OwedUnbind.id == owed_id)
                             .with_for_update(skip_locked=True)).first()
            if row is None or row.told_at is not None:
                continue  # another teller has it, or had it
            try:
                platform.unbind(row.carrier_type, row.visible_id, row.mobile_barcode)
            except Exception as exc:  # the platform's client, whatever it raises
                row.attempts += 1
                row.last_error = f"{type(exc).__name__}: {exc}"[:200]
                out.left += 1
                continue
            row.told_at, row.mobile_barcode = now(), ""
            out.told += 1
    return out


@event.listens_for(Session, "after_commit")
def _owed(db: Session) -> None:
    if db.in_nested_transaction() or not db.info.pop(_OWED, False):
        return
    ctx = ctx_of(db)
    teller: Any = ctx.services.find_or(UnbindTeller, None) if ctx is not None else None
    if teller is None:
        return  # the sweep tells the platform
    try:
        teller.owed()
    except Exception:  # what was committed stands; the sweep tells the platform later
        log.exception("telling the e-invoice platform of an unbinding failed")


@event.listens_for(Session, "after_rollback")
def _forget(db: Session) -> None:
    if not db.in_nested_transaction():
        db.info.pop(_OWED, None)
