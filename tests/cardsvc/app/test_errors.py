"""Bad input gets a clear problem-details answer with a stable code; never a 500, never a
partial write, never the caller's personal data echoed back."""

from __future__ import annotations

import pytest

from tests.support import factories as f


def test_malformed_json(clerk) -> None:  # type: ignore[no-untyped-def]
    r = clerk.client.post("/cardholders", content=b'{"name": "x",',
                          headers={**clerk.headers, "Content-Type": "application/json"})
    assert r.status_code == 400
    assert r.headers["content-type"].startswith("application/problem+json")
    assert r.json()["code"] == "malformed_json"


@pytest.mark.parametrize("amount", ["500", 12.5, -1, 0, 10**30, True, None])
def test_bad_amounts(clerk, amount) -> None:  # type: ignore[no-untyped-def]
    card = f.active_card(clerk, f.holder(clerk)["id"])
    r = clerk.post(f"/cards/{card['id']}/topups", {"amount": amount}, key=f.key())
    assert r.status_code == 422 and r.json()["code"] == "invalid_input"
    assert clerk.ok("GET", f"/cards/{card['id']}/purse")["balance"] == 0


def test_unknown_fields_and_wrong_types(clerk) -> None:  # type: ignore[no-untyped-def]
    r = clerk.post("/cardholders", {"name": "x", "person_id": 12, "birth_date": "yesterday",
                                    "township": "台北市", "admin": True})
    assert r.status_code == 422
    locs = {tuple(e["loc"]) for e in r.json()["errors"]}
    assert ("body", "township") in locs and ("body", "admin") in locs


def test_validation_errors_do_not_echo_input(clerk) -> None:  # type: ignore[no-untyped-def]
    pid = f.new_person_id()
    r = clerk.post("/cardholders", {"name": "x", "person_id": pid, "birth_date": "not-a-date",
                                    "township": "金城鎮", "phone": "0912345678"})
    assert r.status_code == 422
    assert pid not in r.text and "0912345678" not in r.text


@pytest.mark.parametrize("path", ["/cards/99999", "/cards/99999999999999999999999",
                                  "/cards/-3", "/cards/abc", "/cardholders/77/cards"])
def test_unknown_or_absurd_ids(clerk, path: str) -> None:  # type: ignore[no-untyped-def]
    r = clerk.get(path)
    assert r.status_code in (404, 422)
    assert r.json()["code"] in ("not_found", "invalid_input")


def test_unknown_route_is_problem_json(clerk) -> None:  # type: ignore[no-untyped-def]
    r = clerk.get("/no/such/route")
    assert r.status_code == 404 and r.json()["code"] == "not_found"


def test_huge_body_strings_are_refused(clerk) -> None:  # type: ignore[no-untyped-def]
    r = clerk.post("/cardholders", {"name": "x" * 100_000, "person_id": f.new_person_id(),
                                    "birth_date": "1980-01-01", "township": "金城鎮"})
    assert r.status_code == 422


def test_failed_replacement_leaves_nothing_half_written(clerk) -> None:  # type: ignore[no-untyped-def]
    h = f.holder(clerk)
    card = f.active_card(clerk, h["id"])
    f.topup(clerk, card["id"], 90)
    # Fee from the purse needs NT$100 after the move: the whole replacement is refused.
    r = clerk.post(f"/cards/{card['id']}/replace", {"reason": "damaged", "chip_uid": f.uid(),
                                                    "fee_payment": "purse"}, key=f.key())
    assert r.status_code == 409 and r.json()["code"] == "insufficient_funds"
    assert clerk.ok("GET", f"/cards/{card['id']}")["status"] == "active"
    assert len(clerk.ok("GET", f"/cardholders/{h['id']}/cards")) == 1
    assert clerk.ok("GET", f"/cards/{card['id']}/purse")["balance"] == 90


HUGE = 10**20


@pytest.mark.parametrize("method,path,body", [
    ("GET", f"/cardholders/{HUGE}?purpose=testing", None),
    ("GET", f"/cardholders/{HUGE}/cards", None),
    ("POST", "/cards/applications", {"cardholder_id": HUGE, "product": "general"}),
    ("GET", f"/cards/eligibility?cardholder_id={HUGE}&product=general", None),
    ("GET", f"/cards/{HUGE}", None),
])
def test_huge_ids_are_422_not_500(supervisor, method: str, path: str, body) -> None:  # type: ignore[no-untyped-def]
    r = supervisor.req(method, path, json=body)
    assert r.status_code == 422, r.text


def test_huge_ids_for_admins_and_auditors(admin, auditor) -> None:  # type: ignore[no-untyped-def]
    assert admin.req("PATCH", f"/staff/{HUGE}", json={"display_name": "x"}).status_code == 422
    assert auditor.get("/audit/events", before_id=HUGE).status_code == 422


@pytest.mark.parametrize("first,last", [("0001-01-01", "2025-01-01"), ("2025-01-01",
                                                                        "9999-12-31")])
def test_calendar_edges_in_reports(supervisor, first: str, last: str) -> None:  # type: ignore[no-untyped-def]
    r = supervisor.get("/stats/issuance", **{"from": first, "to": last})
    assert r.status_code == 422 and r.json()["code"] == "invalid_input"


def test_nul_characters_are_refused_everywhere(clerk, supervisor, app_client) -> None:  # type: ignore[no-untyped-def]
    card = f.active_card(clerk, f.holder(clerk)["id"])
    for r in (
        clerk.post("/cardholders", {"name": "a\u0000b", "person_id": f.new_person_id(),
                                    "birth_date": "1980-01-01", "township": "金城鎮"}),
        supervisor.post(f"/cards/{card['id']}/block", {"reason": "ab\u0000cd"}),
        app_client.post("/auth/login", json={"username": "a\u0000b", "password": "x"}),
        clerk.post("/cardholders/search", {"purpose": "abc", "name": "a\u0000b"}),
        clerk.post(f"/cards/{card['id']}/topups", {"amount": 5, "counter": "K\u0000"},
                   key=f.key()),
        clerk.get(f"/cardholders/{card['cardholder_id']}", purpose="a\u0000bc"),
    ):
        assert r.status_code in (400, 422), r.text
    assert clerk.ok("GET", f"/cards/{card['id']}")["status"] == "active"


def test_longest_reasons_fit(clerk, supervisor) -> None:  # type: ignore[no-untyped-def]
    card = f.active_card(clerk, f.holder(clerk)["id"])
    clerk.ok("POST", f"/cards/{card['id']}/suspend", {"kind": "stolen", "reason": "r" * 500})
    rep = supervisor.ok("POST", f"/cards/{card['id']}/replace",
                        {"reason": "stolen", "note": "n" * 500, "chip_uid": f.uid()},
                        key=f.key())
    events = clerk.ok("GET", f"/cards/{card['id']}/events")
    assert len(events[-1]["reason"]) <= 500 and rep["new_card"]["status"] == "active"
