"""Staff login: hashed passwords, short-lived tokens, throttling and auditing of failures."""

from __future__ import annotations

import time

from sqlalchemy import select

from cardsvc.audit.models import AuditEvent
from cardsvc.security.crypto import TokenSigner
from cardsvc.staff.models import Staff
from tests.support.api import PASSWORD, Api


def login(client, username: str, password: str):  # type: ignore[no-untyped-def]
    return client.post("/auth/login", json={"username": username, "password": password})


def test_login_gives_a_working_short_lived_token(app_client, rt) -> None:  # type: ignore[no-untyped-def]
    r = login(app_client, "t.clerk", PASSWORD)
    assert r.status_code == 200
    body = r.json()
    assert body["role"] == "clerk" and body["token_type"] == "bearer"
    me = Api(app_client, body["access_token"]).get("/auth/me")
    assert me.status_code == 200 and me.json()["username"] == "t.clerk"
    with rt.sessions() as db:
        stored = db.scalar(select(Staff.password_hash).where(Staff.username == "t.clerk"))
    assert stored.startswith("scrypt$") and PASSWORD not in stored


def test_expired_and_tampered_tokens_are_refused(app_client, rt) -> None:  # type: ignore[no-untyped-def]
    with rt.sessions() as db:
        staff_id = db.scalar(select(Staff.id).where(Staff.username == "t.clerk"))
    signer = TokenSigner(rt.keys.secrets.token_key, 60)
    old, _ = signer.issue(staff_id, now=time.time() - 3600)
    r = Api(app_client, old).get("/auth/me")
    assert r.status_code == 401 and "expired" in r.json()["detail"]
    good, _ = signer.issue(staff_id)
    body, sig = good.split(".")
    forged = TokenSigner(b"x" * 32, 60).issue(staff_id)[0]
    for token in (body + "." + sig[:-2] + "AA", forged):
        assert Api(app_client, token).get("/auth/me").status_code == 401


def test_failed_logins_are_throttled_and_audited(app_client, rt) -> None:  # type: ignore[no-untyped-def]
    for _ in range(rt.settings.login_max_failures):
        r = login(app_client, "t.auditor", "wrong-password!")
        assert r.status_code == 401 and r.json()["code"] == "invalid_credentials"
    r = login(app_client, "t.auditor", PASSWORD)  # even the right password waits now
    assert r.status_code == 429 and r.json()["code"] == "login_throttled"
    assert int(r.headers["Retry-After"]) > 0
    with rt.sessions() as db:
        actions = db.scalars(select(AuditEvent.action).where(AuditEvent.target_id == "t.auditor")
                             ).all()
    assert actions.count("auth.login_failed") == rt.settings.login_max_failures
    assert "auth.login_throttled" in actions


def client_at(rt, address: str):  # type: ignore[no-untyped-def]
    """The API as seen from another machine on the network."""
    from fastapi.testclient import TestClient

    from cardsvc.app.http import create_app
    return TestClient(create_app(rt), client=(address, 40000), raise_server_exceptions=False)


def test_a_stranger_cannot_lock_a_clerk_out_of_the_counter(app_client, rt) -> None:  # type: ignore[no-untyped-def]
    with client_at(rt, "198.51.100.7") as stranger:
        for _ in range(rt.settings.login_max_failures + 3):
            login(stranger, "t.clerk", "wrong-password!")
        r = login(stranger, "t.clerk", PASSWORD)
        assert r.status_code == 429 and int(r.headers["Retry-After"]) > 0
    # The clerk at the counter is not affected.
    r = login(app_client, "t.clerk", PASSWORD)
    assert r.status_code == 200, r.text


def test_the_first_delay_is_short_and_grows(rt) -> None:  # type: ignore[no-untyped-def]
    waits = []
    with client_at(rt, "198.51.100.8") as stranger:
        for _ in range(rt.settings.login_max_failures):
            assert login(stranger, "t.auditor", "wrong-password!").status_code == 401
        waits.append(int(login(stranger, "t.auditor", PASSWORD).headers["Retry-After"]))
        with rt.sessions.begin() as db:  # the lock has passed
            from sqlalchemy import update

            from cardsvc.staff.models import LoginThrottle
            db.execute(update(LoginThrottle).values(locked_until=None))
        assert login(stranger, "t.auditor", "wrong-again!!").status_code == 401
        waits.append(int(login(stranger, "t.auditor", PASSWORD).headers["Retry-After"]))
        with rt.sessions.begin() as db:
            db.execute(update(LoginThrottle).values(locked_until=None))
        assert login(stranger, "t.auditor", PASSWORD).status_code == 200
    assert waits[0] <= rt.settings.login_lock_seconds + 1
    assert waits[1] > waits[0]


def test_a_source_trying_many_accounts_is_slowed_down(app_client, rt) -> None:  # type: ignore[no-untyped-def]
    with client_at(rt, "203.0.113.9") as sprayer:
        for i in range(rt.settings.login_source_max_failures):
            assert login(sprayer, f"guess.{i}", "Password123!").status_code == 401
        r = login(sprayer, "t.supervisor", PASSWORD)
        assert r.status_code == 429
    assert login(app_client, "t.supervisor", PASSWORD).status_code == 200


def test_guessing_one_account_from_many_addresses_is_slowed_down(app_client, rt) -> None:  # type: ignore[no-untyped-def]
    """Each new address starts its own pair count; the account's count across addresses
    catches up with them, but the clerk's own counter (it logged in there before) is let in."""
    assert login(app_client, "t.auditor", PASSWORD).status_code == 200  # the counter: known
    rotated = 0
    for i in range(rt.settings.login_account_max_failures):
        with client_at(rt, f"198.18.{i // 250}.{i % 250 + 1}") as stranger:
            assert login(stranger, "t.auditor", "guess-guess-guess").status_code == 401
            rotated += 1
    with client_at(rt, "198.19.0.1") as fresh:
        r = login(fresh, "t.auditor", PASSWORD)  # even the right password, from a new address
        assert r.status_code == 429 and int(r.headers["Retry-After"]) > 0
    assert login(app_client, "t.auditor", PASSWORD).status_code == 200
    assert rotated == rt.settings.login_account_max_failures


def test_an_ipv6_host_counts_as_its_whole_network(rt) -> None:  # type: ignore[no-untyped-def]
    for i in range(rt.settings.login_max_failures):
        with client_at(rt, f"2001:db8:1:2::{i + 1:x}") as stranger:
            assert login(stranger, "t.supervisor", "wrong-password!").status_code == 401
    with client_at(rt, "2001:db8:1:2::ffff") as same_net:
        assert login(same_net, "t.supervisor", PASSWORD).status_code == 429
    with client_at(rt, "2001:db8:1:3::1") as other_net:
        assert login(other_net, "t.supervisor", PASSWORD).status_code == 200


def test_old_failures_and_forgotten_sources_are_purged(app_client, rt) -> None:  # type: ignore[no-untyped-def]
    import datetime as dt

    from sqlalchemy import func

    from cardsvc.staff import throttle
    from cardsvc.staff.models import LoginThrottle
    for name in ("made.up.1", "made.up.2"):
        login(app_client, name, "whatever-pass")
    assert login(app_client, "t.clerk", PASSWORD).status_code == 200
    with rt.sessions.begin() as db:
        before = db.scalar(select(func.count()).select_from(LoginThrottle))
        assert before >= 5  # pairs, the source, accounts, the clerk's known source
        now = dt.datetime.now(dt.UTC)
        assert throttle.purge(db, rt.settings, now) == 0  # nothing is old yet
        later = now + dt.timedelta(days=rt.settings.login_known_days + 1)
        assert throttle.purge(db, rt.settings, later) == before


def test_unknown_user_gets_the_same_answer(app_client) -> None:  # type: ignore[no-untyped-def]
    r = login(app_client, "nobody", "whatever-password")
    assert r.status_code == 401 and r.json()["code"] == "invalid_credentials"


def test_disabled_account_loses_access_at_once(app_client, admin, tokens) -> None:  # type: ignore[no-untyped-def]
    new = admin.ok("POST", "/staff", {"username": "temp.clerk", "role": "clerk",
                                      "password": "temporary-pass-1"}, status=201)
    token = login(app_client, "temp.clerk", "temporary-pass-1").json()["access_token"]
    assert Api(app_client, token).get("/auth/me").status_code == 200
    admin.ok("PATCH", f"/staff/{new['id']}", {"active": False})
    assert Api(app_client, token).get("/auth/me").status_code == 401
    assert login(app_client, "temp.clerk", "temporary-pass-1").status_code == 401


def test_role_change_takes_effect_at_once(app_client, admin) -> None:  # type: ignore[no-untyped-def]
    new = admin.ok("POST", "/staff", {"username": "temp.sup", "role": "clerk",
                                      "password": "temporary-pass-2"}, status=201)
    api = Api(app_client, login(app_client, "temp.sup", "temporary-pass-2").json()["access_token"])
    assert api.get("/stats/issuance", **{"from": "2026-01-01", "to": "2026-01-02"}
                   ).status_code == 403
    admin.ok("PATCH", f"/staff/{new['id']}", {"role": "supervisor"})
    assert api.get("/stats/issuance", **{"from": "2026-01-01", "to": "2026-01-02"}
                   ).status_code == 200


def test_weak_password_and_duplicate_username_refused(admin) -> None:  # type: ignore[no-untyped-def]
    r = admin.post("/staff", {"username": "x.short", "role": "clerk", "password": "short"})
    assert r.status_code == 422
    r = admin.post("/staff", {"username": "t.clerk", "role": "clerk", "password": "long-enough-1"})
    assert r.status_code == 409 and r.json()["code"] == "staff_exists"


def test_concurrent_failed_logins_all_count(app_client, rt) -> None:  # type: ignore[no-untyped-def]
    from concurrent.futures import ThreadPoolExecutor
    name = "t.supervisor"
    with ThreadPoolExecutor(12) as pool:
        codes = list(pool.map(lambda _: login(app_client, name, "guess-guess").status_code,
                              range(12)))
    assert set(codes) <= {401, 429}, codes
    from cardsvc.staff.models import LoginThrottle
    from cardsvc.staff.throttle import pair_key
    with rt.sessions() as db:
        row = db.get(LoginThrottle, pair_key(name, "testclient"))
    assert row is not None and row.failures + codes.count(429) == 12
    assert login(app_client, name, PASSWORD).status_code == 429  # locked now


def test_a_password_change_ends_older_tokens(app_client, admin, rt) -> None:  # type: ignore[no-untyped-def]
    new = admin.ok("POST", "/staff", {"username": "temp.pw", "role": "clerk",
                                      "password": "temporary-pass-3"}, status=201)
    token = login(app_client, "temp.pw", "temporary-pass-3").json()["access_token"]
    time.sleep(1.1)  # tokens carry whole seconds
    admin.req("POST", f"/staff/{new['id']}/password", json={"password": "another-pass-4"})
    assert Api(app_client, token).get("/auth/me").status_code == 401


def test_an_admin_cannot_demote_or_disable_themselves(admin, rt) -> None:  # type: ignore[no-untyped-def]
    me = admin.ok("GET", "/auth/me")
    for change in ({"role": "clerk"}, {"role": "auditor"}, {"active": False}):
        r = admin.req("PATCH", f"/staff/{me['id']}", change)
        assert r.status_code == 409 and r.json()["code"] == "own_account", change
    assert admin.ok("GET", "/auth/me")["role"] == "admin"
    # Changing one's own display name is fine.
    assert admin.ok("PATCH", f"/staff/{me['id']}", {"display_name": "管理者"})["role"] == "admin"


def test_the_last_active_admin_stays(admin, rt) -> None:  # type: ignore[no-untyped-def]
    """Two admins demoting each other at once: the second finds itself demoted by the first
    already (its role was checked when its request began) and must not leave no admin."""
    import uuid

    from cardsvc.context import Actor, Ctx
    from cardsvc.db import unit_of_work
    from cardsvc.staff import service
    from cardsvc.staff.errors import LastAdmin

    me = admin.ok("GET", "/auth/me")
    other = admin.ok("POST", "/staff", {"username": f"adm.{uuid.uuid4().hex[:8]}",
                                        "role": "admin", "password": "another-admin-1"},
                     status=201)
    with unit_of_work(rt.sessions) as db:
        others = db.scalars(select(Staff).where(Staff.role == "admin", Staff.active.is_(True),
                                                Staff.id.not_in([me["id"], other["id"]]))).all()
        for s in others:  # earlier tests' admins (PostgreSQL keeps staff between tests)
            s.active = False
    try:
        admin.ok("PATCH", f"/staff/{other['id']}", {"role": "clerk"})  # me stays: fine
        with unit_of_work(rt.sessions) as db:
            stale = Ctx(db, rt.settings, rt.keys, Actor(other["id"], other["username"], "admin"))
            try:
                service.update_staff(stale, me["id"], "clerk", None, None)
                raise AssertionError("the last admin was demoted")
            except LastAdmin as exc:
                assert exc.code == "last_admin"
            try:
                service.update_staff(stale, me["id"], None, False, None)
                raise AssertionError("the last admin was disabled")
            except LastAdmin:
                pass
    finally:
        with unit_of_work(rt.sessions) as db:
            for s in others:
                db.get(Staff, s.id).active = True  # type: ignore[union-attr]
    assert admin.ok("GET", "/auth/me")["role"] == "admin"


def test_two_admins_changing_each_other_at_once_never_fail(app_client, admin) -> None:  # type: ignore[no-untyped-def]
    import threading
    import uuid
    from concurrent.futures import ThreadPoolExecutor

    pair = []
    for _ in range(2):
        name = f"adm.{uuid.uuid4().hex[:8]}"
        made = admin.ok("POST", "/staff", {"username": name, "role": "admin",
                                           "password": "admin-pass-123"}, status=201)
        token = login(app_client, name, "admin-pass-123").json()["access_token"]
        pair.append((made["id"], Api(app_client, token)))
    (a_id, a), (b_id, b) = pair
    seen = set()
    for _ in range(5):
        barrier = threading.Barrier(2)

        def change(who: Api, target: int, barrier: threading.Barrier = barrier) -> int:
            barrier.wait()
            return int(who.req("PATCH", f"/staff/{target}", {"role": "supervisor"}).status_code)

        with ThreadPoolExecutor(2) as pool:
            codes = list(pool.map(lambda args: change(*args), [(a, b_id), (b, a_id)]))
        seen.update(codes)
        assert all(c in (200, 401, 403, 409) for c in codes), codes
        for target in (a_id, b_id):
            admin.ok("PATCH", f"/staff/{target}", {"role": "admin"})
    assert 200 in seen
    assert admin.ok("GET", "/auth/me")["role"] == "admin"


def test_logout_refuses_the_token_from_then_on(app_client) -> None:  # type: ignore[no-untyped-def]
    from tests.support.api import PASSWORD
    token = app_client.post("/auth/login", json={"username": "t.clerk",
                                                 "password": PASSWORD}).json()["access_token"]
    headers = {"Authorization": f"Bearer {token}"}
    assert app_client.get("/auth/me", headers=headers).status_code == 200
    assert app_client.post("/auth/logout", headers=headers).status_code == 204
    r = app_client.get("/auth/me", headers=headers)
    assert r.status_code == 401 and "logged out" in r.json()["detail"]
