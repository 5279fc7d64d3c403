"""A day on the buses, cleared: the operator's takings and the subsidy claims on the funding
programmes, concession rides the backend finds invalid reported as exceptions (no claim),
misuse signals, the payout, and the month's statement."""

from __future__ import annotations

import datetime as dt
import json

from sqlalchemy import select

from cardsvc.context import Actor, Ctx
from cardsvc.ledger import codes
from cardsvc.ledger.models import Account
from settlement.clearing import service as clearing
from settlement.subsidies import rules
from settlement.subsidies import service as subsidies
from settlement.subsidies.models import SubsidyClaim
from tests.support.transit import Depot, today


def balance(depot: Depot, code: str) -> int:
    with depot.rt.sessions() as db:
        return int(db.scalar(select(Account.balance).where(Account.code == code)) or 0)


def test_a_day_of_rides_cleared_with_its_subsidy_claims(depot: Depot) -> None:
    now = dt.datetime.now(dt.UTC)
    senior = depot.card("senior", age=75)
    student = depot.card("student", age=15, enrolment_until=today() + dt.timedelta(days=90))
    general = depot.card("general")
    disabled, companion = depot.disabled_with_companion()
    # A student who left school: the backend knows, the card (not tapped since) does not.
    leaver = depot.card("student", age=18, enrolment_until=today() + dt.timedelta(days=90))
    depot.clerk.ok("PATCH", f"/cardholders/{leaver['_holder']['id']}/enrolments/"
                   f"{leaver['enrolment']['id']}",
                   {"valid_until": (today() - dt.timedelta(days=1)).isoformat()})
    t0 = now - dt.timedelta(minutes=60)
    rides = [
        depot.ride(senior, 0, at=t0),  # free: claim 30
        depot.ride(student, 0, at=t0 + dt.timedelta(minutes=1)),  # 15: claim 15
        depot.ride(general, 0, at=t0 + dt.timedelta(minutes=2)),  # full: no claim
        depot.ride(disabled, 1, at=t0 + dt.timedelta(minutes=3)),  # free: claim 30
        depot.ride(companion, 1, at=t0 + dt.timedelta(minutes=4)),  # with the holder
        depot.ride(leaver, 0, at=t0 + dt.timedelta(minutes=5)),  # 15, but not a student
        depot.ride(companion, 0, at=t0 + dt.timedelta(minutes=30)),  # alone: a signal
        depot.ride(senior, 1, at=t0 + dt.timedelta(minutes=2)),  # 2 min on, another bus
    ]
    assert [r.fare for r in rides] == [0, 15, 30, 0, 0, 15, 0, 0]
    assert all(r.status == "accepted" for r in rides)

    window = clearing.run_in_process(depot.rt, today())
    assert window.status == "settled"
    report = clearing.report(depot.rt, today())
    (statement, _name), = report.statements
    takings = sum(r.fare for r in rides)
    claimed = 30 + 15 + 30 + 30 + 30 + 30  # every valid concession ride's full − charged
    assert (statement.sales_count, statement.gross, statement.subsidies) == (8, takings,
                                                                             claimed)
    assert statement.net == statement.payout == takings + claimed
    with depot.rt.sessions() as db:
        claims = list(db.scalars(select(SubsidyClaim).order_by(SubsidyClaim.transaction_id)))
    assert sum(c.claim for c in claims) == claimed
    assert all(c.claim == c.full_fare - c.fare for c in claims)
    assert {(c.programme, c.concession) for c in claims} == {
        ("social_affairs", "senior"), ("social_affairs", "disability"),
        ("social_affairs", "companion"), ("education", "student")}
    # The programmes owe what was claimed; the payout paid the operator all of it.
    assert balance(depot, codes.programme_code("social_affairs")) == -(claimed - 15)
    assert balance(depot, codes.programme_code("education")) == -15
    assert balance(depot, codes.merchant_code(depot.operator["id"])) == 0
    exceptions = sorted((x.reason, x.transaction_id) for x in report.exceptions)
    by_id = {r.response["transaction_id"]: i for i, r in enumerate(rides)}
    assert [(reason, by_id[tid]) for reason, tid in exceptions] == [
        ("companion_alone", 6), ("concession_not_valid", 5), ("ride_repeated", 7)]
    files = clearing.files_of(depot.rt, today())
    doc = json.loads(files[f"statement-{depot.operator['id']}.json"])
    assert doc["totals"]["subsidies"] == claimed

    with depot.rt.sessions() as db:
        ctx = Ctx(db, depot.rt.settings, depot.rt.keys, Actor.system("tests"))
        month = today().strftime("%Y-%m")
        st = subsidies.statement(ctx, month)
        education = subsidies.statement(ctx, month, "education")
    rows = {r.programme: r for r in st.rows}
    assert (rows["social_affairs"].rides, rows["social_affairs"].riders,
            rows["social_affairs"].claimed) == (5, 3, claimed - 15)
    assert (rows["education"].full_fares, rows["education"].fares_charged,
            rows["education"].claimed) == (30, 15, 15)
    assert [r.programme for r in education.rows] == ["education"]
    assert st.claimed == claimed
    csv_text = subsidies.to_csv(st)
    assert csv_text.splitlines()[0].startswith("programme,programme_name,budget_account")
    assert "SA-TRANSIT" in csv_text and "ED-TRANSIT" in csv_text
    assert "<svg" in subsidies.to_svg(st) and f"{claimed - 15:,}" in subsidies.to_svg(st)


def test_the_statement_over_http(depot: Depot) -> None:
    senior = depot.card("senior", age=80)
    depot.ride(senior)
    clearing.run_in_process(depot.rt, today())
    month = today().strftime("%Y-%m")
    out = depot.supervisor.ok("GET", "/subsidies/statements", month=month)
    assert out["claimed"] == 30 and out["rows"][0]["budget_account"] == "SA-TRANSIT"
    csv_r = depot.supervisor.get("/subsidies/statements", month=month, format="csv")
    assert csv_r.headers["content-type"].startswith("text/csv") and "SA-TRANSIT" in csv_r.text
    assert depot.supervisor.get("/subsidies/statements", month="2026-13").status_code == 422
    assert depot.supervisor.get("/subsidies/statements", month=month,
                                programme="nobody").status_code == 422
    assert depot.clerk.get("/subsidies/statements", month=month).status_code == 403


def test_misuse_signal_rules() -> None:
    f = rules.RideFact
    rides = [f(1, 10, 100, 1_000, "senior"), f(2, 10, 100, 1_100, "senior"),  # same bus
             f(3, 10, 200, 1_150, "senior"),  # 50 s later on another bus
             f(4, 11, 100, 5_000, "senior"), f(5, 11, 200, 5_300, "senior")]  # 300 s: fine
    assert [(s.reason, s.transaction_id) for s in rules.repeated_rides(rides, 300)] == [
        ("ride_repeated", 3)]
    pair = [f(6, 20, 100, 2_000, "disability"), f(7, 21, 100, 2_090, "companion"),
            f(8, 21, 100, 2_300, "companion"), f(9, 21, 200, 2_000, "companion")]
    assert [s.transaction_id for s in rules.lone_companions(pair, 120)] == [8, 9]
