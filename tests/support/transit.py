"""A bus depot: a transit operator with two buses (validators), its signed fare table, and
residents with senior, student, 愛心, companion and general chip cards."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from fastapi.testclient import TestClient

from cardsvc.context import TAIPEI
from cardsvc.db import unit_of_work
from cardsvc.keystore.service import KeyStore
from merchants.pos.client import PosClient
from readers.memory import InProcessReader
from readers.protocol import KeyPurpose
from simulators.bus import BusValidator, RideResult
from simulators.card import VirtualCard
from tests.support import factories as f
from tests.support.api import Api

ROUTE = "3"  # 金城—山外
FARES = {ROUTE: {"full": 30, "student": 15, "half": 15}, "1": {"full": 20, "student": 10,
                                                              "half": 10}}


@dataclass
class Depot:
    rt: Any
    client: TestClient
    clerk: Api
    supervisor: Api
    operator: dict[str, Any]
    buses: list[BusValidator]
    cards_dir: Path

    def chip(self, card: dict[str, Any]) -> VirtualCard:
        return VirtualCard(bytes.fromhex(card["chip_uid"]),
                           self.cards_dir / f"{card['chip_uid']}.json")

    def ride(self, card: dict[str, Any], bus: int = 0, *, at: dt.datetime | None = None
             ) -> RideResult:
        when = int((at or dt.datetime.now(dt.UTC)).timestamp())
        return self.buses[bus].ride(InProcessReader(self.chip(card)), when=when)

    def card(self, product: str, *, age: int = 40, topup: int = 500,
             holder: dict[str, Any] | None = None, **proof: Any) -> dict[str, Any]:
        """A chip card personalised on the counter reader (so the chip carries its profile),
        handed over and topped up."""
        h = holder or f.holder(self.clerk, age=age)
        if "enrolment_until" in proof:
            proof["enrolment"] = self.clerk.ok(
                "POST", f"/cardholders/{h['id']}/enrolments",
                {"school": "金門高中", "valid_until": proof["enrolment_until"].isoformat()},
                status=201)
        if "employment_until" in proof:
            self.clerk.ok("POST", f"/cardholders/{h['id']}/employments",
                          {"employer": "金門縣政府", "employer_kind": "county_government",
                           "valid_until": proof["employment_until"].isoformat()}, status=201)
        app = self.clerk.ok("POST", "/cards/applications",
                            {"cardholder_id": h["id"], "product": product}, status=201)
        card = self.clerk.ok("POST", f"/cards/{app['id']}/issue", {})
        self.clerk.ok("POST", f"/cards/{card['id']}/activate")
        if topup:
            self.clerk.ok("POST", f"/cards/{card['id']}/topups", {"amount": topup},
                          key=f.key())
        out: dict[str, Any] = self.clerk.ok("GET", f"/cards/{card['id']}")
        return out | {"_holder": h, **{k: v for k, v in proof.items() if k == "enrolment"}}

    def disabled_with_companion(self) -> tuple[dict[str, Any], dict[str, Any]]:
        holder, companion = f.holder(self.clerk, age=40), f.holder(self.clerk, age=42)
        self.clerk.ok("POST", f"/cardholders/{holder['id']}/disability-certificates",
                      {"certificate_no": "DC-20261206",
                       "valid_until": (today() + dt.timedelta(days=365)).isoformat(),
                       "companion_id": companion["id"]}, status=201)
        return (self.card("senior", holder=holder), self.card("senior", holder=companion))


def today() -> dt.date:
    return dt.datetime.now(TAIPEI).date()


def open_depot(rt: Any, client: TestClient, cards_dir: Path, tokens: dict[str, str],
               fares: dict[str, dict[str, int]] | None = None) -> Depot:
    clerk, supervisor = Api(client, tokens["clerk"]), Api(client, tokens["supervisor"])
    operator = clerk.ok("POST", "/merchants", {
        "legal_name": "金門縣公共車船管理處", "tax_id": "69115908", "category": "transit",
        "fee_bps": 0, "bank_account": "004-00099988877"}, status=201)
    supervisor.ok("POST", f"/transit/operators/{operator['id']}/fare-tables",
                  {"routes": fares or FARES}, status=201)
    keys = supervisor.ok("GET", "/transit/public-keys")["keys"]
    with unit_of_work(rt.sessions) as db:
        masters = KeyStore(db, rt.keys.secrets.kek, rt.keys.secrets.system_id).masters(
            KeyPurpose.DEBIT)
    buses = []
    for n in (1, 2):
        t = clerk.ok("POST", f"/merchants/{operator['id']}/terminals",
                     {"label": f"KM-BUS-{n:03d}"}, status=201)
        bus = BusValidator(PosClient(client, t["key_id"], t["secret"]), t["id"], masters,
                           rt.keys.secrets.system_id, operator_id=operator["id"], route=ROUTE,
                           public_keys=keys)
        bus.refresh_fares()
        buses.append(bus)
    return Depot(rt, client, clerk, supervisor, operator, buses, cards_dir)
