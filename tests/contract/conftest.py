"""A populated world for the API contract run: one database for the whole run (the run
mutates it freely), a token per role, a terminal's signing key, and ids of records of every
kind, which the run puts into the requests it generates so the money routes are reached."""

from __future__ import annotations

import datetime as dt
import os
import shutil
import threading
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select

from cardsvc.app import migrate
from cardsvc.app.bootstrap import build_runtime
from cardsvc.app.http import create_app
from cardsvc.runtime import Runtime
from merchants.pos.client import PosClient
from settlement.bills.models import Bill
from tests.support import factories as f
from tests.support.api import PASSWORD, ROLES, Api
from tests.support.databases import (
    Backend,
    create_pg_database,
    drop_pg_database,
    make_settings,
    seed_staff,
)
from tests.support.worlds import LIBRARY_WITH_KEY, World


@pytest.fixture(scope="module")
def contract_rt(backend: Backend, secrets_file: Path,
                tmp_path_factory: pytest.TempPathFactory) -> Iterator[Runtime]:
    work = tmp_path_factory.mktemp("contract")
    overrides: dict[str, Any] = {"reader": "sim", "sim_cards_dir": work / "cards",
                                 "reader_timeout_seconds": 2}
    if backend.name == "postgresql":
        base = os.environ["CARDSVC_TEST_DATABASE_URL"]
        url = create_pg_database(base)
        rt = build_runtime(make_settings(url, secrets_file, **overrides))
        migrate.upgrade(rt.engine)
        seed_staff(rt)
        yield rt
        rt.close()
        drop_pg_database(base, url)
        return
    assert backend.template is not None
    shutil.copy(backend.template, work / "contract.db")
    rt = build_runtime(make_settings(f"sqlite:///{work / 'contract.db'}", secrets_file,
                                     **overrides))
    yield rt
    rt.close()


def _bills_csv(count: int) -> bytes:
    due = (dt.date.today() + dt.timedelta(days=20)).isoformat()
    rows = ["account_number,bill_number,period,amount,due_date,payer_name"]
    rows += [f"A{1000000 + i},WB{i:014d},1511,{300 + i},{due},用戶{i}" for i in range(count)]
    return ("\n".join(rows) + "\n").encode()


@pytest.fixture(scope="module")
def world(contract_rt: Runtime) -> Iterator[World]:
    with TestClient(create_app(contract_rt), raise_server_exceptions=False) as client:
        tokens = {}
        for role in ROLES:
            r = client.post("/auth/login", json={"username": f"t.{role}", "password": PASSWORD})
            assert r.status_code == 200, r.text
            tokens[role] = r.json()["access_token"]
        clerk = Api(client, tokens["clerk"])
        ids: dict[str, list[int]] = {k: [] for k in (
            "holder", "card", "merchant", "terminal", "biller", "bill", "transaction",
            "staff", "library", "link")}
        ids["card_disposable"] = []
        ids["holder_cardless"] = []
        numbers = []
        # Live cards take the money routes; disposable ones the state changes (close,
        # replace, block, ...), which would otherwise leave no card to top up.
        plan = [("card", 40, "general", False), ("card", 70, "senior", False),
                ("card", 30, "general", True), ("card", 50, "mobile", False),
                ("card", 20, "mobile", False)]
        plan += [("card_disposable", 30 + i, ("general", "mobile")[i % 2], i % 3 == 0)
                 for i in range(12)]
        for pool, age, product, bureau in plan:
            h = f.holder(clerk, age=age)
            ids["holder"].append(h["id"])
            extra: dict[str, Any] = {}
            if product == "mobile":
                _, public = f.phone_key()
                extra = {"device_id": f"phone-{h['id']}-contract",
                         "device_public_key": public}
            app = clerk.ok("POST", "/cards/applications",
                           {"cardholder_id": h["id"], "product": product, **extra}, status=201)
            body = {"chip_uid": f.uid()} if bureau and product != "mobile" else {}
            card = clerk.ok("POST", f"/cards/{app['id']}/issue", body)
            clerk.ok("POST", f"/cards/{card['id']}/activate")
            clerk.ok("POST", f"/cards/{card['id']}/topups", {"amount": 5000}, key=f.key())
            ids[pool].append(card["id"])
            numbers.append(card["card_number"])
        until = (dt.date.today() + dt.timedelta(days=300)).isoformat()
        for age in (10, 25, 45, 66, 80, 35, 55, 19):  # no card yet: applications can succeed
            h = f.holder(clerk, age=age)
            ids["holder"].append(h["id"])
            ids["holder_cardless"].append(h["id"])
            # Proofs for the student and staff products too: any product but mobile can be
            # granted to these residents, so a generated application reaches the work.
            clerk.ok("POST", f"/cardholders/{h['id']}/enrolments",
                     {"school": "金門高中", "valid_until": until}, status=201)
            clerk.ok("POST", f"/cardholders/{h['id']}/employments",
                     {"employer": "金門縣政府", "employer_kind": "county_government",
                      "valid_until": until}, status=201)
        shop = clerk.ok("POST", "/merchants", {
            "legal_name": "金城小吃店", "tax_id": "04595252", "category": "retail",
            "fee_bps": 150, "bank_account": "812-00011122233"}, status=201)
        ids["merchant"].append(shop["id"])
        terminal = clerk.ok("POST", f"/merchants/{shop['id']}/terminals", {"label": "till 1"},
                            status=201)
        ids["terminal"].append(terminal["id"])
        water = clerk.ok("POST", "/merchants", {
            "legal_name": "金門縣自來水廠", "tax_id": "10458575", "category": "utility",
            "fee_bps": 0, "bank_account": "004-00099988877"}, status=201)
        ids["merchant"].append(water["id"])
        biller = clerk.ok("POST", "/billers", {"merchant_id": water["id"], "code": "KMWATER",
                                               "collection_code": "KW1", "grace_days": 10},
                          status=201)
        ids["biller"].append(biller["id"])
        r = client.post(f"/billers/{biller['id']}/bills/import", content=_bills_csv(40),
                        headers={**clerk.headers, "Content-Type": "text/csv"})
        assert r.status_code in (200, 201), r.text
        with contract_rt.sessions() as db:
            ids["bill"] += list(db.scalars(select(Bill.id).order_by(Bill.id)))
        pos = PosClient(client, terminal["key_id"], terminal["secret"])
        admin = Api(client, tokens["admin"])
        for name in ("fuzz.one", "fuzz.two"):  # the run may change these, not the role accounts
            ids["staff"].append(admin.ok("POST", "/staff", {
                "username": f"{name}.{uuid.uuid4().hex[:6]}", "role": "clerk",
                "password": "fuzz-password-1"}, status=201)["id"])
        libraries = [admin.ok("POST", "/libraries", {
            "code": code, "name": code, "ils": "koha", "home_branch": code,
            "categories": {"general": "AD", "senior": "SR", "default": "AD"},
            "optional_fields": ["name", "phone", "email", "township"]}, status=201)
            for code in (LIBRARY_WITH_KEY, "JCLIB")]
        ids["library"] += [lib["id"] for lib in libraries]
        for holder_id in ids["holder"][:6]:
            ids["link"].append(clerk.ok("POST", f"/cardholders/{holder_id}/library-links", {
                "library_id": libraries[0]["id"], "shared_fields": ["name"]}, status=201)["id"])
        auth = (libraries[0]["feed_key_id"], libraries[0]["feed_key"])
        with serving(contract_rt) as base_url:
            yield World(contract_rt, client, tokens, pos, ids, numbers, base_url, auth)


@contextmanager
def serving(rt: Runtime) -> Iterator[str]:
    """The app behind a real server (uvicorn with the bounded protocol `cardsvc serve` runs),
    in a thread of this process, on a free port."""
    import socket

    import uvicorn

    from cardsvc.app.server import BoundedHttpToolsProtocol

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = int(sock.getsockname()[1])
    server = uvicorn.Server(uvicorn.Config(
        create_app(rt), host="127.0.0.1", port=port, log_level="warning", access_log=False,
        http=BoundedHttpToolsProtocol,
        h11_max_incomplete_event_size=rt.settings.max_header_bytes))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    for _ in range(500):
        if server.started:
            break
        time.sleep(0.01)
    assert server.started, "the contract run's server did not start"
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(10)


@pytest.fixture(autouse=True)
def _healed(request: pytest.FixtureRequest) -> None:
    if "world" in request.fixturenames:
        request.getfixturevalue("world").heal()
