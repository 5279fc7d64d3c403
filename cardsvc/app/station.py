"""A check-in station at an event's venue: a reader (and a scanner for the phone's token) and
the events API, like the POS terminal is to the POS API.

The station holds no card key. For each tap it picks a random nonce, makes the event's
challenge from it (`cardsvc.events.rules.challenge`) and passes the card's answer on; the
server checks it with the card's identity key. Without a connection it keeps the taps in its
state file, prints the ticket all the same (the ticket follows from the nonce), and uploads
them later as a batch: each tap is stored once however often the batch is sent.
"""

from __future__ import annotations

import datetime as dt
import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

import httpx

from cardsvc.cards import device
from cardsvc.events import rules
from readers.base import Reader
from readers.protocol import KeyPurpose
from readers.session import CardSession

BATCH = 1000  # the most taps the API takes in one batch


class Http(Protocol):
    def post(self, url: str, *, json: Any = ..., headers: Any = ...) -> Any: ...


@dataclass
class Tap:
    status: str  # checked_in | repeated | refused | kept (offline: uploaded later)
    ticket: str | None = None
    code: str | None = None
    detail: str | None = None
    points: int = 0


@dataclass
class CheckinStation:
    http: Http
    token: str
    event_id: int
    name: str
    state_file: Path | None = None
    kept: list[dict[str, Any]] = field(default_factory=list)

    def __post_init__(self) -> None:
        if self.state_file is not None and Path(self.state_file).exists():
            self.kept = json.loads(Path(self.state_file).read_text())["kept"]

    def _save(self) -> None:
        if self.state_file is None:
            return
        tmp = Path(f"{self.state_file}.tmp")
        tmp.write_text(json.dumps({"event_id": self.event_id, "kept": self.kept}))
        os.replace(tmp, self.state_file)

    def _post(self, path: str, body: dict[str, Any]) -> Any:
        return self.http.post(f"/events/{self.event_id}{path}", json=body,
                              headers={"Authorization": f"Bearer {self.token}"})

    @staticmethod
    def read_card(reader: Reader, event_id: int) -> tuple[dict[str, Any], str]:
        """The card's answer to this tap's challenge, and the tap's reference."""
        session = CardSession(reader, b"")
        selected = session.select()
        version = selected.key_versions.get(int(KeyPurpose.IDENTITY), 0)
        nonce = rules.new_nonce()
        rnd_b, proof = session.prove(KeyPurpose.IDENTITY, version,
                                     rules.challenge(event_id, nonce))
        return ({"method": "chip", "uid": selected.uid.hex().upper(), "key_version": version,
                 "nonce": nonce, "rnd_b": rnd_b.hex(), "proof": proof.hex()}, f"chip:{nonce}")

    def tap_card(self, reader: Reader, *, online: bool = True) -> Tap:
        proof, ref = self.read_card(reader, self.event_id)
        return self._submit(proof, ref, online)

    def scan_phone(self, token: str, *, online: bool = True) -> Tap:
        opened = device.open_token(token, rules.TOKEN_PREFIX)
        tid = opened[0].get("tid") if opened else None
        if not isinstance(tid, str):
            return Tap("refused", code="checkin_bad_token", detail="not a check-in token")
        return self._submit({"method": "phone", "token": token}, f"phone:{tid}", online)

    def _submit(self, proof: dict[str, Any], ref: str, online: bool) -> Tap:
        record = {"proof": proof, "station": self.name,
                  "tapped_at": dt.datetime.now(dt.UTC).isoformat()}
        if online:
            try:
                r = self._post("/checkins", {"proof": proof, "station": self.name})
            except httpx.TransportError:
                online = False
            else:
                body = r.json()
                if r.status_code == 200:
                    return Tap("repeated" if body["repeated"] else "checked_in",
                               body["ticket"], points=body["points"])
                return Tap("refused", body.get("ticket"), body.get("code"), body.get("detail"))
        self.kept.append(record)
        self._save()
        return Tap("kept", rules.ticket_for(ref),
                   detail="recorded offline: confirmed when the station uploads")

    def upload(self) -> dict[str, Any] | None:
        """Send the kept taps, a batch of at most `BATCH` at a time; they leave the station
        once the server has answered for each (stored, stored before, or refused with its
        reason)."""
        if not self.kept:
            return None
        total: dict[str, Any] = {"stored": 0, "repeated": 0, "refused": 0, "results": []}
        while self.kept:
            chunk = self.kept[:BATCH]
            r = self._post("/checkins/batch", {"station": self.name, "records": chunk})
            if r.status_code != 200:
                raise RuntimeError(f"upload refused: {r.status_code} {r.text}")
            body = r.json()
            for k in ("stored", "repeated", "refused"):
                total[k] += body[k]
            offset = len(total["results"])
            total["results"] += [dict(x, index=x["index"] + offset) for x in body["results"]]
            self.kept = self.kept[len(chunk):]
            self._save()
        return total
