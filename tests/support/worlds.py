"""Worlds that more than one test module builds on: a shop with a terminal and a chip card
(the POS API, the fast path, clearing), the water plant's bill files (bills, clearing), and
the contract run's populated world."""

from __future__ import annotations

import itertools
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from fastapi.testclient import TestClient
from sqlalchemy import select

from cardsvc.db import unit_of_work
from cardsvc.keystore.service import KeyStore
from cardsvc.library import service as library_service
from cardsvc.library.models import Library
from cardsvc.library.records import OPTIONAL_FIELDS
from cardsvc.runtime import Runtime
from cardsvc.staff.models import Staff
from merchants.pos.client import PosClient
from readers.memory import InProcessReader
from readers.protocol import KeyPurpose
from readers.session import CardSession
from simulators.card import VirtualCard
from tests.support import factories as f
from tests.support.api import PASSWORD, ROLES, Api

# --- a shop: one merchant, one terminal, a chip card ---------------------------------------

_seq = itertools.count(1)


@dataclass
class Shop:
    rt: Any
    client: TestClient
    clerk: Api
    pos: PosClient
    terminal: dict[str, Any]
    card: dict[str, Any]
    cards_dir: Path

    def tap(self, amount: int, card: dict[str, Any] | None = None) -> dict[str, Any]:
        """The terminal debits the chip (it holds only the debit keys) and builds the
        submission from the card's answer."""
        card = card or self.card
        chip = VirtualCard(bytes.fromhex(card["chip_uid"]),
                           self.cards_dir / f"{card['chip_uid']}.json")
        with unit_of_work(self.rt.sessions) as db:
            masters = KeyStore(db, self.rt.keys.secrets.kek,
                               self.rt.keys.secrets.system_id).masters(KeyPurpose.DEBIT)
        s = CardSession(InProcessReader(chip), self.rt.keys.secrets.system_id)
        s.select()
        s.authenticate_with_master(KeyPurpose.DEBIT, masters)
        rec = s.debit(amount, terminal_id=self.terminal["id"], terminal_seq=next(_seq),
                      when=1_790_000_000).record
        return {"card_number": card["card_number"], "chip_uid": card["chip_uid"],
                "amount": rec.amount, "card_counter": rec.counter,
                "balance_after": rec.balance_after, "terminal_seq": rec.terminal_seq,
                "time": rec.time, "certificate": rec.certificate.hex()}

    def buy(self, body: dict[str, Any], key: str | None = None) -> Any:
        return self.pos.request("POST", "/pos/v1/purchases", body,
                                idempotency_key=key or f.key())


def chip_card(api: Api, topup: int) -> dict[str, Any]:
    h = f.holder(api)
    app = api.ok("POST", "/cards/applications", {"cardholder_id": h["id"],
                                                 "product": "general"}, status=201)
    card = api.ok("POST", f"/cards/{app['id']}/issue", {})
    api.ok("POST", f"/cards/{card['id']}/activate")
    if topup:
        api.ok("POST", f"/cards/{card['id']}/topups", {"amount": topup}, key=f.key())
    return api.ok("GET", f"/cards/{card['id']}")


def open_shop(rt: Any, client: TestClient, cards_dir: Path) -> Shop:
    """A merchant with one terminal and a chip card holding NT$1,000."""
    token = client.post("/auth/login", json={"username": "t.clerk",
                                             "password": PASSWORD}).json()["access_token"]
    clerk = Api(client, token)
    m = clerk.ok("POST", "/merchants", {"legal_name": "金門陶瓷廠", "tax_id": "10458575",
                                        "category": "government", "fee_bps": 0,
                                        "bank_account": "004-00011122233"}, status=201)
    t = clerk.ok("POST", f"/merchants/{m['id']}/terminals", {"label": "Shop"}, status=201)
    return Shop(rt, client, clerk, PosClient(client, t["key_id"], t["secret"]), t,
                chip_card(clerk, 1_000), cards_dir)


# --- the water plant's bill files ----------------------------------------------------------


def bills_csv(*rows: tuple[str, str, str, str, str, str]) -> bytes:
    lines = ["account_number,bill_number,period,amount,due_date,payer_name"]
    lines += [",".join(r) for r in rows]
    return ("\n".join(lines) + "\n").encode()


# --- the API contract run (tests/contract/) ------------------------------------------------

LIBRARY_WITH_KEY = "KMCCL"  # the library whose feed key the run calls the library routes with


@dataclass
class World:
    rt: Runtime
    client: TestClient
    tokens: dict[str, str]
    pos: PosClient
    ids: dict[str, list[int]] = field(default_factory=dict)
    card_numbers: list[str] = field(default_factory=list)
    base_url: str = ""
    library_auth: tuple[str, str] | None = None  # a library's feed key id and key

    def heal(self) -> None:
        """Put the role accounts back as they were: the run's admin requests may demote,
        disable or re-password them (the run's own staff ids are used where the run can
        choose, but boundary cases name ids as they are). Tokens are issued afresh, without
        a login (the run's failed logins may have throttled this address)."""
        with self.rt.sessions.begin() as db:
            for role in ROLES:
                staff = db.scalar(select(Staff).where(Staff.username == f"t.{role}"))
                assert staff is not None
                staff.role, staff.active = role, True
                self.tokens[role] = self.rt.keys.tokens.issue(staff.id)[0]
            # Libraries likewise: the run's admin requests may deactivate them, narrow what
            # they may receive or rotate the feed key the library routes are called with.
            for library in db.scalars(select(Library)):
                library.active = True
                library.optional_fields = json.dumps(list(OPTIONAL_FIELDS))
                if self.library_auth and library.code == LIBRARY_WITH_KEY:
                    library.feed_key_id = self.library_auth[0]
                    library.feed_key_hash = library_service.key_hash(self.library_auth[1])


def water_biller(clerk: Api) -> dict[str, Any]:
    """The county's water plant, registered as a merchant and a biller: the biller."""
    water = clerk.ok("POST", "/merchants", {
        "legal_name": "金門縣自來水廠", "tax_id": "10458575", "category": "utility",
        "fee_bps": 0, "bank_account": "004-00099988877"}, status=201)
    biller: dict[str, Any] = clerk.ok(
        "POST", "/billers", {"merchant_id": water["id"], "code": "KMWATER",
                             "collection_code": "KW1", "grace_days": 10}, status=201)
    return biller


def water_bill(clerk: Api, account: str, bill_number: str, amount: int,
               payer: str) -> dict[str, Any]:
    """The water plant as a biller with one bill imported, due in 20 days: the bill."""
    import datetime as dt
    biller = water_biller(clerk)
    due = (dt.date.today() + dt.timedelta(days=20)).isoformat()
    r = clerk.client.post(f"/billers/{biller['id']}/bills/import", content=bills_csv(
        (account, bill_number, "1511", str(amount), due, payer)),
        headers={**clerk.headers, "Content-Type": "text/csv"})
    assert r.status_code == 200, r.text
    bill: dict[str, Any] = clerk.ok("GET", "/bills", account_number=account)[0]
    return bill
