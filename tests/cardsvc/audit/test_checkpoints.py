"""Signed audit checkpoints (cardsvc/audit/checkpoints.py): someone with full rights to the
database who rewrites rows, chain and head consistently passes the chain check, but not the
checkpoints the ethics office took away; an auditor checks a checkpoint, and one row's
inclusion proof, with the public key and the files alone."""

from __future__ import annotations

import copy
import datetime as dt
import json
import os
import shutil
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import delete, insert, select, text

from cardsvc.audit import checkpoints, merkle
from cardsvc.audit import service as audit
from cardsvc.audit.checkpoints import VALID, Problem, verify_checkpoint, verify_proof
from cardsvc.audit.errors import ChainBroken, CheckpointContradicted, RowNotCovered
from cardsvc.audit.models import AuditEvent, AuditPending
from cardsvc.context import TAIPEI, Actor, Ctx
from cardsvc.db import unit_of_work
from cardsvc.runtime import Runtime, use_process_runtime
from cardsvc.security import signing
from cardsvc.security.crypto import Keyring
from cardsvc.security.secrets import Secrets
from tests.support.databases import disable_audit_guard

DAY1, DAY2, DAY3 = dt.date(2026, 3, 2), dt.date(2026, 3, 3), dt.date(2026, 3, 4)


def append(rt: Runtime, n: int, action: str = "test.work", **detail: Any) -> None:
    with unit_of_work(rt.sessions) as db:
        for i in range(n):
            audit.record_for(db, Actor.system("tests"), action, target_type="card",
                             target_id=i, detail={"i": i, **detail})


def checkpoint_on(rt: Runtime, day: dt.date, directory: Path, *, keys: Keyring | None = None,
                  at: dt.time = dt.time(23, 55)) -> checkpoints.Written:
    """The day's checkpoint, written as the beat task does at 23:55 Asia/Taipei."""
    when = dt.datetime.combine(day, at, tzinfo=TAIPEI)
    with unit_of_work(rt.sessions) as db:
        return checkpoints.write(Ctx(db, rt.settings, keys or rt.keys, Actor.system("tests"),
                                     now=when), directory)


def rows_now(rt: Runtime) -> int:
    """Rows already in the trail (the test database's first start wrote some)."""
    with rt.sessions() as db:
        return audit.count_events(db)


def public_keys(rt: Runtime) -> dict[str, str]:
    return signing.public_keys(rt.keys.secrets)


def load(path: Path) -> Any:
    return json.loads(path.read_text(encoding="utf-8"))



def rewrite(rt: Runtime, row_id: int, change: Callable[[str], str]) -> None:
    """Alter one row's detail, then re-chain every row after it and the head, as a script
    with full rights would: the chain check finds nothing."""
    disable_audit_guard(rt)
    with rt.sessions() as db:
        prev = db.scalar(select(AuditEvent.hash).where(AuditEvent.id == row_id - 1))
        rows = db.scalars(select(AuditEvent).where(AuditEvent.id >= row_id)
                          .order_by(AuditEvent.id)).all()
        updates = []
        prev = prev or audit.GENESIS
        for ev in rows:
            detail = change(ev.detail) if ev.id == row_id else ev.detail
            h = audit.row_hash(prev, ev.id, ev.at, ev.actor, ev.actor_role, ev.action,
                               ev.purpose, ev.target_type, ev.target_id, detail)
            updates.append({"id": ev.id, "detail": detail, "prev": prev, "hash": h})
            prev = h
    with rt.engine.begin() as conn:
        for u in updates:
            conn.execute(text("UPDATE audit_events SET detail = :detail, prev_hash = :prev, "
                              "hash = :hash WHERE id = :id"), u)
        conn.execute(text("UPDATE audit_head SET last_hash = :h WHERE id = 1"), {"h": prev})


def cli(args: list[str], cwd: Path, env: dict[str, str] | None = None
        ) -> subprocess.CompletedProcess[str]:
    full = {k: v for k, v in os.environ.items() if not k.startswith("CARDSVC_")}
    full.update(env or {}, COLUMNS="200")
    return subprocess.run([sys.executable, "-m", "cardsvc.app.cli", *args], cwd=cwd, env=full,
                          capture_output=True, text=True, timeout=300)


def db_env(rt: Runtime) -> dict[str, str]:
    return {"CARDSVC_DATABASE_URL": rt.settings.database_url,
            "CARDSVC_SECRETS_FILE": str(rt.settings.secrets_file)}


def test_a_checkpoint_verifies_with_the_public_key_alone_and_an_altered_field_does_not(
        rt: Runtime, tmp_path: Path) -> None:
    before = rows_now(rt)
    append(rt, 4)
    written = checkpoint_on(rt, DAY1, tmp_path)
    doc, keys = load(written.json_path), public_keys(rt)
    assert written.json_path.name == "audit-checkpoint-2026-03-02.json"
    assert verify_checkpoint(doc, keys) == VALID
    with rt.sessions() as db:
        trail = db.scalars(select(AuditEvent).order_by(AuditEvent.id)).all()
    n = doc["rows"]
    assert n == before + 4 and doc["date"] == "2026-03-02" and doc["written_at"] == \
        "2026-03-02T15:55:00+00:00"
    assert doc["head_hash"] == trail[n - 1].hash
    assert doc["merkle_root"] == merkle.root(bytes.fromhex(e.hash) for e in trail[:n]).hex()
    # Writing it is audited, after the rows it covers (the next checkpoint covers that row).
    assert len(trail) == n + 1 and trail[-1].action == "audit.checkpoint"
    assert json.loads(trail[-1].detail) == {"rows": n, "merkle_root": doc["merkle_root"],
                                            "key_id": doc["key_id"],
                                            "file": written.json_path.name}

    for field, value in (("rows", n - 1), ("date", "2026-03-03"),
                         ("written_at", "2026-03-03T15:55:00+00:00"),
                         ("head_hash", "0" * 64), ("merkle_root", trail[0].hash)):
        verdict = verify_checkpoint({**doc, field: value}, keys)
        assert verdict.problem is Problem.BAD_SIGNATURE, field
    assert verify_checkpoint({**doc, "key_id": "s99"}, keys).problem is Problem.UNKNOWN_KEY
    unsigned_note = verify_checkpoint({**doc, "note": "approved by the director"}, keys)
    assert unsigned_note.problem is Problem.MALFORMED and "note" in (unsigned_note.detail or "")
    unsigned = {k: v for k, v in doc.items() if k != "signature"}
    assert verify_checkpoint(unsigned, keys).problem is Problem.MALFORMED
    stranger = signing.public_keys(Secrets.generate())["s1"]
    assert verify_checkpoint(doc, {doc["key_id"]: stranger}).problem is Problem.BAD_SIGNATURE

    printed = written.text_path.read_text(encoding="utf-8")
    fingerprint = checkpoints.fingerprint(keys[doc["key_id"]])
    for expected in (checkpoints.grouped(doc["merkle_root"]), checkpoints.grouped(fingerprint),
                     checkpoints.grouped(doc["head_hash"]), doc["signature"], "2026-03-02",
                     f"Signing key id           : {doc['key_id']}",
                     f"verify-checkpoint {written.json_path.name} --key"):
        assert expected in printed


def test_a_consistent_rewrite_passes_the_chain_but_contradicts_the_checkpoints(
        rt: Runtime, tmp_path: Path) -> None:
    """THE test: three days' checkpoints, then a row of the second day rewritten with its
    chain and the head. The chain check passes; the checkpoints name the second day."""
    directory = tmp_path / "checkpoints"
    append(rt, 5, "card.issue")
    first = checkpoint_on(rt, DAY1, directory)
    append(rt, 5, "money.topup", amount=300)
    second = checkpoint_on(rt, DAY2, directory)
    append(rt, 3, "card.suspend")
    third = checkpoint_on(rt, DAY3, directory)
    keys = public_keys(rt)
    with rt.sessions() as db:
        target = db.scalar(select(AuditEvent.id).where(AuditEvent.action == "money.topup")
                           .order_by(AuditEvent.id).offset(2))
    assert target is not None and first.checkpoint.rows < target <= second.checkpoint.rows
    with rt.sessions() as db:  # before: an inclusion proof of the row to the second day
        proof = checkpoints.prove(db, target, second.checkpoint)
    assert verify_proof(proof, second.checkpoint.document(), keys) == VALID

    rewrite(rt, target, lambda detail: detail.replace("300", "30"))

    with rt.sessions() as db:
        chain = audit.verify_chain(db)
        # Given in no particular order: the first contradicted is the earliest day's.
        report = checkpoints.verify_against(
            db, [load(third.json_path), load(first.json_path), load(second.json_path)], keys)
        with pytest.raises(CheckpointContradicted):
            checkpoints.prove(db, target, second.checkpoint)
        earlier = checkpoints.prove(db, 2, first.checkpoint)  # the first day still stands
    assert chain.ok  # the chain alone cannot tell
    verdicts = {c.checkpoint.date: c.verdict for c in report.checks if c.checkpoint}
    assert verdicts["2026-03-02"] == VALID
    assert verdicts["2026-03-03"].problem is Problem.ROOT_DIFFERS
    assert verdicts["2026-03-04"].problem is Problem.ROOT_DIFFERS
    first_bad = report.first_contradicted
    assert first_bad is not None and first_bad.checkpoint is not None
    assert first_bad.checkpoint.date == "2026-03-03" and first_bad.index == 2
    assert verify_proof(earlier, first.checkpoint.document(), keys) == VALID
    # The row as the database now tells it, proved with the old path: refused.
    altered = copy.deepcopy(proof)
    altered["row"]["detail"] = altered["row"]["detail"].replace("300", "30")
    assert verify_proof(altered, second.checkpoint.document(), keys).problem is \
        Problem.ROW_ALTERED

    r = cli(["audit", "verify", "--checkpoints", str(directory)], tmp_path, db_env(rt))
    assert r.returncode == 2, r.stdout + r.stderr
    assert "audit chain intact" in r.stdout
    assert "the trail CONTRADICTS the checkpoint of 2026-03-03" in r.stdout, r.stdout
    assert "✓ 2026-03-02" in r.stdout and "Traceback" not in r.stderr


def test_rows_cut_from_the_end_contradict_the_checkpoint_that_held_them(
        rt: Runtime, tmp_path: Path) -> None:
    append(rt, 6)
    written = checkpoint_on(rt, DAY1, tmp_path)
    keep = written.checkpoint.rows - 3
    disable_audit_guard(rt)
    with rt.sessions() as db:
        last_kept = db.get(AuditEvent, keep)
        assert last_kept is not None
        kept_hash = last_kept.hash
    with rt.engine.begin() as conn:
        conn.execute(delete(AuditEvent).where(AuditEvent.id > keep))
        conn.execute(text("UPDATE audit_head SET last_id = :n, last_hash = :h WHERE id = 1"),
                     {"n": keep, "h": kept_hash})
    with rt.sessions() as db:
        assert audit.verify_chain(db).ok
        report = checkpoints.verify_against(db, [load(written.json_path)], public_keys(rt))
    check = report.first_contradicted
    assert check is not None and check.verdict.problem is Problem.FEWER_ROWS
    assert check.verdict.detail == (f"the checkpoint covers {keep + 3} rows but the trail holds "
                                    f"only {keep} rows: rows were removed")


def test_an_inclusion_proof_fails_for_an_altered_row_a_changed_path_or_another_checkpoint(
        rt: Runtime, tmp_path: Path) -> None:
    append(rt, 9)
    first = checkpoint_on(rt, DAY1, tmp_path)
    append(rt, 4)
    second = checkpoint_on(rt, DAY2, tmp_path)
    keys, doc1, doc2 = public_keys(rt), first.checkpoint.document(), second.checkpoint.document()
    with rt.sessions() as db:
        every = [checkpoints.prove(db, row, first.checkpoint)
                 for row in range(1, first.checkpoint.rows + 1)]
        later = checkpoints.prove(db, 7, second.checkpoint)
        with pytest.raises(RowNotCovered):
            checkpoints.prove(db, first.checkpoint.rows + 1, first.checkpoint)
    assert all(verify_proof(p, doc1, keys) == VALID for p in every)
    assert verify_proof(later, doc2, keys) == VALID
    proof = every[6]
    assert proof["row"]["id"] == 7 and proof["tree_size"] == first.checkpoint.rows

    assert verify_proof(proof, doc2, keys).problem is Problem.OTHER_CHECKPOINT
    assert verify_proof(later, doc1, keys).problem is Problem.OTHER_CHECKPOINT
    altered = copy.deepcopy(proof)
    altered["row"]["actor"] = "someone else"
    assert verify_proof(altered, doc1, keys).problem is Problem.ROW_ALTERED
    rehashed = copy.deepcopy(altered)  # the forger rehashes the row: it is not in the tree
    row = rehashed["row"]
    row["hash"] = audit.row_hash(row["prev_hash"], row["id"], dt.datetime.fromisoformat(
        row["at"]), row["actor"], row["actor_role"], row["action"], row["purpose"],
        row["target_type"], row["target_id"], row["detail"])
    assert verify_proof(rehashed, doc1, keys).problem is Problem.NOT_IN_TREE
    moved = copy.deepcopy(proof)
    moved["audit_path"][0] = every[0]["row"]["hash"]
    assert verify_proof(moved, doc1, keys).problem is Problem.NOT_IN_TREE
    forged = {**doc1, "rows": 8}
    assert verify_proof(proof, forged, keys).problem is Problem.BAD_SIGNATURE
    assert verify_proof({"kind": "something else"}, doc1, keys).problem is Problem.MALFORMED


def test_a_rotated_key_leaves_old_checkpoints_verifiable(rt: Runtime, tmp_path: Path) -> None:
    append(rt, 3)
    old = checkpoint_on(rt, DAY1, tmp_path)
    rotated = rt.keys.secrets.with_new_signing_key()
    append(rt, 2)
    new = checkpoint_on(rt, DAY2, tmp_path, keys=Keyring.from_secrets(rotated, 3600))
    assert new.checkpoint.key_id == rotated.signing_active != old.checkpoint.key_id
    office_before = public_keys(rt)  # the key file the office kept before the rotation
    office_after = signing.public_keys(rotated)  # the one it fetched after
    old_doc, new_doc = load(old.json_path), load(new.json_path)
    assert verify_checkpoint(old_doc, office_after) == VALID
    assert verify_checkpoint(new_doc, office_after) == VALID
    assert verify_checkpoint(old_doc, office_before) == VALID
    assert verify_checkpoint(new_doc, office_before).problem is Problem.UNKNOWN_KEY
    with rt.sessions() as db:
        report = checkpoints.verify_against(db, [old_doc, new_doc], office_after)
    assert report.ok and report.rows_read == new.checkpoint.rows
    fingerprint = checkpoints.fingerprint(office_after[rotated.signing_active])
    assert checkpoints.grouped(fingerprint) in new.text_path.read_text(encoding="utf-8")


def test_a_second_checkpoint_the_same_day_never_replaces_the_first(
        rt: Runtime, tmp_path: Path) -> None:
    first = checkpoint_on(rt, DAY1, tmp_path, at=dt.time(9, 0))
    kept = first.json_path.read_text(encoding="utf-8")
    append(rt, 2)
    second = checkpoint_on(rt, DAY1, tmp_path, at=dt.time(23, 55))
    third = checkpoint_on(rt, DAY1, tmp_path, at=dt.time(23, 55))
    assert [w.json_path.name for w in (first, second, third)] == [
        "audit-checkpoint-2026-03-02.json", "audit-checkpoint-2026-03-02-235500.json",
        "audit-checkpoint-2026-03-02-235500-2.json"]
    assert first.json_path.read_text(encoding="utf-8") == kept
    assert second.text_path.name == "audit-checkpoint-2026-03-02-235500.txt"
    assert first.checkpoint.rows < second.checkpoint.rows < third.checkpoint.rows
    with rt.sessions() as db:
        report = checkpoints.verify_against(
            db, [load(w.json_path) for w in (first, second, third)], public_keys(rt))
    assert report.ok


def test_pending_rows_are_sealed_into_the_checkpoint(rt: Runtime, tmp_path: Path) -> None:
    append(rt, 2)
    at = dt.datetime(2026, 3, 2, 4, 5, 6, tzinfo=dt.UTC)
    with unit_of_work(rt.sessions) as db:
        db.execute(insert(AuditPending), [
            {"at": at, "actor": "terminal:1", "actor_role": "terminal",
             "action": "money.purchase", "target_type": "transfer", "target_id": str(i),
             "detail": audit.canonical({"i": i})} for i in range(3)])
    written = checkpoint_on(rt, DAY1, tmp_path)
    with rt.sessions() as db:
        assert audit.pending_count(db) == 0
        covered = db.scalars(select(AuditEvent.action).where(
            AuditEvent.id <= written.checkpoint.rows).order_by(AuditEvent.id)).all()
    assert covered[-3:] == ["money.purchase"] * 3


def test_a_broken_chain_is_not_signed(rt: Runtime, tmp_path: Path) -> None:
    append(rt, 4)
    disable_audit_guard(rt)
    with rt.engine.begin() as conn:
        conn.execute(text("UPDATE audit_events SET actor = 'nobody' WHERE id = 2"))
    with pytest.raises(ChainBroken) as refused:
        checkpoint_on(rt, DAY1, tmp_path / "out")
    assert refused.value.code == "audit_chain_broken" and refused.value.extra == {
        "first_bad_id": 2}
    assert not (tmp_path / "out").exists() or list((tmp_path / "out").iterdir()) == []
    with rt.sessions() as db:  # and the refusal left no audit row claiming a checkpoint
        assert db.scalar(select(AuditEvent.id).where(
            AuditEvent.action == "audit.checkpoint")) is None


def test_the_daily_task_writes_the_days_checkpoint(runtime_factory, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    from cardsvc.app.worker import make_app
    from cardsvc.audit import tasks

    rt = runtime_factory(audit_checkpoint_dir=tmp_path / "checkpoints")
    append(rt, 3)
    use_process_runtime(rt)
    try:
        name = tasks.write_checkpoint()
    finally:
        use_process_runtime(None)
    today = dt.datetime.now(TAIPEI).date()
    assert name in (f"audit-checkpoint-{today}.json", f"audit-checkpoint-"
                    f"{today - dt.timedelta(days=1)}.json")  # a run across midnight
    assert verify_checkpoint(load(tmp_path / "checkpoints" / name), public_keys(rt)) == VALID
    entry = make_app(rt.settings).conf.beat_schedule["audit-checkpoint"]
    assert entry["task"] == "cardsvc.audit.tasks.write_checkpoint"


def test_the_office_checks_checkpoint_and_proof_with_nothing_but_the_files(
        rt: Runtime, tmp_path: Path) -> None:
    """The CLI end to end: the host writes the checkpoint, the key file and a proof; the
    office checks them in a directory holding nothing else, without the database or the
    secrets file; altered, missing and malformed files get a clear answer."""
    append(rt, 6)
    host = tmp_path / "host"
    host.mkdir()
    made = cli(["audit", "checkpoint", "--out", "checkpoints"], host, db_env(rt))
    assert made.returncode == 0, made.stdout + made.stderr
    (checkpoint,) = (host / "checkpoints").glob("audit-checkpoint-*.json")
    rows = load(checkpoint)["rows"]
    assert rows >= 6 and f"rows 1..{rows}, Merkle root" in made.stdout
    proved = cli(["audit", "prove", "4", "--checkpoint", str(checkpoint), "--out", "proof.json"],
                 host, db_env(rt))
    assert proved.returncode == 0, proved.stdout + proved.stderr
    office = tmp_path / "office"
    office.mkdir()
    key_file = cli(["audit", "public-key", "--out", str(office / "keys.json")], office,
                   {"CARDSVC_SECRETS_FILE": str(rt.settings.secrets_file)})
    assert key_file.returncode == 0 and "fingerprint" in key_file.stdout, key_file.stderr
    shutil.copy(checkpoint, office / "checkpoint.json")
    shutil.copy(host / "proof.json", office / "proof.json")
    files = sorted(p.name for p in office.iterdir())
    assert files == ["checkpoint.json", "keys.json", "proof.json"]  # no database was opened

    ok = cli(["audit", "verify-checkpoint", "checkpoint.json", "--key", "keys.json", "--proof",
              "proof.json"], office)
    assert ok.returncode == 0, ok.stdout + ok.stderr
    assert "checkpoint valid: business day" in ok.stdout and f"rows 1..{rows}" in ok.stdout
    assert "proof valid: row 4" in ok.stdout
    assert sorted(p.name for p in office.iterdir()) == files

    proof = load(office / "proof.json")
    proof["row"]["target_id"] = "someone else's card"
    (office / "proof.json").write_text(json.dumps(proof), encoding="utf-8")
    bad = cli(["audit", "verify-checkpoint", "checkpoint.json", "--key", "keys.json",
               "--proof", "proof.json"], office)
    assert bad.returncode == 2 and "proof REFUSED" in bad.stdout, bad.stdout
    (office / "garbled.json").write_text("{not json", encoding="utf-8")
    for args, message in ((["missing.json", "--key", "keys.json"], "cannot read the checkpoint"),
                          (["checkpoint.json", "--key", "garbled.json"], "is not JSON")):
        r = cli(["audit", "verify-checkpoint", *args], office)
        assert r.returncode == 1 and message in r.stdout, (args, r.stdout, r.stderr)
        assert "Traceback" not in r.stderr
    missing_dir = cli(["audit", "verify", "--checkpoints", "nowhere"], host, db_env(rt))
    assert missing_dir.returncode == 1 and "not a directory of checkpoints" in missing_dir.stdout
