"""A simulated POS terminal: what a shop's card terminal does, against the real signed POS API.

Before it debits a card it refuses cards on its hotlist, expired cards and amounts over the
per-purchase limit; then it debits the chip through its reader (readers.session) and submits
the card's certificate online, or keeps it for the next batch upload when it is offline. Its
transaction sequence number is kept in a state file, so a tap repeated after a tear reuses it.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from merchants.pos.client import PosClient
from readers.base import Reader
from readers.errors import CardError, ProtocolError
from readers.protocol import KeyPurpose
from readers.session import AuthResult, CardSession


class TerminalRefusal(Exception):
    """The terminal itself refused the tap, before touching the card's purse."""

    def __init__(self, code: str, detail: str) -> None:
        super().__init__(detail)
        self.code = code


@dataclass
class TapResult:
    status: str  # accepted | rejected | stored (offline)
    amount: int
    card_number: str
    response: dict[str, Any] | None = None
    record: dict[str, Any] | None = None


@dataclass
class SimulatedPos:
    client: PosClient
    terminal_id: int
    debit_masters: dict[int, bytes]  # all the card keys a terminal holds
    system_id: bytes
    purchase_limit: int = 1_000
    state_file: Path | None = None
    hotlist: set[str] = field(default_factory=set)
    hotlist_version: int = 0
    seq: int = 0
    offline: list[dict[str, Any]] = field(default_factory=list)

    def __post_init__(self) -> None:
        if self.state_file is not None and Path(self.state_file).exists():
            self._restore(json.loads(Path(self.state_file).read_text()))

    def _restore(self, data: dict[str, Any]) -> None:
        self.seq = data["seq"]
        self.hotlist = set(data["hotlist"])
        self.hotlist_version = data["hotlist_version"]
        self.offline = data["offline"]

    def _state(self) -> dict[str, Any]:
        return {"seq": self.seq, "hotlist": sorted(self.hotlist),
                "hotlist_version": self.hotlist_version, "offline": self.offline}

    def _save(self) -> None:
        if self.state_file is None:
            return
        tmp = Path(f"{self.state_file}.tmp")
        tmp.write_text(json.dumps(self._state()))
        os.replace(tmp, self.state_file)

    def refresh_hotlist(self) -> int:
        """Fetch the deltas since the version held; return how many entries came."""
        n = 0
        while True:
            r = self.client.request("GET", f"/pos/v1/hotlist?since={self.hotlist_version}")
            r.raise_for_status()
            body = r.json()
            for entry in body["entries"]:
                if entry["action"] == "add":
                    self.hotlist.add(entry["card_number"])
                else:
                    self.hotlist.discard(entry["card_number"])
                n += 1
            self.hotlist_version = body["version"]
            if not body["more"]:
                break
        self._save()
        return n

    def open_card(self, reader: Reader, today: dt.date) -> tuple[CardSession, AuthResult, str]:
        """SELECT and authenticate with the debit key; refuse what the terminal itself must
        (not an issued card, hotlisted, expired) before anything touches the purse."""
        session = CardSession(reader, self.system_id)
        session.select()
        auth = session.authenticate_with_master(KeyPurpose.DEBIT, self.debit_masters)
        if auth.info is None:
            raise TerminalRefusal("unknown_card", "not an issued card")
        number = auth.info.card_number
        if number in self.hotlist:
            raise TerminalRefusal("card_hotlisted", f"card {number} is on the hotlist")
        if auth.info.expires_on < today:
            raise TerminalRefusal("card_expired", f"card expired on {auth.info.expires_on}")
        return session, auth, number

    def tap(self, reader: Reader, amount: int, *, online: bool = True,
            today: dt.date | None = None) -> TapResult:
        if not 0 < amount <= self.purchase_limit:
            raise TerminalRefusal("amount_over_limit",
                                  f"a purchase is at most NT${self.purchase_limit}")
        session, _auth, number = self.open_card(reader, today or dt.date.today())
        self.seq += 1
        self._save()  # the sequence number is spent before the card sees it
        when = int(dt.datetime.now(dt.UTC).timestamp())
        try:
            result = session.debit(amount, self.terminal_id, self.seq, when)
        except CardError as exc:
            raise TerminalRefusal(f"card_{exc.sw:04X}", str(exc)) from None
        except ProtocolError as exc:
            raise TerminalRefusal("card_protocol", str(exc)) from None
        rec = result.record
        record = {"card_number": number, "chip_uid": session.uid.hex().upper(),
                  "amount": rec.amount, "card_counter": rec.counter,
                  "balance_after": rec.balance_after, "terminal_seq": rec.terminal_seq,
                  "time": rec.time, "certificate": rec.certificate.hex()}
        if not online:
            self.offline.append(record)
            self._save()
            return TapResult("stored", amount, number, record=record)
        r = self.client.request("POST", "/pos/v1/purchases", record,
                                idempotency_key=f"tap-t{self.terminal_id}-s{self.seq:010d}")
        body = r.json()
        status = "accepted" if r.status_code == 200 else "rejected"
        return TapResult(status, amount, number, response=body, record=record)

    def upload_offline(self) -> dict[str, Any] | None:
        """Send the stored records as one batch; safe to repeat (the batch ref is fixed)."""
        if not self.offline:
            return None
        ref = f"t{self.terminal_id}-{self.offline[0]['terminal_seq']}-" \
              f"{self.offline[-1]['terminal_seq']}"
        r = self.client.request("POST", "/pos/v1/batches",
                                {"batch_ref": ref, "records": self.offline})
        r.raise_for_status()
        self.offline = []
        self._save()
        body: dict[str, Any] = r.json()
        return body

    def qr_purchase(self, token: str, amount: int) -> dict[str, Any]:
        r = self.client.request("POST", "/pos/v1/qr-purchases",
                                {"token": token, "amount": amount},
                                idempotency_key=f"qr-{uuid.uuid4()}")
        body: dict[str, Any] = r.json()
        return body

    def refund(self, transaction_id: int, amount: int) -> dict[str, Any]:
        r = self.client.request("POST", "/pos/v1/refunds",
                                {"original_transaction_id": transaction_id, "amount": amount},
                                idempotency_key=f"rf-{uuid.uuid4()}")
        body: dict[str, Any] = r.json()
        return body
