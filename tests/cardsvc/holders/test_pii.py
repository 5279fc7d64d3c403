"""Personal data: encrypted at rest, masked in answers, read only for a stated purpose."""

from __future__ import annotations

import pytest
from sqlalchemy import select

from cardsvc.audit.models import AuditEvent
from cardsvc.holders.models import Cardholder
from tests.support import factories as f
from tests.support.dump import all_database_text


def test_personal_data_never_in_plaintext_in_the_database(clerk, rt) -> None:  # type: ignore[no-untyped-def]
    pid = f.new_person_id(female=True)
    born = f.years_ago(70, days=123)
    h = clerk.ok("POST", "/cardholders", {
        "name": "金門居民", "person_id": pid, "birth_date": born.isoformat(),
        "township": "烈嶼鄉", "phone": "0987654321", "email": "secret.mail@example.org"},
        status=201)
    clerk.ok("GET", f"/cardholders/{h['id']}", purpose="counter service", reveal="true")
    clerk.ok("POST", "/cardholders/search", {"purpose": "counter lookup", "person_id": pid})
    dump = all_database_text(rt)
    assert "金門居民" in dump  # the dump does contain the data (the check can fail)
    for secret in (pid, pid.lower(), "0987654321", "secret.mail@example.org",
                   born.isoformat()):
        assert secret not in dump, f"{secret!r} stored in plaintext"


def test_answers_mask_the_national_id(clerk, auditor) -> None:  # type: ignore[no-untyped-def]
    h = f.holder(clerk)
    pid = h["_person_id"]
    assert h["person_id_masked"] == pid[:3] + "****" + pid[-3:]
    rec = clerk.ok("GET", f"/cardholders/{h['id']}", purpose="confirm identity")
    assert rec["person_id"] is None and rec["person_id_masked"].count("*") == 4
    full = clerk.ok("GET", f"/cardholders/{h['id']}", purpose="card application", reveal="true")
    assert full["person_id"] == pid
    masked = auditor.ok("GET", f"/cardholders/{h['id']}", purpose="ethics office audit")
    assert masked["person_id"] is None
    r = auditor.get(f"/cardholders/{h['id']}", purpose="ethics office audit", reveal="true")
    assert r.status_code == 403


def test_reading_a_record_needs_a_purpose_and_is_audited(clerk, rt) -> None:  # type: ignore[no-untyped-def]
    h = f.holder(clerk)
    assert clerk.get(f"/cardholders/{h['id']}").status_code == 422
    clerk.ok("GET", f"/cardholders/{h['id']}", purpose="replacement at the counter")
    with rt.sessions() as db:
        ev = db.scalars(select(AuditEvent).where(AuditEvent.action == "cardholder.read")).one()
    assert ev.actor == "t.clerk" and ev.purpose == "replacement at the counter"
    assert ev.target_id == str(h["id"])
    assert h["_person_id"] not in ev.detail


def test_lookup_by_national_id_uses_the_blind_index(clerk) -> None:  # type: ignore[no-untyped-def]
    h = f.holder(clerk)
    f.holder(clerk)
    found = clerk.ok("POST", "/cardholders/search",
                     {"purpose": "lookup", "person_id": h["_person_id"].lower()})
    assert [x["id"] for x in found] == [h["id"]]


def full_width(text: str) -> str:
    return "".join(chr(ord(c) + 0xFEE0) for c in text)


def test_a_national_id_is_read_the_same_however_it_is_typed(clerk) -> None:  # type: ignore[no-untyped-def]
    pid = f.new_person_id()
    body = {"name": "全形輸入", "person_id": full_width(pid.lower()), "birth_date": "1970-05-05",
            "township": "金沙鎮"}
    h = clerk.ok("POST", "/cardholders", body, status=201)
    assert h["person_id_masked"] == pid[:3] + "****" + pid[-3:]
    full = clerk.ok("GET", f"/cardholders/{h['id']}", purpose="check", reveal="true")
    assert full["person_id"] == pid
    for typed in (pid, pid.lower(), full_width(pid), full_width(pid.lower()), f" {pid} "):
        found = clerk.ok("POST", "/cardholders/search", {"purpose": "lookup", "person_id": typed})
        assert [x["id"] for x in found] == [h["id"]], typed
    again = clerk.post("/cardholders", dict(body, person_id=pid))
    assert again.status_code == 409 and again.json()["code"] == "duplicate_cardholder"


def test_a_search_by_a_mistyped_national_id_is_told_so(clerk) -> None:  # type: ignore[no-untyped-def]
    pid = f.new_person_id()
    wrong = pid[:-1] + str((int(pid[-1]) + 1) % 10)
    r = clerk.post("/cardholders/search", {"purpose": "lookup", "person_id": wrong})
    assert r.status_code == 422 and r.json()["field"] == "person_id"
    assert wrong not in r.text


def test_invalid_and_duplicate_national_ids(clerk) -> None:  # type: ignore[no-untyped-def]
    h = f.holder(clerk)
    body = {"name": "重複", "person_id": h["_person_id"], "birth_date": "1980-01-01",
            "township": "金城鎮"}
    r = clerk.post("/cardholders", body)
    assert r.status_code == 409 and r.json()["code"] == "duplicate_cardholder"
    bad = dict(body, person_id=h["_person_id"][:-1] + str((int(h["_person_id"][-1]) + 1) % 10))
    r = clerk.post("/cardholders", bad)
    assert r.status_code == 422 and r.json()["code"] == "invalid_input"
    assert bad["person_id"] not in r.text  # never echoed back


def test_tampered_ciphertext_does_not_decrypt(clerk, rt) -> None:  # type: ignore[no-untyped-def]
    from cardsvc.security.crypto import PiiCipher
    h = f.holder(clerk)
    with rt.sessions() as db:
        holder = db.get(Cardholder, h["id"])
        stored = holder.phone_enc
    pii: PiiCipher = rt.keys.pii
    assert pii.decrypt("phone", stored) == "0912-000-111"
    with pytest.raises(ValueError):
        pii.decrypt("email", stored)  # bound to its column
    kid, body = stored.split(":")
    flipped = body[:-4] + ("AAAA" if body[-4:] != "AAAA" else "BBBB")
    with pytest.raises(ValueError):
        pii.decrypt("phone", f"{kid}:{flipped}")


def test_key_rotation_reencrypts_and_old_key_can_go(clerk, rt, tmp_path) -> None:  # type: ignore[no-untyped-def]
    from cardsvc.holders.rekey import reencrypt_all
    from cardsvc.runtime import Runtime
    from cardsvc.security.secrets import Secrets, write_secrets
    h = f.holder(clerk)
    rotated = rt.keys.secrets.with_new_pii_key()
    path = tmp_path / "rotated.json"
    write_secrets(path, rotated)
    rt2 = Runtime.build(rt.settings.model_copy(update={"secrets_file": path}))
    assert reencrypt_all(rt2) >= 1
    only_new = Secrets(rotated.token_key, rotated.lookup_key,
                       {rotated.pii_active: rotated.pii_keys[rotated.pii_active]},
                       rotated.pii_active, rotated.kek, rotated.system_id)
    write_secrets(path, only_new)
    rt3 = Runtime.build(rt.settings.model_copy(update={"secrets_file": path}))
    with rt3.sessions() as db:
        holder = db.get(Cardholder, h["id"])
        assert rt3.keys.pii.decrypt("person_id", holder.person_id_enc) == h["_person_id"]
    rt2.close()
    rt3.close()


def test_secrets_file_is_private(secrets_file) -> None:  # type: ignore[no-untyped-def]
    assert secrets_file.stat().st_mode & 0o777 == 0o600


def test_search_by_name_finds_names_that_begin_so(clerk) -> None:  # type: ignore[no-untyped-def]
    """A surname or a whole name, as the counter types them; the index answers it."""
    import uuid
    tag = uuid.uuid4().hex[:6]  # names of this test only
    first = f.holder(clerk, name=f"陳{tag}城")
    second = f.holder(clerk, name=f"陳{tag}湖")
    middle = f.holder(clerk, name=f"李陳{tag}")

    def ids(name: str) -> list[int]:
        return [x["id"] for x in clerk.ok("POST", "/cardholders/search",
                                          {"purpose": "lookup", "name": name, "limit": 100})]

    assert sorted(ids(f"陳{tag}")) == sorted([first["id"], second["id"]])
    assert ids(f"陳{tag}城") == [first["id"]]
    assert middle["id"] not in ids(f"陳{tag}")  # a name is found by its beginning
    assert ids("%") == [] and ids("_") == []  # wildcards are plain characters
