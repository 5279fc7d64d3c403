"""Retention: who is due for erasure (no live card, no open balance, no activity for the
years), a dry run that changes nothing, erasure that leaves only the pseudonymous id, and an
erased resident the API reads but refuses to act for."""

from __future__ import annotations

import datetime as dt
import json
import os
import re
import subprocess
import sys
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select, text, update

from cardsvc.app.http import create_app
from cardsvc.audit.models import AuditEvent
from cardsvc.cards import service as cards
from cardsvc.context import Actor, Ctx
from cardsvc.db import unit_of_work, utcnow
from cardsvc.einvoice.models import CarrierBinding
from cardsvc.einvoice.platform import CarrierPlatform, FakePlatform
from cardsvc.holders import retention, tasks
from cardsvc.holders import service as holders
from cardsvc.holders.models import Cardholder, Enrolment
from cardsvc.holders.schemas import CardholderUpdate
from cardsvc.library.models import LibraryEvent
from cardsvc.runtime import Runtime
from cardsvc.staff import service as staff_service
from cardsvc.stats import service as stats
from tests.support import factories as f
from tests.support import libraries
from tests.support.api import PASSWORD, Api
from tests.support.dump import all_database_text

YEARS = 5
ACTOR = Actor.system("tests")
NOW = utcnow()
# Cards issued now expire in ten years: they are expired 11 years on, and that expiry (a
# card event) is five years old 16 years on.
EXPIRY = NOW + dt.timedelta(days=11 * 366)
LATER = NOW + dt.timedelta(days=16 * 366 + 30)


@contextmanager
def at(rt: Runtime, when: dt.datetime) -> Iterator[Ctx]:
    """A unit of work whose clock reads `when`."""
    with unit_of_work(rt.sessions) as db:
        ctx = rt.ctx(db, ACTOR)
        ctx.now = when
        yield ctx


def touch(rt: Runtime, holder_id: int, when: dt.datetime) -> None:
    """Activity at `when`: a clerk corrects the resident's record."""
    with at(rt, when) as ctx:
        holders.update(ctx, holder_id, CardholderUpdate(township="金湖鎮"))


def due_ids(rt: Runtime, when: dt.datetime, years: int = YEARS) -> set[int]:
    with at(rt, when) as ctx:
        return {d.holder_id for d in retention.due(ctx, years)}


def tagged(clerk: Api, **extra: Any) -> dict[str, Any]:
    """A resident with a name of their own, to look for in the raw database."""
    return f.holder(clerk, name=f"保留{uuid.uuid4().hex[:8]}", **extra)


@dataclass
class World:
    full: dict[str, Any]  # a closed card, a library link, 歸戶, a proof, phone and e-mail
    idle: dict[str, Any]  # registered, never had a card
    expired_empty: dict[str, Any]  # an expired card at NT$0
    expired_balance: dict[str, Any]  # an expired card still holding NT$300
    live: dict[str, Any]  # an active card
    recent: dict[str, Any]  # activity four years before LATER
    short: dict[str, Any]  # activity five years before LATER, less three days
    over: dict[str, Any]  # activity five years before LATER, and three days more
    library: dict[str, Any]
    platform: FakePlatform
    barcode: str

    @property
    def due(self) -> set[int]:
        return {self.full["id"], self.idle["id"], self.expired_empty["id"], self.over["id"]}


@pytest.fixture
def world(rt: Runtime, clerk: Api, admin: Api) -> World:
    platform = FakePlatform()
    rt.services.bind(CarrierPlatform, platform)
    lib = libraries.register(admin, "KMRET", optional=["name", "phone"])
    barcode = "/RET+" + uuid.uuid4().hex[:3].upper()

    full = tagged(clerk, email="retention@example.org")
    card = f.active_card(clerk, full["id"])
    clerk.ok("POST", f"/cardholders/{full['id']}/enrolments",
             {"school": "國立金門大學", "valid_until": (f.today() + dt.timedelta(days=300))
              .isoformat()}, status=201)
    libraries.link(clerk, full["id"], lib, shared=["name", "phone"])
    clerk.ok("POST", f"/cards/{card['id']}/carrier/binding", {"mobile_barcode": barcode})
    f.topup(clerk, card["id"], 200)
    clerk.ok("POST", f"/cards/{card['id']}/close", {"reason": "resident moves away"},
             key=f.key())

    expired_empty, expired_balance = tagged(clerk), tagged(clerk)
    f.active_card(clerk, expired_empty["id"])
    f.topup(clerk, f.active_card(clerk, expired_balance["id"])["id"], 300)
    with at(rt, EXPIRY) as ctx:
        assert cards.expire_due(ctx) == 2
    # Made after the expiry run: still active (nothing expires it in this test).
    live = tagged(clerk)
    f.active_card(clerk, live["id"])

    idle, recent, short, over = tagged(clerk), tagged(clerk), tagged(clerk), tagged(clerk)
    years_before = dt.timedelta(days=5 * 365 + 2)  # five years back from LATER (a leap day)
    touch(rt, recent["id"], LATER - dt.timedelta(days=4 * 365))
    touch(rt, short["id"], LATER - years_before + dt.timedelta(days=3))
    touch(rt, over["id"], LATER - years_before - dt.timedelta(days=3))
    return World(full, idle, expired_empty, expired_balance, live, recent, short, over, lib,
                 platform, barcode)


def test_who_is_due_and_why_not(rt: Runtime, world: World) -> None:
    assert retention.cutoff(LATER, YEARS) == LATER.replace(year=LATER.year - YEARS)
    due = due_ids(rt, LATER)
    assert due == world.due
    # A live card, a balance, activity within the years, or a few days short keep a
    # resident's data.
    for kept in (world.live, world.expired_balance, world.recent, world.short):
        assert kept["id"] not in due
    # Nobody is due while the years have not passed since their registration.
    assert due_ids(rt, NOW + dt.timedelta(days=5 * 365 - 10)) == set()
    with at(rt, LATER) as ctx:
        last = {d.holder_id: d.last_activity for d in retention.due(ctx, YEARS)}
    assert last[world.expired_empty["id"]] == EXPIRY  # the expiry is its last state change
    assert abs(last[world.idle["id"]] - NOW) < dt.timedelta(minutes=10)


def test_an_open_chip_load_keeps_a_resident(rt: Runtime, world: World) -> None:
    """Value waiting to reach the chip (or a supervisor's decision) is money still open."""
    with rt.sessions() as db:
        card_id = db.scalar(text("SELECT id FROM cards WHERE cardholder_id = :h"),
                            {"h": world.expired_empty["id"]})
        transfer_id = db.scalar(text("SELECT id FROM transfers ORDER BY id LIMIT 1"))
        db.execute(text("INSERT INTO card_loads (card_id, transfer_id, amount, status, "
                        "created_at) VALUES (:c, :t, 50, 'review', :now)"),
                   {"c": card_id, "t": transfer_id, "now": NOW.replace(tzinfo=None)})
        db.commit()
    assert world.expired_empty["id"] not in due_ids(rt, LATER)


def test_a_dry_run_changes_nothing(rt: Runtime, world: World) -> None:
    def snapshot() -> list[Any]:
        with rt.sessions() as db:
            return [tuple(r) for r in db.execute(select(Cardholder).order_by(Cardholder.id)
                                                 .with_only_columns(*Cardholder.__table__.c))]

    before = snapshot()
    with at(rt, LATER) as ctx:
        listed = retention.review(ctx, YEARS)
    assert {c.holder_id for c in listed} == world.due
    masked = {c.holder_id: c.person_id_masked for c in listed}
    pid = world.idle["_person_id"]
    assert masked[world.idle["id"]] == pid[:3] + "****" + pid[-3:]
    assert snapshot() == before
    with rt.sessions() as db:
        actions = list(db.scalars(select(AuditEvent.action)))
        review = db.scalars(select(AuditEvent).where(
            AuditEvent.action == "retention.review")).one()
    assert "cardholder.erase" not in actions
    assert json.loads(review.detail) == {"rule": "retention", "years": YEARS, "due": 4}
    assert world.platform.bound  # the 歸戶 still stands


def test_an_erasure_with_the_platform_down_stands_and_the_platform_is_told_later(
        rt: Runtime, world: World) -> None:
    from cardsvc.einvoice import platform
    from cardsvc.einvoice.models import OwedUnbind

    class Down(FakePlatform):
        def unbind(self, carrier_type: str, carrier_id: str, mobile_barcode: str) -> None:
            raise ConnectionError("the platform does not answer")

    rt.services.bind(CarrierPlatform, Down())
    result = retention.run(rt, ACTOR, YEARS, now=LATER)
    assert (result.erased, result.failed) == (4, [])  # the platform never stops an erasure
    with rt.sessions() as db:
        owed = db.scalars(select(OwedUnbind)).one()
        assert owed.told_at is None and owed.mobile_barcode == world.barcode
    assert world.platform.bound  # not told yet
    told = platform.tell(rt.sessions, world.platform)
    assert (told.told, told.left) == (1, 0) and world.platform.bound == {}
    with rt.sessions() as db:
        owed = db.scalars(select(OwedUnbind)).one()
        assert owed.mobile_barcode == "" and owed.last_error is None  # nothing of it is kept


def test_the_run_erases_exactly_the_due_and_a_second_run_changes_nothing(
        rt: Runtime, world: World, clerk: Api) -> None:
    erased = [world.full, world.idle, world.expired_empty, world.over]
    kept = [world.live, world.expired_balance, world.recent, world.short]
    dump = all_database_text(rt)
    assert world.full["name"] in dump and "0912-000-111" in dump  # the check can fail
    result = retention.run(rt, ACTOR, YEARS, now=LATER)
    assert (result.due, result.erased, result.skipped, result.failed) == (4, 4, 0, [])
    assert result.compacted == (rt.engine.dialect.name == "sqlite")

    with rt.sessions() as db:
        rows = {h.id: h for h in db.scalars(select(Cardholder))}
        for h in erased:
            row = rows[h["id"]]
            assert row.erased_at == LATER and row.name == "" and row.phone_enc is None
            assert row.person_id_enc == "" and row.birth_date_enc == ""
            assert row.email_enc is None and row.person_id_hash == f"erased:{h['id']}"
            assert row.township is not None  # the issuance statistics count by township
        for h in kept:
            assert rows[h["id"]].erased_at is None and rows[h["id"]].name == h["name"]
        assert db.scalars(select(Enrolment)).all() == []
        binding = db.scalars(select(CarrierBinding)).one()
        assert binding.mobile_barcode == "" and binding.live_carrier_id is None
        records = [json.loads(e.record) for e in db.scalars(select(LibraryEvent))]
        audits = list(db.scalars(select(AuditEvent).where(
            AuditEvent.action == "cardholder.erase").order_by(AuditEvent.id)))
    assert world.platform.bound == {}  # the MOF platform was told
    assert records[-1]["status"] == "closed"  # the library was told the patron is gone
    assert all("name" not in r and "phone" not in r for r in records)
    assert sorted(int(a.target_id or 0) for a in audits) == sorted(h["id"] for h in erased)
    for a in audits:
        assert a.target_type == "cardholder"
        detail = json.loads(a.detail)
        assert detail["rule"] == "retention" and detail["years"] == YEARS
    full_detail = json.loads(audits[0].detail)
    assert full_detail["library_links"] == 1 and full_detail["einvoice_bindings"] == 1
    assert full_detail["proofs"] == 1

    dump = all_database_text(rt)
    for h in erased:
        assert h["name"] not in dump, "an erased name is still in the database"
    assert "retention@example.org" not in dump
    assert "0912-000-111" not in dump  # the phone the library was sent
    for h in kept:
        assert h["name"] in dump

    with rt.sessions() as db:
        audit_rows = len(list(db.scalars(select(AuditEvent.id))))
    again = retention.run(rt, ACTOR, YEARS, now=LATER)
    assert (again.due, again.erased) == (0, 0)
    with rt.sessions() as db:
        assert len(list(db.scalars(select(AuditEvent.id)))) == audit_rows
    with at(rt, LATER) as ctx:
        assert retention.erase(ctx, world.idle["id"], YEARS) is False


def test_a_resident_no_longer_due_when_their_turn_comes_is_skipped(
        rt: Runtime, world: World, clerk: Api) -> None:
    f.active_card(clerk, world.idle["id"])  # applied for at the counter meanwhile
    with at(rt, LATER) as ctx:
        assert retention.erase(ctx, world.idle["id"], YEARS) is False
    with rt.sessions() as db:
        assert db.get(Cardholder, world.idle["id"]).erased_at is None  # type: ignore[union-attr]


def test_an_erased_resident_reads_fine_and_nothing_can_be_done(
        rt: Runtime, world: World, clerk: Api, auditor: Api) -> None:
    retention.run(rt, ACTOR, YEARS, now=LATER)
    h = world.full
    rec = clerk.ok("GET", f"/cardholders/{h['id']}", purpose="retention check")
    assert rec["erased_at"] is not None and rec["name"] == "" and rec["birth_date"] is None
    assert rec["person_id_masked"] == "" and rec["phone"] is None and rec["enrolments"] == []
    assert auditor.ok("GET", f"/cardholders/{h['id']}", purpose="ethics office audit")["id"] \
        == h["id"]
    assert clerk.ok("GET", f"/cardholders/{h['id']}", purpose="check", reveal="true"
                    )["person_id"] is None
    cards = clerk.ok("GET", f"/cardholders/{h['id']}/cards")
    assert len(cards) == 1
    assert len(clerk.ok("GET", f"/cardholders/{h['id']}/library-links")) == 1
    clerk.ok("GET", f"/cardholders/{h['id']}/invoices")
    for found in (
            clerk.ok("POST", "/cardholders/search", {"purpose": "lookup",
                                                     "person_id": h["_person_id"]}),
            clerk.ok("POST", "/cardholders/search", {"purpose": "lookup", "name": "保留",
                                                     "limit": 100})):
        assert h["id"] not in {x["id"] for x in found}
    refusals = [
        clerk.post("/cards/applications", {"cardholder_id": h["id"], "product": "general"}),
        clerk.req("PATCH", f"/cardholders/{h['id']}", {"phone": "0911-111-111"}),
        clerk.post(f"/cardholders/{h['id']}/enrolments",
                   {"school": "金門高中", "valid_until": f.today().isoformat()}),
        clerk.get("/cards/eligibility", cardholder_id=h["id"], product="general"),
        clerk.post(f"/cardholders/{h['id']}/library-links",
                   {"library_id": world.library["id"], "shared_fields": []}),
        clerk.post(f"/cardholders/{world.live['id']}/disability-certificates",
                   {"certificate_no": "CERT-0001", "valid_until": f.today().isoformat(),
                    "companion_id": h["id"]}),
        # no new 歸戶 on an old card of theirs: the barcode would be personal data again
        clerk.post(f"/cards/{cards[0]['id']}/carrier/binding", {"mobile_barcode": "/ABC1234"}),
    ]
    for r in refusals:
        assert r.status_code == 409 and r.json()["code"] == "cardholder_erased", r.text


def test_the_same_national_id_registers_again_as_a_new_resident(
        rt: Runtime, world: World, clerk: Api) -> None:
    retention.run(rt, ACTOR, YEARS, now=LATER)
    pid = world.idle["_person_id"]
    again = clerk.ok("POST", "/cardholders", {
        "name": "回鄉居民", "person_id": pid, "birth_date": "1980-01-01", "township": "金城鎮"},
        status=201)
    assert again["id"] != world.idle["id"] and again["erased_at"] is None
    found = clerk.ok("POST", "/cardholders/search", {"purpose": "lookup", "person_id": pid})
    assert [x["id"] for x in found] == [again["id"]]


def test_the_scheduled_run_is_off_unless_turned_on(runtime_factory) -> None:  # type: ignore[no-untyped-def]
    assert tasks.beat(runtime_factory().settings) == {}
    on = runtime_factory(retention_scheduled=True).settings
    assert tasks.beat(on)["erase-due-residents"]["task"] == "cardsvc.holders.tasks.erase_due"


# --- the command, as an operator runs it --------------------------------------------------------


def cli(rt: Runtime, secrets_file: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("CARDSVC_")}
    env.update(COLUMNS="200", CARDSVC_DATABASE_URL=rt.engine.url.render_as_string(
        hide_password=False), CARDSVC_SECRETS_FILE=str(secrets_file))
    return subprocess.run([sys.executable, "-m", "cardsvc.app.cli", "retention", "run", *args],
                          env=env, capture_output=True, text=True, timeout=300)


def test_the_command_lists_then_erases(rt: Runtime, clerk: Api, secrets_file: Path,
                                       tmp_path: Path) -> None:
    old, new = tagged(clerk), tagged(clerk)
    with rt.sessions() as db:  # registered six years ago, and nothing since
        long_ago = utcnow() - dt.timedelta(days=6 * 366)
        db.execute(update(Cardholder).where(Cardholder.id == old["id"])
                   .values(created_at=long_ago, updated_at=long_ago))
        db.commit()
    rt.engine.dispose()  # the command opens the database itself

    listed = cli(rt, secrets_file, "--dry-run", "--csv", str(tmp_path / "due.csv"))
    assert listed.returncode == 0, listed.stderr
    pid = old["_person_id"]
    assert pid[:3] + "****" + pid[-3:] in listed.stdout
    assert "1 resident(s) would be erased" in listed.stdout
    rows = (tmp_path / "due.csv").read_text(encoding="utf-8-sig").splitlines()
    assert rows[0] == "cardholder_id,last_activity,person_id_masked"
    assert rows[1].startswith(f"{old['id']},") and len(rows) == 2
    assert clerk.ok("GET", f"/cardholders/{old['id']}", purpose="check")["name"] == old["name"]

    refused = cli(rt, secrets_file, "--csv", str(tmp_path / "x.csv"))
    assert refused.returncode == 1 and "--dry-run" in refused.stdout

    done = cli(rt, secrets_file, "--yes")
    assert done.returncode == 0, done.stderr
    assert "erased 1 resident(s) of 1 due" in done.stdout
    assert clerk.ok("GET", f"/cardholders/{old['id']}", purpose="check")["erased_at"]
    assert clerk.ok("GET", f"/cardholders/{new['id']}", purpose="check")["name"] == new["name"]
    assert "nobody is due" in cli(rt, secrets_file, "--yes").stdout


def test_the_counter_page_of_an_erased_resident_opens(rt: Runtime, world: World) -> None:
    retention.run(rt, ACTOR, YEARS, now=LATER)
    with unit_of_work(rt.sessions) as db:
        staff_service.add_desk(db, ACTOR, "KM-RET-1", "保留測試櫃台")
    with TestClient(create_app(rt), raise_server_exceptions=False,
                    follow_redirects=False) as client:
        def csrf(html: str) -> str:
            found = re.search(r'name="csrf" value="([^"]+)"', html)
            assert found is not None
            return found.group(1)

        page = client.get("/counter/login")
        login = client.post("/counter/login", data={
            "username": "t.clerk", "password": PASSWORD, "desk": "KM-RET-1",
            "csrf": csrf(page.text)})
        assert login.status_code == 303, login.text
        home = client.get("/counter")
        r = client.post(f"/counter/residents/{world.full['id']}",
                        data={"purpose": "retention check", "csrf": csrf(home.text)})
    assert r.status_code == 200, r.text
    assert str(world.full["id"]) in r.text and world.full["name"] not in r.text
    assert "已刪除個資的縣民" in r.text and 'data-testid="erased"' in r.text


def test_statistics_count_erased_residents_as_before(rt: Runtime, world: World) -> None:
    """Issuance statistics count cards by product, status and the holder's township: the
    township stays, so erasure changes no count."""
    def report() -> Any:
        with at(rt, LATER) as ctx:
            out = stats.issuance(ctx, f.today() - dt.timedelta(days=1),
                                 f.today() + dt.timedelta(days=1))
        return out.rows, out.by_township

    before = report()
    assert sum(r.cards for r in before[0]) == 4  # four cards issued, one per resident
    assert retention.run(rt, ACTOR, YEARS, now=LATER).erased == 4
    assert report() == before
