"""What a library receives in bulk: the Koha patron import (matched on the patron id, so a
replaced card's number overwrites the old one), the JSON export, the difference report, and
never a national ID, birth date or chip UID anywhere."""

from __future__ import annotations

import csv
import datetime as dt
import io
import threading

import pytest
from sqlalchemy import select

from cardsvc.cards import schemas as cs
from cardsvc.cards import service as cards
from cardsvc.cards.models import Card, Product
from cardsvc.context import Actor, Ctx
from cardsvc.db import unit_of_work
from cardsvc.holders import schemas as hs
from cardsvc.holders import service as holders
from cardsvc.library import schemas as ls
from cardsvc.library import service
from cardsvc.library.models import Ils, LibraryEvent
from cardsvc.runtime import Runtime
from tests.support import factories as f
from tests.support import libraries as lib


def koha_import(table: dict[str, dict[str, str]], csv_text: str) -> None:
    """What Koha's patron import does with matchpoint = the KMPATRON attribute: a row whose
    attribute matches a patron overwrites that patron; any other row is a new patron."""
    for row in csv.DictReader(io.StringIO(csv_text)):
        code, _, patron_id = row["patron_attributes"].partition(":")
        assert code == "KMPATRON"
        table[patron_id] = row


def export_csv(table: dict[str, dict[str, str]]) -> bytes:
    out = io.StringIO()
    fields = ["cardnumber", "surname", "firstname", "categorycode", "branchcode", "dateexpiry",
              "email", "phone", "patron_attributes"]
    w = csv.DictWriter(out, fieldnames=fields)
    w.writeheader()
    for row in table.values():
        w.writerow({k: row.get(k, "") for k in fields})
    return out.getvalue().encode()


def test_koha_csv_round_trip_after_a_replacement(app_client, admin, clerk) -> None:  # type: ignore[no-untyped-def]
    county = lib.register(admin, "KMCCL", optional=["name", "email"])
    holder, card = lib.resident_with_card(clerk, name="陳金門", email="chen@example.org")
    other, _ = lib.resident_with_card(clerk)
    link = lib.link(clerk, holder["id"], county, ["name", "email"])
    lib.link(clerk, other["id"], county)
    koha: dict[str, dict[str, str]] = {}
    first = app_client.get("/library/v1/patrons.csv", headers=lib.basic(county))
    assert first.status_code == 200 and first.headers["content-type"].startswith("text/csv")
    koha_import(koha, first.text)
    assert koha[link["patron_id"]]["cardnumber"] == card["card_number"]
    assert koha[link["patron_id"]]["surname"] == "陳金門"
    assert koha[link["patron_id"]]["email"] == "chen@example.org"

    new = lib.replace(clerk, card["id"])["new_card"]
    stale = export_csv(koha)
    report = app_client.post("/library/v1/reconcile", content=stale,
                             headers={**lib.basic(county), "Content-Type": "text/csv"}).json()
    assert report["compared"] == 2
    assert [(d["patron_id"], d["problem"]) for d in report["differences"]] == [
        (link["patron_id"], "differs: cardnumber")]
    assert report["differences"][0]["ours"] == {"cardnumber": new["card_number"]}

    koha_import(koha, app_client.get("/library/v1/patrons.csv", headers=lib.basic(county)).text)
    assert len(koha) == 2 and koha[link["patron_id"]]["cardnumber"] == new["card_number"]
    again = app_client.post("/library/v1/reconcile", content=export_csv(koha),
                            headers={**lib.basic(county), "Content-Type": "text/csv"}).json()
    assert again["differences"] == []
    # The JSON export says the same as the feed's records.
    records = app_client.get("/library/v1/patrons.json", headers=lib.basic(county)).json()
    assert {r["patron_id"]: r["card_number"] for r in records}[link["patron_id"]] == \
        new["card_number"]


def test_a_library_export_that_is_not_csv_is_refused(app_client, admin) -> None:  # type: ignore[no-untyped-def]
    county = lib.register(admin, "KMCCL")
    # Not UTF-8; no cardnumber column; a field past the CSV reader's size limit.
    for body in (b"\xff\xfe\x00garbage", b"no,header,here\n1,2,3\n",
                 b"cardnumber\n" + b"9" * 200_000 + b"\n"):
        r = app_client.post("/library/v1/reconcile", content=body,
                            headers={**lib.basic(county), "Content-Type": "text/csv"})
        assert r.status_code == 422 and r.json()["code"] == "invalid_input"


def test_nothing_a_library_receives_holds_a_national_id_birth_date_or_chip_uid(  # type: ignore[no-untyped-def]
        app_client, admin, clerk, rt) -> None:
    county = lib.register(admin, "KMCCL", optional=["name", "phone", "email", "township"])
    holder, card = lib.resident_with_card(clerk, email="chen@example.org",
                                          born=dt.date(1958, 3, 2))
    lib.link(clerk, holder["id"], county, ["name", "phone", "email", "township"])
    clerk.ok("POST", f"/cards/{card['id']}/suspend", {"reason": "resident lost it"})
    lib.replace(clerk, card["id"])
    with rt.sessions() as db:
        uids = [c for c in db.scalars(select(Card.chip_uid)) if c]
        events = " ".join(db.scalars(select(LibraryEvent.record)))
    assert len(uids) == 2
    received = [events, app_client.get("/library/v1/feed", headers=lib.basic(county)).text,
                app_client.get("/library/v1/patrons.csv", headers=lib.basic(county)).text,
                app_client.get("/library/v1/patrons.json", headers=lib.basic(county)).text]
    for text in received:
        assert holder["_person_id"] not in text
        for uid in uids:
            assert uid.lower() not in text.lower()
        for form in ("1958-03-02", "19580302", "1958/03/02", "047/03/02", "0470302"):
            assert form not in text
    assert "chen@example.org" in received[1]  # what the resident agreed to does go


def _resident(ctx: Ctx) -> int:
    h = holders.register(ctx, hs.CardholderCreate(
        name="並行測試", person_id=f.new_person_id(), birth_date=f.years_ago(30),
        township="金湖鎮"))
    card = cards.apply(ctx, cs.CardApplication(cardholder_id=h.id, product=Product.GENERAL))
    cards.issue(ctx, card.id, cs.IssueRequest(chip_uid=f.uid()))
    cards.simple_transition(ctx, card.id, "activate", "test")
    return card.id


@pytest.mark.postgres
def test_sequences_have_no_gaps_under_concurrent_card_changes(pg_runtime: Runtime) -> None:
    """Eight counters change eight linked residents' cards at once: each library's events are
    numbered 1..N with no gap and no repeat, one per change."""
    rt = pg_runtime
    actor = Actor.system("tests")
    with unit_of_work(rt.sessions) as db:
        ctx = rt.ctx(db, actor)
        libs = [service.create_library(ctx, ls.LibraryCreate(
            code=code, name=code, ils=Ils.KOHA, categories=lib.CATEGORIES, home_branch=code))
            for code in ("KMCCL", "JCLIB")]
        card_ids = []
        for _ in range(8):
            card_id = _resident(ctx)
            holder_id = cards.get(ctx, card_id).cardholder_id
            for library in libs:
                service.link(ctx, holder_id, ls.LinkCreate(library_id=library.id))
            card_ids.append(card_id)
    barrier = threading.Barrier(len(card_ids))
    errors: list[str] = []

    def churn(card_id: int) -> None:
        barrier.wait()
        for _ in range(3):
            for action in ("suspend", "reinstate"):
                try:
                    with unit_of_work(rt.sessions) as db:
                        cards.simple_transition(rt.ctx(db, actor), card_id, action, "churn")
                except Exception as exc:
                    errors.append(repr(exc))

    threads = [threading.Thread(target=churn, args=(c,)) for c in card_ids]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    for library in libs:
        with rt.sessions() as db:
            seqs = list(db.scalars(select(LibraryEvent.seq).where(
                LibraryEvent.library_id == library.id).order_by(LibraryEvent.seq)))
        assert seqs == list(range(1, 8 + 8 * 6 + 1))
