"""A venue: an organiser's published event, residents with personalised chips (on the
simulated counter) or phones, and a check-in station speaking to the API."""

from __future__ import annotations

import datetime as dt
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from fastapi.testclient import TestClient

from cardsvc.app.station import CheckinStation
from cardsvc.events.service import make_phone_token
from readers.memory import InProcessReader
from simulators.card import VirtualCard
from tests.support import factories as f
from tests.support.api import Api


def event_body(**over: Any) -> dict[str, Any]:
    now = dt.datetime.now(dt.UTC)
    return {"title": "金門縣民健走", "venue": "金城鎮 莒光樓", "starts_at": now.isoformat(),
            "ends_at": (now + dt.timedelta(hours=3)).isoformat(),
            "checkin_opens": (now - dt.timedelta(minutes=1)).isoformat(),
            "checkin_closes": (now + dt.timedelta(hours=2)).isoformat(),
            "points": 10, "prizes": 2, "prize_description": "高粱酒禮盒", **over}


@dataclass
class Resident:
    holder: dict[str, Any]
    card: dict[str, Any]
    chip: Path | None = None  # the simulated chip's state file
    phone: Any = None  # the phone's private key

    def reader(self) -> InProcessReader:
        assert self.chip is not None
        return InProcessReader(VirtualCard(bytes.fromhex(self.card["chip_uid"]), self.chip))

    def token(self, event_id: int, at: float | None = None) -> str:
        return make_phone_token(self.phone, self.card["card_number"], event_id,
                                time.time() if at is None else at)


@dataclass
class Venue:
    client: TestClient
    clerk: Api
    organiser: Api
    cards_dir: Path

    def event(self, publish: bool = True, **over: Any) -> dict[str, Any]:
        event = self.organiser.ok("POST", "/events", event_body(**over), status=201)
        if publish:
            event = self.organiser.ok("POST", f"/events/{event['id']}/publish")
        return event

    def chip_resident(self, **holder: Any) -> Resident:
        h = f.holder(self.clerk, **holder)
        app = self.clerk.ok("POST", "/cards/applications",
                            {"cardholder_id": h["id"], "product": "general"}, status=201)
        self.clerk.ok("POST", f"/cards/{app['id']}/issue", {})  # personalised on the counter
        card = self.clerk.ok("POST", f"/cards/{app['id']}/activate")
        return Resident(h, card, self.cards_dir / f"{card['chip_uid']}.json")

    def phone_resident(self) -> Resident:
        private, public = f.phone_key()
        h = f.holder(self.clerk)
        card = f.active_card(self.clerk, h["id"], "mobile", device_id=f"ph-{f.key()[:8]}",
                             device_public_key=public)
        return Resident(h, card, phone=private)

    def station(self, event_id: int, name: str = "gate-1",
                state: Path | None = None) -> CheckinStation:
        token = self.organiser.headers["Authorization"].split(" ", 1)[1]
        return CheckinStation(self.client, token, event_id, name, state)
