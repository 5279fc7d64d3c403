"""A simulated bus validator: a transit operator's terminal on a vehicle, against the real
signed POS API.

It charges by the operator's fare table only after verifying the backend's signature with the
public key it was provisioned with (never one that comes with the table), and never goes back
to an older table. At each tap it reads the card's concession profile from the
authentication answer, first writes a pending profile update for that card if the backend has
one (sealed for the card: the validator can neither read nor forge it), picks
the fare (`merchants.transit.fares.choose`), tells the rider why, and debits the ride: a free
ride is a ride of NT$0 beside its full fare.
"""

from __future__ import annotations

import datetime as dt
import zoneinfo
from dataclasses import dataclass, field
from typing import Any

from merchants.transit import fares
from readers import protocol as p
from readers.base import Reader
from readers.errors import CardError, ProtocolError
from readers.protocol import KeyPurpose
from readers.session import CardSession
from simulators.pos import SimulatedPos, TerminalRefusal

TAIPEI = zoneinfo.ZoneInfo("Asia/Taipei")


@dataclass
class RideResult:
    status: str  # accepted | rejected
    fare: int
    full_fare: int
    concession: str
    message: str  # what the validator shows the rider
    response: dict[str, Any] | None = None
    record: dict[str, Any] | None = None
    profile_written: bool = False


@dataclass
class BusValidator(SimulatedPos):
    operator_id: int = 0
    route: str = ""
    public_keys: dict[str, str] = field(default_factory=dict)
    fare_table: dict[str, Any] | None = None  # the signed envelope held
    profile_updates: dict[str, dict[str, Any]] = field(default_factory=dict)
    updates_since: int = 0
    # The held envelope, verified once (when accepted, or when first used after a restart
    # from the state file), not at every tap: the table with the envelope and keys it was
    # verified for (another envelope or other keys are verified afresh).
    _verified: tuple[fares.FareTable, object, object] | None = field(
        default=None, init=False, repr=False)

    def _restore(self, data: dict[str, Any]) -> None:
        super()._restore(data)
        self.fare_table = data.get("fare_table")
        self.profile_updates = data.get("profile_updates", {})
        self.updates_since = data.get("updates_since", 0)

    def _state(self) -> dict[str, Any]:
        return {**super()._state(), "fare_table": self.fare_table,
                "profile_updates": self.profile_updates, "updates_since": self.updates_since}

    @property
    def table(self) -> fares.FareTable:
        if self.fare_table is None:
            raise TerminalRefusal("no_fare_table", "no verified fare table: fetch one first")
        cached = self._verified
        if cached is None or cached[1] is not self.fare_table \
                or cached[2] is not self.public_keys:
            table = fares.verify(self.fare_table, self.public_keys, self.operator_id)
            cached = self._verified = (table, self.fare_table, self.public_keys)
        return cached[0]

    def accept_table(self, envelope: dict[str, Any]) -> fares.FareTable:
        """Hold `envelope` if its signature verifies and it is not older than the table held;
        else FareTableRejected and the table held stays."""
        held = self.table.version if self.fare_table is not None else 0
        table = fares.verify(envelope, self.public_keys, self.operator_id, held)
        self.fare_table = envelope
        self._verified = (table, envelope, self.public_keys)
        self._save()
        return table

    def refresh_fares(self) -> fares.FareTable:
        r = self.client.request("GET", "/pos/v1/fare-table")
        r.raise_for_status()
        return self.accept_table(r.json())

    def refresh_profile_updates(self) -> int:
        n = 0
        while True:
            r = self.client.request("GET", f"/pos/v1/profile-updates?since={self.updates_since}")
            r.raise_for_status()
            body = r.json()
            for u in body["updates"]:
                self.profile_updates[u["card_number"]] = u
                n += 1
            self.updates_since = body["since"]
            if not body["more"]:
                break
        self._save()
        return n

    def _write_update(self, session: CardSession, number: str,
                      profile: p.CardProfile) -> tuple[p.CardProfile, bool]:
        u = self.profile_updates.get(number)
        if u is None or u["version"] <= profile.version \
                or u["chip_uid"] != session.uid.hex().upper():
            return profile, False
        try:
            written, _ = session.write_profile(bytes.fromhex(u["sealed"]))
        except (CardError, ProtocolError):
            # Not this time (the card refused, or left): ride on the profile it carries.
            session.select()
            session.authenticate_with_master(KeyPurpose.DEBIT, self.debit_masters)
            return profile, False
        del self.profile_updates[number]
        self._save()
        return written, True

    def ride(self, reader: Reader, *, when: int | None = None) -> RideResult:
        table = self.table
        when = when or int(dt.datetime.now(dt.UTC).timestamp())
        today = dt.datetime.fromtimestamp(when, TAIPEI).date()
        session, auth, number = self.open_card(reader, today)
        profile, written = self._write_update(session, number, auth.profile)
        choice = fares.choose(table, self.route, profile, today)
        if choice.fare > auth.purse.balance:
            raise TerminalRefusal("insufficient_balance",
                                  f"the fare is NT${choice.fare}; the card holds "
                                  f"NT${auth.purse.balance}")
        self.seq += 1
        self._save()  # the sequence number is spent before the card sees it
        try:
            result = session.ride(choice.fare, choice.full_fare, self.terminal_id, self.seq,
                                  when)
        except CardError as exc:
            raise TerminalRefusal(f"card_{exc.sw:04X}", str(exc)) from None
        except ProtocolError as exc:
            raise TerminalRefusal("card_protocol", str(exc)) from None
        rec = result.record
        record = {"card_number": number, "chip_uid": session.uid.hex().upper(),
                  "amount": rec.amount, "full_fare": rec.full_fare,
                  "product": p.PRODUCT_NAMES[rec.product],
                  "concession": p.CONCESSION_NAMES[rec.concession],
                  "card_counter": rec.counter, "balance_after": rec.balance_after,
                  "terminal_seq": rec.terminal_seq, "time": rec.time,
                  "certificate": rec.certificate.hex(), "route": self.route,
                  "fare_table_version": table.version, "profile_version": profile.version}
        r = self.client.request("POST", "/pos/v1/rides", record,
                                idempotency_key=f"ride-t{self.terminal_id}-s{self.seq:010d}")
        return RideResult("accepted" if r.status_code == 200 else "rejected", rec.amount,
                          rec.full_fare, choice.concession, choice.reason, r.json(), record,
                          written)
