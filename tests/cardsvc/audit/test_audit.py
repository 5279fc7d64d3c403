"""The audit trail: every money movement and card change is there, and tampering is found."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest
from sqlalchemy import func, select, text
from sqlalchemy.exc import DBAPIError

from cardsvc.audit import service as audit
from cardsvc.audit.models import AuditEvent
from tests.support import factories as f
from tests.support.databases import disable_audit_guard


def busy_day(clerk) -> None:  # type: ignore[no-untyped-def]
    card = f.active_card(clerk, f.holder(clerk)["id"])
    f.topup(clerk, card["id"], 300)
    clerk.ok("POST", f"/cards/{card['id']}/suspend", {"kind": "lost", "reason": "lost"})



def test_money_and_card_changes_are_audited(clerk, rt) -> None:  # type: ignore[no-untyped-def]
    busy_day(clerk)
    with rt.sessions() as db:
        actions = db.scalars(select(AuditEvent.action).order_by(AuditEvent.id)).all()
        r = audit.verify_chain(db)
    for needed in ("cardholder.register", "card.apply", "card.issue", "card.activate",
                   "money.topup", "card.suspend"):
        assert needed in actions
    assert r.ok and r.rows_checked == len(actions)


def test_audit_rows_cannot_be_updated_or_deleted(clerk, rt) -> None:  # type: ignore[no-untyped-def]
    busy_day(clerk)
    for stmt in ("UPDATE audit_events SET actor = 'someone else'", "DELETE FROM audit_events"):
        with pytest.raises(DBAPIError, match="immutable"), rt.engine.begin() as conn:
            conn.execute(text(stmt))


def test_an_altered_row_is_found(clerk, auditor, rt) -> None:  # type: ignore[no-untyped-def]
    busy_day(clerk)
    disable_audit_guard(rt)
    with rt.sessions() as db:
        target = db.scalar(select(AuditEvent.id).where(AuditEvent.action == "money.topup"))
    with rt.engine.begin() as conn:
        conn.execute(text("UPDATE audit_events SET detail = REPLACE(detail, '300', '30') "
                          "WHERE id = :id"), {"id": target})
    v = auditor.ok("GET", "/audit/verify")
    assert v["ok"] is False and v["first_bad_id"] == target
    assert v["rows_checked"] == target - 1


def test_a_removed_row_and_a_cut_tail_are_found(clerk, rt) -> None:  # type: ignore[no-untyped-def]
    busy_day(clerk)
    disable_audit_guard(rt)
    with rt.sessions() as db:
        last = db.scalar(select(func.max(AuditEvent.id)))
    with rt.engine.begin() as conn:
        conn.execute(text("DELETE FROM audit_events WHERE id = :id"), {"id": last})
    with rt.sessions() as db:
        r = audit.verify_chain(db)
    assert not r.ok and "removed" in (r.problem or "")
    with rt.engine.begin() as conn:
        conn.execute(text("DELETE FROM audit_events WHERE id = 3"))
    with rt.sessions() as db:
        r = audit.verify_chain(db)
    assert not r.ok and r.first_bad_id == 3


def test_cli_audit_verify_names_the_broken_row(clerk, rt, tmp_path) -> None:  # type: ignore[no-untyped-def]
    busy_day(clerk)
    env = dict(os.environ, CARDSVC_DATABASE_URL=rt.settings.database_url,
               CARDSVC_SECRETS_FILE=str(rt.settings.secrets_file), COLUMNS="200")
    cmd = [sys.executable, "-m", "cardsvc.app.cli", "audit", "verify"]
    ok = subprocess.run(cmd, env=env, capture_output=True, text=True, cwd=tmp_path)
    assert ok.returncode == 0 and "intact" in ok.stdout, ok.stdout + ok.stderr
    disable_audit_guard(rt)
    with rt.engine.begin() as conn:
        conn.execute(text("UPDATE audit_events SET actor = 'nobody' WHERE id = 4"))
    bad = subprocess.run(cmd, env=env, capture_output=True, text=True, cwd=tmp_path)
    assert bad.returncode == 2 and "BROKEN at row 4" in bad.stdout, bad.stdout


def test_a_rolled_back_request_leaves_no_audit_row(clerk, rt) -> None:  # type: ignore[no-untyped-def]
    card = f.active_card(clerk, f.holder(clerk)["id"])
    with rt.sessions() as db:
        before = audit.count_events(db)
    r = clerk.post(f"/cards/{card['id']}/charges", {"amount": 5, "description": "fee"},
                   key=f.key())
    assert r.status_code == 409
    with rt.sessions() as db:
        assert audit.count_events(db) == before


def test_verify_while_others_append_is_not_a_false_alarm(clerk, rt) -> None:  # type: ignore[no-untyped-def]
    import threading

    from cardsvc.context import Actor
    from cardsvc.db import unit_of_work
    busy_day(clerk)
    stop = threading.Event()

    def writer() -> None:
        while not stop.is_set():
            with unit_of_work(rt.sessions) as db:
                audit.record_for(db, Actor.system("writer"), "test.append")

    threads = [threading.Thread(target=writer) for _ in range(3)]
    for t in threads:
        t.start()
    try:
        for _ in range(15):
            with rt.sessions() as db:
                r = audit.verify_chain(db)
            assert r.ok, r
    finally:
        stop.set()
        for t in threads:
            t.join()


def test_pending_rows_are_sealed_in_order_with_their_content_intact(clerk, auditor, rt) -> None:  # type: ignore[no-untyped-def]
    """What the POS purchase path leaves unchained is chained oldest first, byte for byte,
    whatever the text holds (quotes, backslashes, line breaks, Chinese, empty and absent
    fields), and the chain then verifies."""
    import datetime as dt

    from sqlalchemy import insert

    from cardsvc.audit.models import AuditPending
    from cardsvc.db import unit_of_work
    busy_day(clerk)
    at = dt.datetime(2026, 11, 29, 4, 5, 6, 789012, tzinfo=dt.UTC)
    odd = ['"quoted" \\ back', "line\nbreak\ttab", "金門縣民卡", "", "\u2028 \x01"]
    rows = [{"at": at + dt.timedelta(microseconds=i), "actor": f"terminal:{i}",
             "actor_role": "terminal", "action": "money.purchase",
             "purpose": None if i % 2 else odd[i % len(odd)],
             "target_type": "transfer", "target_id": None if i % 3 == 0 else str(i),
             "detail": audit.canonical({"i": i, "note": odd[i % len(odd)]})}
            for i in range(120)]
    with unit_of_work(rt.sessions) as db:
        before = audit.count_events(db)
        db.execute(insert(AuditPending), rows)
    with unit_of_work(rt.sessions) as db:
        assert audit.pending_count(db) == 120
        assert audit.seal(db, limit=100) == 100  # a batch at a time, oldest first
        assert audit.seal_pending(db) == 20
    with rt.sessions() as db:
        sealed = db.scalars(select(AuditEvent).where(AuditEvent.id > before)
                            .order_by(AuditEvent.id)).all()
        assert audit.pending_count(db) == 0
    got = [{"at": e.at, "actor": e.actor, "actor_role": e.actor_role, "action": e.action,
            "purpose": e.purpose, "target_type": e.target_type, "target_id": e.target_id,
            "detail": e.detail} for e in sealed]
    assert got == rows
    v = auditor.ok("GET", "/audit/verify")
    assert v["ok"] and v["rows_checked"] == before + 120, v
