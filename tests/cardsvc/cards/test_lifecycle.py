"""Every lifecycle transition from every state: legal ones succeed and are recorded with who,
when and why; illegal ones are a 409 that changes nothing."""

import datetime as dt
from typing import Any

import pytest
from sqlalchemy import update

from cardsvc.cards import service as cards
from cardsvc.cards.errors import IllegalTransition
from cardsvc.cards.models import Card, CardStatus
from cardsvc.context import Actor, Ctx
from cardsvc.db import unit_of_work
from tests.support import factories as f

STATES = [s.value for s in CardStatus]
ACTIONS = list(cards.TRANSITIONS)


def card_in(api: Any, rt: Any, state: str) -> dict[str, Any]:
    h = f.holder(api)
    app = api.ok("POST", "/cards/applications", {"cardholder_id": h["id"],
                                                 "product": "general"}, status=201)
    cid = app["id"]
    if state == "applied":
        return app
    api.ok("POST", f"/cards/{cid}/issue", {"chip_uid": f.uid()})
    if state == "issued":
        return api.ok("GET", f"/cards/{cid}")
    api.ok("POST", f"/cards/{cid}/activate")
    if state == "suspended":
        api.ok("POST", f"/cards/{cid}/suspend", {"kind": "lost", "reason": "lost on the ferry"})
    elif state == "blocked":
        api.ok("POST", f"/cards/{cid}/block", {"reason": "suspected cloning"})
    elif state == "expired":
        with rt.engine.begin() as conn:
            conn.execute(update(Card).where(Card.id == cid)
                         .values(expires_on=f.today() - dt.timedelta(days=1)))
        with unit_of_work(rt.sessions) as db:
            assert cards.expire_due(Ctx(db, rt.settings, rt.keys, Actor.system())) == 1
    elif state == "replaced":
        api.ok("POST", f"/cards/{cid}/replace", {"reason": "damaged", "chip_uid": f.uid()},
               key=f.key())
    elif state == "closed":
        api.ok("POST", f"/cards/{cid}/close", {"reason": "leaving the county"}, key=f.key())
    card = api.ok("GET", f"/cards/{cid}")
    assert card["status"] == state
    return card


def do(api: Any, rt: Any, action: str, cid: int) -> tuple[int, dict[str, Any]]:
    if action == "expire":  # a batch job, not a counter route
        try:
            with unit_of_work(rt.sessions) as db:
                cards.simple_transition(Ctx(db, rt.settings, rt.keys, Actor.system("job")),
                                        cid, "expire", "validity ended")
            return 200, {}
        except IllegalTransition as exc:
            return 409, {"code": exc.code, "detail": exc.detail}
    body: dict[str, Any] = {
        "issue": {"chip_uid": f.uid()},
        "activate": None,
        "suspend": {"kind": "stolen", "reason": "bag stolen at the market"},
        "reinstate": {"reason": "card found"},
        "block": {"reason": "fraud check"},
        "unblock": {"reason": "fraud check cleared"},
        "replace": {"reason": "damaged", "chip_uid": f.uid()},
        "close": {"reason": "resident asked to close"},
    }[action]
    key = f.key() if action in ("replace", "close") else None
    r = api.post(f"/cards/{cid}/{action}", body, key=key)
    return r.status_code, r.json()


@pytest.mark.parametrize("state", STATES)
@pytest.mark.parametrize("action", ACTIONS)
def test_transition(supervisor, rt, state: str, action: str) -> None:  # type: ignore[no-untyped-def]
    card = card_in(supervisor, rt, state)
    before = supervisor.ok("GET", f"/cards/{card['id']}/events")
    allowed, target = cards.TRANSITIONS[action]
    status, body = do(supervisor, rt, action, card["id"])
    after = supervisor.ok("GET", f"/cards/{card['id']}")
    events = supervisor.ok("GET", f"/cards/{card['id']}/events")
    if state in allowed:
        assert status == 200, body
        assert after["status"] == target.value
        last = events[-1]
        assert (last["action"], last["from_status"], last["to_status"]) == (
            action, state, target.value)
        assert last["actor"] in ("t.supervisor", "job")
        assert last["reason"]
    else:
        assert status == 409, body
        assert body["code"] == "illegal_transition"
        assert state in body["detail"] and action in body["detail"]
        assert after["status"] == state
        assert events == before


def test_lost_card_report_then_found(clerk) -> None:  # type: ignore[no-untyped-def]
    h = f.holder(clerk)
    card = f.active_card(clerk, h["id"])
    clerk.ok("POST", f"/cards/{card['id']}/suspend", {"kind": "lost", "reason": "lost"})
    assert clerk.ok("POST", f"/cards/{card['id']}/reinstate",
                    {"reason": "found at home"})["status"] == "active"


def test_clerk_cannot_block_or_unblock(clerk) -> None:  # type: ignore[no-untyped-def]
    h = f.holder(clerk)
    card = f.active_card(clerk, h["id"])
    r = clerk.post(f"/cards/{card['id']}/block", {"reason": "suspicious"})
    assert r.status_code == 403


def test_one_live_physical_and_one_live_mobile_card(clerk) -> None:  # type: ignore[no-untyped-def]
    import base64

    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import ed25519
    h = f.holder(clerk)
    f.active_card(clerk, h["id"])
    second = clerk.post("/cards/applications", {"cardholder_id": h["id"], "product": "general"})
    assert second.status_code == 409 and second.json()["code"] == "card_limit_reached"
    pub = ed25519.Ed25519PrivateKey.generate().public_key().public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
    mobile = {"cardholder_id": h["id"], "product": "mobile", "device_id": "ios-0011223344",
              "device_public_key": base64.b64encode(pub).decode()}
    assert clerk.post("/cards/applications", mobile).status_code == 201
    again = clerk.post("/cards/applications", mobile)
    assert again.status_code == 409 and again.json()["code"] == "card_limit_reached"


def test_chip_uid_is_bound_once(clerk) -> None:  # type: ignore[no-untyped-def]
    uid = f.uid()
    a = clerk.ok("POST", "/cards/applications", {"cardholder_id": f.holder(clerk)["id"],
                                                 "product": "general"}, status=201)
    b = clerk.ok("POST", "/cards/applications", {"cardholder_id": f.holder(clerk)["id"],
                                                 "product": "general"}, status=201)
    clerk.ok("POST", f"/cards/{a['id']}/issue", {"chip_uid": uid})
    r = clerk.post(f"/cards/{b['id']}/issue", {"chip_uid": uid})
    assert r.status_code == 409
    assert clerk.ok("GET", f"/cards/{b['id']}")["status"] == "applied"


def test_unblock_returns_a_stolen_card_to_suspended(clerk, supervisor) -> None:  # type: ignore[no-untyped-def]
    card = f.active_card(clerk, f.holder(clerk)["id"])
    clerk.ok("POST", f"/cards/{card['id']}/suspend", {"kind": "stolen", "reason": "stolen"})
    supervisor.ok("POST", f"/cards/{card['id']}/block", {"reason": "used after the theft"})
    out = supervisor.ok("POST", f"/cards/{card['id']}/unblock", {"reason": "case closed"})
    assert out["status"] == "suspended"


def test_blocked_card_is_settled_by_a_supervisor_only(clerk, supervisor) -> None:  # type: ignore[no-untyped-def]
    card = f.active_card(clerk, f.holder(clerk)["id"])
    f.topup(clerk, card["id"], 70)
    supervisor.ok("POST", f"/cards/{card['id']}/block", {"reason": "fraud check"})
    r = clerk.post(f"/cards/{card['id']}/close", {"reason": "resident asks"}, key=f.key())
    assert r.status_code == 403
    out = supervisor.ok("POST", f"/cards/{card['id']}/close", {"reason": "case settled"},
                        key=f.key())
    assert out["refund_cash"] == 70 and out["card"]["status"] == "closed"


def test_fee_free_reasons_must_be_genuine(clerk) -> None:  # type: ignore[no-untyped-def]
    card = f.active_card(clerk, f.holder(clerk)["id"])
    for body in ({"reason": "product_change", "chip_uid": f.uid()},
                 {"reason": "renewal", "chip_uid": f.uid()}):
        r = clerk.post(f"/cards/{card['id']}/replace", body, key=f.key())
        assert r.status_code == 422, r.text
    assert clerk.ok("GET", f"/cards/{card['id']}")["status"] == "active"


def test_a_new_phone_brings_its_own_key(clerk) -> None:  # type: ignore[no-untyped-def]
    import base64

    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import ed25519

    def key() -> str:
        return base64.b64encode(ed25519.Ed25519PrivateKey.generate().public_key().public_bytes(
            serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)).decode()
    h = f.holder(clerk)
    card = f.active_card(clerk, h["id"], "mobile", device_id="phone-old-0001",
                         device_public_key=key())
    r = clerk.post(f"/cards/{card['id']}/replace", {"reason": "lost",
                   "device_id": "phone-new-0002"}, key=f.key())
    assert r.status_code == 422 and r.json()["field"] == "device_public_key"
    out = clerk.ok("POST", f"/cards/{card['id']}/replace", {
        "reason": "lost", "device_id": "phone-new-0002", "device_public_key": key()},
        key=f.key())
    assert out["new_card"]["device_id"] == "phone-new-0002"
