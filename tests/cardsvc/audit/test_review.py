"""The ethics office's access review and a resident's access log (個資查詢): a week at the
counter with chosen times, read back through the review's flags and the residents' logs."""

from __future__ import annotations

import csv
import datetime as dt
import io
import os
import re
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass, field
from html.parser import HTMLParser
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select

from cardsvc.app.http import create_app
from cardsvc.audit import service as audit_service
from cardsvc.audit.models import AuditEvent
from cardsvc.context import TAIPEI
from tests.support import factories as f
from tests.support import libraries as lib
from tests.support.api import Api

PER_HOUR = 3  # the world's threshold of distinct residents per person and hour


class Clock:
    """The audit trail's clock: each row is stamped with the time set last."""

    def __init__(self, monday: dt.date) -> None:
        self.monday = monday
        self.now = dt.datetime.combine(monday, dt.time(9), TAIPEI).astimezone(dt.UTC)

    def set(self, day: int, hhmm: str) -> None:
        hour, minute = (int(x) for x in hhmm.split(":"))
        self.now = dt.datetime.combine(self.monday + dt.timedelta(days=day),
                                       dt.time(hour, minute), TAIPEI).astimezone(dt.UTC)

    def __call__(self) -> dt.datetime:
        return self.now


@dataclass
class Week:
    client: TestClient
    clerk: Api
    supervisor: Api
    auditor: Api
    rt: Any
    clock: Clock
    residents: dict[str, dict[str, Any]]
    library: dict[str, Any]
    reads: dict[str, int] = field(default_factory=dict)  # what happened -> its audit row


def next_monday() -> dt.date:
    """A Monday ahead of the real clock: rows stamped then come after the library link's
    consent, which the real clock stamps."""
    day = f.today() + dt.timedelta(days=7)
    return day + dt.timedelta(days=(7 - day.weekday()) % 7)


def last_row(rt: Any, action: str) -> int:
    with rt.sessions() as db:
        found = db.scalar(select(AuditEvent.id).where(AuditEvent.action == action)
                          .order_by(AuditEvent.id.desc()).limit(1))
    assert found is not None
    return int(found)


@pytest.fixture
def week(runtime_factory, tokens, monkeypatch) -> Iterator[Week]:  # type: ignore[no-untyped-def]
    clock = Clock(next_monday())
    monkeypatch.setattr(audit_service, "utcnow", clock)
    rt = runtime_factory(review_residents_per_hour=PER_HOUR)
    with TestClient(create_app(rt), raise_server_exceptions=False) as client:
        clerk, supervisor = Api(client, tokens["clerk"]), Api(client, tokens["supervisor"])
        w = Week(client, clerk, supervisor, Api(client, tokens["auditor"]), rt, clock, {},
                 lib.register(Api(client, tokens["admin"]), "KMCCL"))
        # Monday 09:00: four residents registered, with cards; A links the county library.
        for key, name in (("A", "陳甲"), ("B", "李乙"), ("C", "王丙"), ("D", "林丁")):
            h = f.holder(clerk, name=name)
            w.residents[key] = h | {"card": f.active_card(clerk, h["id"])}
        lib.link(clerk, w.residents["A"]["id"], w.library, ["name"])
        yield w


def read(w: Week, api: Api, who: str, day: int, hhmm: str, purpose: str,
         reveal: bool = False) -> int:
    w.clock.set(day, hhmm)
    api.ok("GET", f"/cardholders/{w.residents[who]['id']}", purpose=purpose,
           reveal=str(reveal).lower())
    return last_row(w.rt, "cardholder.read")


def live_a_week(w: Week) -> None:
    """Tuesday: a normal visit of A, a look at B with nothing done for B, a reveal, two
    searches, C read at night, the library reading A's record. Wednesday: the supervisor
    reads all four within an hour while the counter serves C and D. Saturday: D read."""
    A, C, D = (w.residents[k] for k in "ACD")
    r = w.reads
    r["tue A"] = read(w, w.clerk, "A", 1, "10:00", "counter service: new phone number")
    w.clock.set(1, "10:01")
    w.clerk.ok("PATCH", f"/cardholders/{A['id']}", {"phone": "0912-345-678"})
    r["tue B"] = read(w, w.clerk, "B", 1, "10:05", "<script>alert(1)</script> curious")
    r["tue reveal A"] = read(w, w.supervisor, "A", 1, "10:10", "identity check at the desk",
                             reveal=True)
    w.clock.set(1, "10:15")
    w.clerk.ok("POST", "/cardholders/search", {"purpose": "resident at the desk",
                                               "person_id": A["_person_id"]})
    r["tue id search"] = last_row(w.rt, "cardholder.search")
    w.clock.set(1, "10:16")
    w.clerk.ok("POST", "/cardholders/search", {"purpose": "resident at the desk",
                                               "name": "陳"})
    r["tue name search"] = last_row(w.rt, "cardholder.search")
    w.clock.set(1, "12:00")
    assert lib.feed(w.client, w.library)
    r["tue feed"] = last_row(w.rt, "library.disclose")
    w.clock.set(1, "12:05")
    got = w.client.get("/library/v1/patrons.csv", headers=lib.basic(w.library))
    assert got.status_code == 200, got.text
    r["tue export"] = last_row(w.rt, "library.disclose")
    r["tue night C"] = read(w, w.clerk, "C", 1, "20:30", "finishing the day's files")
    for who, hhmm in (("A", "11:00"), ("B", "11:10"), ("C", "11:20"), ("D", "11:30")):
        r[f"wed {who}"] = read(w, w.supervisor, who, 2, hhmm, "checking the day's cards")
    w.clock.set(2, "11:35")
    w.clerk.ok("POST", f"/cards/{C['card']['id']}/suspend", {"kind": "lost",
                                                             "reason": "lost at the port"})
    w.clock.set(2, "11:40")
    f.topup(w.clerk, D["card"]["id"], 200)
    r["sat D"] = read(w, w.clerk, "D", 5, "10:00", "weekend duty")
    w.clock.set(8, "09:00")


def review(w: Week, fmt: str = "json") -> Any:
    monday = w.clock.monday
    got = w.auditor.get("/audit/review", **{"from": monday.isoformat(),
                                            "to": (monday + dt.timedelta(days=6)).isoformat(),
                                            "format": fmt})
    assert got.status_code == 200, got.text
    return got.json() if fmt == "json" else got.text


def lines(report: dict[str, Any], flag: str) -> list[dict[str, Any]]:
    return [x for x in report["flags"] if x["flag"] == flag]


def test_each_flag_names_its_rows_and_only_those(week: Week) -> None:
    live_a_week(week)
    r, res = week.reads, week.residents
    report = review(week)

    reveals = lines(report, "full_id_reveal")
    assert [(x["staff"], x["subject"], x["audit_ids"]) for x in reveals] == [
        ("t.supervisor", f"cardholder {res['A']['id']}", [r["tue reveal A"]])]

    searches = lines(report, "national_id_search")
    assert [(x["staff"], x["count"], x["audit_ids"]) for x in searches] == [
        ("t.clerk", 1, [r["tue id search"]])]

    off = lines(report, "outside_office_hours")
    assert sorted(i for x in off for i in x["audit_ids"]) == [r["tue night C"], r["sat D"]]
    assert {x["day"] for x in off} == {(week.clock.monday + dt.timedelta(days=d)).isoformat()
                                       for d in (1, 5)}

    # B on Tuesday and C at night had nothing done for them that day; Wednesday's reads of A
    # and B neither. A on Tuesday (phone changed), C (card reported lost) and D (topped up)
    # on Wednesday were served at the counter.
    unserved = lines(report, "no_counter_action")
    assert sorted((x["staff"], x["subject"], tuple(x["audit_ids"])) for x in unserved) == sorted([
        ("t.clerk", f"cardholder {res['B']['id']}", (r["tue B"],)),
        ("t.clerk", f"cardholder {res['C']['id']}", (r["tue night C"],)),
        ("t.supervisor", f"cardholder {res['A']['id']}", (r["wed A"],)),
        ("t.supervisor", f"cardholder {res['B']['id']}", (r["wed B"],)),
        ("t.clerk", f"cardholder {res['D']['id']}", (r["sat D"],))])

    many = lines(report, "many_residents_per_hour")
    assert [(x["staff"], x["residents"], x["audit_ids"]) for x in many] == [
        ("t.supervisor", 4, sorted(r[f"wed {k}"] for k in "ABCD"))]

    exports = lines(report, "export")
    assert sorted(i for x in exports for i in x["audit_ids"]) == [r["tue feed"],
                                                                  r["tue export"]]
    assert {x["subject"] for x in exports} == {"KMCCL 圖書館 (KMCCL)"}
    assert {x["role"] for x in exports} == {"library"}

    tuesday = (week.clock.monday + dt.timedelta(days=1)).isoformat()
    counts = {(c["day"], c["staff"], c["purpose"]): c["reads"] for c in report["reads"]}
    assert counts[(tuesday, "t.clerk", "resident at the desk")] == 2  # the two searches
    assert counts[(tuesday, "t.supervisor", "identity check at the desk")] == 1
    assert sum(counts.values()) == 11


def test_an_early_read_is_on_the_taipei_day_not_the_utc_one(week: Week) -> None:
    """07:30 on Tuesday in Taipei is 23:30 on Monday in UTC: the read is Tuesday's, before
    the office opens, and Tuesday's phone change for the same resident served them."""
    early = read(week, week.clerk, "A", 1, "07:30", "early at the desk")
    week.clock.set(1, "10:01")
    week.clerk.ok("PATCH", f"/cardholders/{week.residents['A']['id']}", {"phone": "0912-000-111"})
    report = review(week)
    tuesday = (week.clock.monday + dt.timedelta(days=1)).isoformat()
    off = [x for x in lines(report, "outside_office_hours") if early in x["audit_ids"]]
    assert [x["day"] for x in off] == [tuesday]
    assert not any(early in x["audit_ids"] for x in lines(report, "no_counter_action"))
    counts = {(c["day"], c["purpose"]): c["reads"] for c in report["reads"]}
    assert counts[(tuesday, "early at the desk")] == 1


def test_printing_an_access_log_does_not_clear_a_flag(week: Week) -> None:
    """Whoever may read a resident may print their access log: it must not pass for having
    served them, or a look with nothing done could be covered up the same day."""
    live_a_week(week)
    week.clock.set(1, "16:00")
    week.clerk.ok("GET", f"/audit/cardholders/{week.residents['B']['id']}/access-log",
                  purpose="the resident asked")
    unserved = {i for x in lines(review(week), "no_counter_action") for i in x["audit_ids"]}
    assert week.reads["tue B"] in unserved


def test_producing_the_review_is_audited_and_refusals_are_clear(week: Week) -> None:
    live_a_week(week)
    review(week)
    with week.rt.sessions() as db:
        row = db.scalars(select(AuditEvent).where(AuditEvent.action == "audit.review")).one()
    assert row.actor == "t.auditor" and '"full_id_reveal":1' in row.detail

    def refused(api: Api, **params: str) -> tuple[int, str]:
        got = api.get("/audit/review", **params)
        return got.status_code, got.json()["code"]

    a = week.auditor
    assert refused(a, **{"from": "2026-03-02", "to": "2026-03-01"}) == (
        422, "review_period_reversed")
    assert refused(a, **{"from": "2025-01-01", "to": "2026-01-01"}) == (
        422, "review_period_too_long")
    assert refused(a, **{"from": "2025-01-01", "to": "2025-12-31", "format": "pdf"}) == (
        422, "invalid_input")
    assert refused(a, **{"from": "2025-02-30", "to": "2025-03-01"}) == (422, "invalid_input")
    assert refused(a, to="2025-03-01") == (422, "invalid_input")
    assert refused(a, **{"from": "9999-01-01", "to": "9999-01-02"}) == (422, "invalid_input")
    assert refused(week.clerk, **{"from": "2025-01-01", "to": "2025-01-02"}) == (
        403, "forbidden")
    # a leap year is one year
    assert a.get("/audit/review", **{"from": "2028-01-01", "to": "2028-12-31"}).status_code \
        == 200


class Rows(HTMLParser):
    """The cells of the review page's lines, by section, and the links of the id cells."""

    def __init__(self) -> None:
        super().__init__()
        self.rows: list[tuple[str, list[str]]] = []
        self.links: list[str] = []
        self._cell: list[str] | None = None

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        a = dict(attrs)
        if tag == "tr" and a.get("data-section"):
            self.rows.append((a["data-section"] or "", []))
        elif tag == "td" and self.rows:
            self._cell = []
        elif tag == "a" and a.get("href"):
            self.links.append(a["href"] or "")

    def handle_endtag(self, tag: str) -> None:
        if tag == "td" and self._cell is not None:
            self.rows[-1][1].append(" ".join("".join(self._cell).split()))
            self._cell = None

    def handle_data(self, data: str) -> None:
        if self._cell is not None:
            self._cell.append(data)


def test_csv_and_page_carry_the_same_lines_and_the_page_links_each_row(week: Week) -> None:
    live_a_week(week)
    text = review(week, "csv")
    table = list(csv.DictReader(io.StringIO(text)))
    page = review(week, "html")
    parsed = Rows()
    parsed.feed(page)
    from_csv = [(row["section"], [" ".join(v.split()) for k, v in row.items()
                                  if k != "section"]) for row in table]
    assert from_csv == parsed.rows
    assert {s for s, _ in from_csv} >= {"reads", "full_id_reveal", "no_counter_action",
                                        "outside_office_hours", "many_residents_per_hour",
                                        "national_id_search", "export"}
    # what people typed is shown, never run
    assert "<script>" not in page and "&lt;script&gt;alert(1)&lt;/script&gt;" in page
    assert not re.search(r"(src|href)=\"https?:", page)
    # each audit row id links to the trail's view of exactly that row (the counter's page,
    # which a browser opens with an auditor's session; its query is the API route's)
    reveal = week.reads["tue reveal A"]
    link = f"/counter/audit/events?before_id={reveal + 1}&limit=1"
    assert link in parsed.links
    shown = week.auditor.ok("GET", "/audit/events",
                            **dict(p.split("=") for p in link.split("?")[1].split("&")))
    assert [row["id"] for row in shown] == [reveal]
    assert shown[0]["action"] == "cardholder.read"


def access_log(w: Week, who: str, api: Api | None = None, fmt: str = "json") -> Any:
    got = (api or w.clerk).get(f"/audit/cardholders/{w.residents[who]['id']}/access-log",
                               purpose="the resident asked at the counter", format=fmt)
    assert got.status_code == 200, got.text
    return got.json() if fmt == "json" else got.text


def test_access_log_lists_that_residents_reads_and_disclosures_only(week: Week) -> None:
    live_a_week(week)
    r = week.reads
    a = access_log(week, "A")
    assert [(x["audit_id"], x["kind"], x["by"], x["role"]) for x in a["entries"]] == [
        (r["tue A"], "read", "t.clerk", "clerk"),
        (r["tue reveal A"], "reveal", "t.supervisor", "supervisor"),
        (r["tue id search"], "national_id_search", "t.clerk", "clerk"),
        (r["tue name search"], "name_search", "t.clerk", "clerk"),
        (r["tue feed"], "export", "KMCCL 圖書館 (KMCCL)", "library"),
        (r["tue export"], "export", "KMCCL 圖書館 (KMCCL)", "library"),
        (r["wed A"], "read", "t.supervisor", "supervisor")]
    assert a["entries"][1]["purpose"] == "identity check at the desk"
    assert a["name"] == "陳甲" and a["person_id_masked"].endswith(
        week.residents["A"]["_person_id"][-3:])

    b = access_log(week, "B")
    assert [x["audit_id"] for x in b["entries"]] == [r["tue B"], r["wed B"]]
    d = access_log(week, "D", week.auditor)
    assert [x["audit_id"] for x in d["entries"]] == [r["wed D"], r["sat D"]]
    # a resident no one has read has an empty log
    quiet = f.holder(week.clerk, name="張戊")
    got = week.clerk.ok("GET", f"/audit/cardholders/{quiet['id']}/access-log",
                        purpose="the resident asked at the counter")
    assert got["entries"] == []


def test_the_printed_log_shows_no_full_id_and_producing_it_is_audited(week: Week) -> None:
    live_a_week(week)
    a = week.residents["A"]
    page = access_log(week, "A", fmt="html")
    assert a["_person_id"] not in page and a["_person_id"][1:] not in page
    assert "陳甲" in page and "民國" in page and "KMCCL 圖書館" in page
    assert "&lt;script&gt;" not in page  # B's purpose is B's, never in A's log
    with week.rt.sessions() as db:
        rows = db.scalars(select(AuditEvent).where(AuditEvent.action == "audit.access_log")
                          ).all()
    assert [(x.actor, x.target_id, x.purpose) for x in rows] == [
        ("t.clerk", str(a["id"]), "the resident asked at the counter")]
    # the next log lists this one: printing it showed the resident's name
    again = access_log(week, "A", week.supervisor)
    assert again["entries"][-1]["audit_id"] == rows[0].id
    assert again["entries"][-1]["kind"] == "read"


def test_access_log_refusals(week: Week) -> None:
    a = week.residents["A"]
    base = f"/audit/cardholders/{a['id']}/access-log"
    missing = week.clerk.get(base)
    assert missing.status_code == 422 and missing.json()["code"] == "invalid_input"
    short = week.clerk.get(base, purpose="x")
    assert short.status_code == 422 and short.json()["code"] == "invalid_input"
    bad = week.clerk.get(base, purpose="the resident asked", format="csv")
    assert bad.status_code == 422 and bad.json()["code"] == "invalid_input"
    unknown = week.clerk.get("/audit/cardholders/999999/access-log", purpose="asked at desk")
    assert unknown.status_code == 404 and unknown.json()["code"] == "not_found"
    # the auditor may produce one too (the role matrix test covers the other roles)
    assert week.auditor.get(base, purpose="ethics office check").status_code == 200


def test_the_commands_write_the_same_review_and_an_audited_log(week: Week, tmp_path) -> None:  # type: ignore[no-untyped-def]
    live_a_week(week)
    env = dict(os.environ, CARDSVC_DATABASE_URL=week.rt.settings.database_url,
               CARDSVC_SECRETS_FILE=str(week.rt.settings.secrets_file), COLUMNS="200",
               CARDSVC_REVIEW_RESIDENTS_PER_HOUR=str(PER_HOUR))
    cli = [sys.executable, "-m", "cardsvc.app.cli", "audit"]
    monday = week.clock.monday
    period = ["--from", monday.isoformat(), "--to", (monday + dt.timedelta(days=6)).isoformat()]
    out = tmp_path / "review.csv"
    done = subprocess.run([*cli, "review", *period, "--format", "csv", "--out", str(out)],
                          env=env, capture_output=True, text=True, cwd=tmp_path)
    assert done.returncode == 0, done.stdout + done.stderr
    assert out.read_text(encoding="utf-8-sig") == review(week, "csv")

    backwards = subprocess.run([*cli, "review", "--from", "2026-03-02", "--to", "2026-03-01"],
                               env=env, capture_output=True, text=True, cwd=tmp_path)
    assert backwards.returncode == 1 and "before it starts" in backwards.stdout

    a = week.residents["A"]
    page = tmp_path / "log.html"
    done = subprocess.run([*cli, "access-log", str(a["id"]), "--purpose",
                           "the resident wrote to the county", "--html", str(page)],
                          env=env, capture_output=True, text=True, cwd=tmp_path)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "KMCCL" in done.stdout and "陳甲" in page.read_text()
    assert a["_person_id"] not in done.stdout + page.read_text()
    with week.rt.sessions() as db:
        row = db.scalars(select(AuditEvent).where(AuditEvent.action == "audit.access_log")
                         ).one()
    assert row.actor.startswith("cli:") and row.actor_role == "operator"
    assert row.purpose == "the resident wrote to the county"


def test_a_night_shift_keeps_its_small_hours_on_the_evening_it_began(
        runtime_factory, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    """Office hours 22:00-06:00, Monday to Friday: Saturday 02:00 ends Friday's shift (not
    flagged); Saturday 23:00 and Monday 02:00 (Sunday's night) are off the office's hours."""
    from cardsvc.audit import review
    from cardsvc.context import Actor, Ctx
    from cardsvc.db import unit_of_work

    rt = runtime_factory(review_office_start=dt.time(22, 0), review_office_end=dt.time(6, 0))
    clock = Clock(next_monday())
    monkeypatch.setattr(audit_service, "utcnow", clock)
    night = Actor(None, "t.night", "clerk")
    ids: dict[str, int] = {}
    for name, day, hhmm in (("fri late", 4, "23:30"), ("sat small hours", 5, "02:00"),
                            ("sat late", 5, "23:00"), ("mon small hours", 7, "02:00"),
                            ("mon late", 7, "22:30")):
        clock.set(day, hhmm)
        with unit_of_work(rt.sessions) as db:
            audit_service.record_for(db, night, "cardholder.read", target_type="cardholder",
                                     target_id=1, purpose="night desk")
        ids[name] = last_row(rt, "cardholder.read")
    clock.set(8, "09:00")
    with unit_of_work(rt.sessions) as db:
        report = review.access_review(Ctx(db, rt.settings, rt.keys, Actor.system("tests")),
                                      clock.monday, clock.monday + dt.timedelta(days=8))
    off = {i for x in report.flags if x.flag == "outside_office_hours" for i in x.audit_ids}
    assert off == {ids["sat late"], ids["mon small hours"]}
