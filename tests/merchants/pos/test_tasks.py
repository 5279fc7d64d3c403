"""Tables that would only grow get a rule: what can no longer be replayed or retried is
purged by a scheduled task, and what must stay, stays."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator

import pytest
from sqlalchemy import func, select, text, update

from cardsvc.idempotency.models import IdempotencyRecord
from cardsvc.runtime import use_process_runtime
from merchants.pos.client import PosClient
from merchants.pos.models import PosNonce, QrTokenUse
from tests import factories as f

MERCHANT = {"legal_name": "金城小吃店", "tax_id": "04595252", "category": "retail",
            "fee_bps": 0, "bank_account": "812-00011122233"}


@pytest.fixture
def tasks_here(rt) -> Iterator[None]:  # type: ignore[no-untyped-def]
    use_process_runtime(rt)
    yield
    use_process_runtime(None)


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


def test_idempotency_answers_go_after_their_retention_and_the_money_stays(  # type: ignore[no-untyped-def]
        rt, clerk, tasks_here) -> None:
    from cardsvc.idempotency.tasks import purge_old_answers
    card = f.active_card(clerk, f.holder(clerk)["id"])
    f.topup(clerk, card["id"], 300)
    f.topup(clerk, card["id"], 200)
    with rt.sessions.begin() as db:
        first = db.scalars(select(IdempotencyRecord).order_by(IdempotencyRecord.created_at)
                           ).first()
        assert first is not None
        first.created_at = dt.datetime.now(dt.UTC) - dt.timedelta(
            days=rt.settings.idempotency_retention_days, minutes=1)
    assert purge_old_answers() == 1
    with rt.sessions() as db:
        assert db.scalar(select(func.count()).select_from(IdempotencyRecord)) == 1
        assert db.execute(text("SELECT COUNT(*) FROM transfers WHERE kind = 'topup'")
                          ).scalar_one() == 2
    assert clerk.ok("GET", f"/cards/{card['id']}/purse")["balance"] == 500


def test_the_beat_schedule_has_every_domains_work(rt) -> None:  # type: ignore[no-untyped-def]
    from cardsvc.app.worker import make_app
    schedule = make_app(rt.settings).conf.beat_schedule
    assert {"clear-the-business-day", "sweep-unfinished-runs", "purge-pos-replay-guards",
            "expire-due-cards", "purge-login-throttle",
            "purge-idempotency-answers"} <= set(schedule)
