"""Library links at the counter: consent, a random patron id per library that survives card
replacement, unlinking as easy as linking, and the feed each library reads."""

from __future__ import annotations

import re

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError

from cardsvc.audit.models import AuditEvent
from cardsvc.context import Actor
from cardsvc.db import unit_of_work
from cardsvc.holders import service as holders
from cardsvc.holders.rekey import reencrypt_all
from cardsvc.holders.schemas import CardholderUpdate
from cardsvc.runtime import Runtime
from cardsvc.security.secrets import write_secrets
from tests.support import factories as f
from tests.support import libraries as lib


def test_link_records_consent_and_gives_each_library_its_own_patron_id(  # type: ignore[no-untyped-def]
        app_client, admin, clerk, rt) -> None:
    county = lib.register(admin, "KMCCL", optional=["name", "email"])
    town = lib.register(admin, "JCLIB", optional=[])
    holder, card = lib.resident_with_card(clerk, name="陳金門", email="chen@example.org")
    a = lib.link(clerk, holder["id"], county, ["name"])
    b = lib.link(clerk, holder["id"], town)
    assert re.fullmatch(r"KMP[A-Z2-9]{12}", a["patron_id"]) and a["patron_id"] != b["patron_id"]
    assert card["card_number"] not in a["patron_id"]
    assert a["shared_fields"] == ["name"] and a["consented_by"] == "t.clerk"

    receipt = app_client.get(f"/library-links/{a['id']}/consent", headers=clerk.headers)
    assert receipt.status_code == 200 and receipt.headers["content-type"].startswith("text/html")
    assert "KMCCL" in receipt.text and a["patron_id"] in receipt.text and "姓名" in receipt.text

    first = lib.feed(app_client, county)
    assert [e["record"] for e in first] == [{
        "patron_id": a["patron_id"], "card_number": card["card_number"], "category": "AD",
        "branch": "KMCCL", "expires_on": card["expires_on"], "status": "valid",
        "name": "陳金門", "changed": sorted(first[0]["record"]["changed"])}]
    assert "name" not in lib.feed(app_client, town)[0]["record"]
    with rt.sessions() as db:
        rows = db.scalars(select(AuditEvent).where(AuditEvent.action == "library.link")).all()
        assert len(rows) == 2 and all(r.target_id == str(holder["id"]) for r in rows)


def test_refusals_name_what_is_wrong(admin, clerk) -> None:  # type: ignore[no-untyped-def]
    county = lib.register(admin, "KMCCL", optional=["name"])
    holder, _ = lib.resident_with_card(clerk)
    r = clerk.post(f"/cardholders/{holder['id']}/library-links",
                   {"library_id": county["id"], "shared_fields": ["phone"]})
    assert r.status_code == 422 and r.json()["code"] == "library_field_not_offered"
    lib.link(clerk, holder["id"], county)
    again = clerk.post(f"/cardholders/{holder['id']}/library-links",
                       {"library_id": county["id"]})
    assert again.status_code == 409 and again.json()["code"] == "library_already_linked"
    no_card = f.holder(clerk)
    r = clerk.post(f"/cardholders/{no_card['id']}/library-links", {"library_id": county["id"]})
    assert r.status_code == 409 and r.json()["code"] == "library_no_card"


def test_card_changes_reach_the_feed_once_and_a_top_up_does_not(  # type: ignore[no-untyped-def]
        app_client, admin, clerk, supervisor) -> None:
    county = lib.register(admin, "KMCCL")
    holder, card = lib.resident_with_card(clerk)
    link = lib.link(clerk, holder["id"], county)
    f.topup(clerk, card["id"], 500)
    clerk.ok("POST", f"/cards/{card['id']}/suspend", {"reason": "resident lost it"})
    clerk.ok("POST", f"/cards/{card['id']}/reinstate", {"reason": "found it again"})
    supervisor.ok("POST", f"/cards/{card['id']}/block", {"reason": "misuse under review"})
    supervisor.ok("POST", f"/cards/{card['id']}/unblock", {"reason": "review closed"})
    replaced = lib.replace(clerk, card["id"])
    events = lib.feed(app_client, county)
    assert [e["seq"] for e in events] == list(range(1, len(events) + 1))
    assert [e["record"]["status"] for e in events] == [
        "valid", "lost", "valid", "blocked", "valid", "valid"]
    last = events[-1]["record"]
    new_number = replaced["new_card"]["card_number"]
    assert last["card_number"] == new_number != card["card_number"]
    assert last["patron_id"] == link["patron_id"] and "card_number" in last["changed"]
    # A replay gives the same events; a later page gives nothing new.
    assert lib.feed(app_client, county) == events
    assert lib.feed(app_client, county, after=events[-1]["seq"]) == []


def test_a_name_correction_reaches_only_libraries_that_were_given_the_name(  # type: ignore[no-untyped-def]
        app_client, admin, clerk) -> None:
    county = lib.register(admin, "KMCCL")
    town = lib.register(admin, "JCLIB")
    holder, _ = lib.resident_with_card(clerk, name="陳金門")
    lib.link(clerk, holder["id"], county, ["name"])
    lib.link(clerk, holder["id"], town)
    clerk.ok("PATCH", f"/cardholders/{holder['id']}", {"name": "陳金鸞"})
    assert [e["record"].get("name") for e in lib.feed(app_client, county)] == ["陳金門", "陳金鸞"]
    assert len(lib.feed(app_client, town)) == 1


def test_unlinking_tells_the_library_the_patron_is_gone(  # type: ignore[no-untyped-def]
        app_client, admin, clerk) -> None:
    county = lib.register(admin, "KMCCL")
    holder, card = lib.resident_with_card(clerk)
    link = lib.link(clerk, holder["id"], county, ["name"])
    out = clerk.ok("POST", f"/library-links/{link['id']}/unlink")
    assert out["unlinked_by"] == "t.clerk"
    # Unlinking again is the same answer, and tells the library nothing more.
    assert clerk.ok("POST", f"/library-links/{link['id']}/unlink")["unlinked_at"]
    events = lib.feed(app_client, county)
    assert events[-1]["kind"] == "unlinked"
    assert events[-1]["record"] == {"patron_id": link["patron_id"], "status": "closed",
                                    "changed": ["patron_id", "status"]}
    # Later card changes reach it no more; a new link is a new patron.
    clerk.ok("POST", f"/cards/{card['id']}/suspend", {"reason": "resident lost it"})
    assert len(lib.feed(app_client, county)) == 2
    again = lib.link(clerk, holder["id"], county)
    assert again["patron_id"] != link["patron_id"]


def test_a_library_reads_only_with_its_own_key(app_client, admin) -> None:  # type: ignore[no-untyped-def]
    county = lib.register(admin, "KMCCL")
    town = lib.register(admin, "JCLIB")
    wrong = dict(county, feed_key=town["feed_key"])
    for headers in ({}, lib.basic(wrong), {"Authorization": "Bearer x"}):
        r = app_client.get("/library/v1/feed", headers=headers)
        assert r.status_code == 401 and r.json()["code"] == "library_auth_required"
    rotated = admin.ok("POST", f"/libraries/{county['id']}/rotate-credentials")
    assert app_client.get("/library/v1/feed", headers=lib.basic(county)).status_code == 401
    assert app_client.get("/library/v1/feed", headers=lib.basic(rotated)).status_code == 200


def test_a_personal_data_key_rotation_changes_no_record_a_library_holds(  # type: ignore[no-untyped-def]
        app_client, admin, clerk, rt, tmp_path) -> None:
    county = lib.register(admin, "KMCCL", optional=["name", "phone"])
    holder, _ = lib.resident_with_card(clerk)
    lib.link(clerk, holder["id"], county, ["name", "phone"])
    rotated = rt.keys.secrets.with_new_pii_key()
    path = tmp_path / "rotated.json"
    write_secrets(path, rotated)
    rt2 = Runtime.build(rt.settings.model_copy(update={"secrets_file": path}))
    try:
        assert reencrypt_all(rt2) >= 1
    finally:
        rt2.close()
    events = lib.feed(app_client, county)
    assert len(events) == 1 and events[0]["record"]["phone"] == "0912-000-111"


def test_a_savepoint_rolled_back_keeps_the_change_and_its_audit_row(  # type: ignore[no-untyped-def]
        app_client, admin, clerk, rt) -> None:
    """A retried insert inside the transaction (a savepoint rolled back) drops neither the
    libraries' view of the change nor the change's audit row."""
    county = lib.register(admin, "KMCCL", optional=["name"])
    holder, _ = lib.resident_with_card(clerk, name="陳金門")
    lib.link(clerk, holder["id"], county, ["name"])
    with unit_of_work(rt.sessions) as db:
        ctx = rt.ctx(db, Actor.system("tests"))
        holders.update(ctx, holder["id"], CardholderUpdate(name="陳金鸞"))
        db.flush()
        try:
            with db.begin_nested():
                db.add(AuditEvent(id=1, at=ctx.now, actor="x", actor_role="x", action="x",
                                  detail="{}", prev_hash="0", hash="0"))
                db.flush()
        except IntegrityError:
            pass  # the savepoint rolled back; the transaction goes on
    names = [e["record"].get("name") for e in lib.feed(app_client, county)]
    assert names == ["陳金門", "陳金鸞"]
    with rt.sessions() as db:
        assert db.scalar(select(AuditEvent.id).where(AuditEvent.action == "cardholder.update"))


def test_an_active_mobile_card_stays_the_card_while_a_physical_one_is_applied_for(  # type: ignore[no-untyped-def]
        app_client, admin, clerk) -> None:
    county = lib.register(admin, "KMCCL")
    _, mobile = f.mobile_card(clerk, "phone-library-1", 100)
    holder_id = mobile["cardholder_id"]
    lib.link(clerk, holder_id, county)
    clerk.ok("POST", "/cards/applications", {"cardholder_id": holder_id,
                                              "product": "general"}, status=201)
    last = lib.feed(app_client, county)[-1]["record"]
    assert (last["card_number"], last["status"]) == (mobile["card_number"], "valid")
