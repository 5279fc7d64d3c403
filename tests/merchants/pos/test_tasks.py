"""Tables that would only grow get a rule: signed-request nonces and spent QR tokens are
purged by a scheduled task once they could no longer be replayed, and what must stay, stays
(a replay inside the window is still refused)."""

from __future__ import annotations

import datetime as dt

import pytest
from sqlalchemy import select, update

from merchants.pos.client import PosClient
from merchants.pos.models import PosNonce, QrTokenUse
from tests.support import factories as f

MERCHANT = {"legal_name": "金城小吃店", "tax_id": "04595252", "category": "retail",
            "fee_bps": 0, "bank_account": "812-00011122233"}


@pytest.fixture
def pos(app_client, clerk) -> PosClient:  # type: ignore[no-untyped-def]
    m = clerk.ok("POST", "/merchants", MERCHANT, status=201)
    t = clerk.ok("POST", f"/merchants/{m['id']}/terminals", {"label": "till"}, status=201)
    return PosClient(app_client, t["key_id"], t["secret"])


def test_old_nonces_go_and_a_replay_inside_the_window_is_still_refused(  # type: ignore[no-untyped-def]
        rt, pos, tasks_here) -> None:
    from merchants.pos import signing
    from merchants.pos.tasks import purge_replay_guards
    body = b"{}"
    old = pos.signed_headers("POST", "/pos/v1/ping", body, nonce="old-nonce-old-nonce-1")
    recent = pos.signed_headers("POST", "/pos/v1/ping", body, nonce="new-nonce-new-nonce-1")
    for headers in (old, recent):
        assert pos.http.post("/pos/v1/ping", content=body, headers=headers).status_code == 200
    long_ago = dt.datetime.now(dt.UTC) - dt.timedelta(seconds=2 * signing.WINDOW_SECONDS + 61)
    with rt.sessions.begin() as db:
        db.execute(update(PosNonce).where(PosNonce.nonce == "old-nonce-old-nonce-1")
                   .values(seen_at=long_ago))
    out = purge_replay_guards()
    assert out["nonces"] == 1
    with rt.sessions() as db:
        assert db.scalars(select(PosNonce.nonce)).all() == ["new-nonce-new-nonce-1"]
    # The recent one is kept: its replay is refused as before.
    r = pos.http.post("/pos/v1/ping", content=body, headers=recent)
    assert r.status_code == 401 and r.json()["code"] == "nonce_reused"


def test_spent_qr_tokens_go_once_they_could_no_longer_be_fresh(  # type: ignore[no-untyped-def]
        rt, clerk, tasks_here) -> None:
    from merchants.pos.tasks import purge_replay_guards
    _, card = f.mobile_card(clerk, "phone-housekeeping-1", 100)
    now = dt.datetime.now(dt.UTC)
    ttl = rt.settings.qr_token_ttl_seconds
    with rt.sessions.begin() as db:
        db.add_all([QrTokenUse(token_id="spent-long-ago-0001", card_id=card["id"],
                               used_at=now - dt.timedelta(seconds=ttl + 30 + 61)),
                    QrTokenUse(token_id="spent-just-now-0001", card_id=card["id"],
                               used_at=now - dt.timedelta(seconds=ttl))])
    assert purge_replay_guards()["qr_tokens"] == 1
    with rt.sessions() as db:
        assert db.scalars(select(QrTokenUse.token_id)).all() == ["spent-just-now-0001"]
