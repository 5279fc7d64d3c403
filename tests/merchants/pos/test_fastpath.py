"""The one-call card-present purchase on PostgreSQL (merchants/pos/fastpath.py): it books what is
plainly fine with the same rows the general path writes, and leaves everything else to it,
also when what it cached has changed since."""

from __future__ import annotations

import asyncio
import json
import os
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import psycopg
import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select
from sqlalchemy.engine import make_url

from cardsvc.app import migrate
from cardsvc.app.bootstrap import build_runtime
from cardsvc.app.http import create_app
from cardsvc.audit import service as audit
from cardsvc.audit.models import AuditEvent
from cardsvc.cards.models import Card
from cardsvc.db import unit_of_work
from cardsvc.idempotency.models import IdempotencyRecord
from cardsvc.idempotency.service import request_hash
from cardsvc.ledger.models import Account, Posting, Transfer
from merchants.pos import schemas as ps
from merchants.pos.fastpath import CALL, FastPurchases, call_args
from merchants.pos.models import PosNonce, PosTransaction
from merchants.registry.models import Terminal
from tests.support import factories as f
from tests.support.databases import (
    DEFAULT_PG,
    create_pg_database,
    drop_pg_database,
    make_settings,
    seed_staff,
)
from tests.support.worlds import Shop, chip_card, open_shop


@pytest.fixture
def shop(secrets_file: Path, tmp_path: Path) -> Iterator[Shop]:
    base = os.environ.get("CARDSVC_TEST_PG_URL", DEFAULT_PG)
    url = create_pg_database(base)
    rt = build_runtime(make_settings(url, secrets_file, reader="sim",
                                     sim_cards_dir=tmp_path / "cards"))
    try:
        migrate.upgrade(rt.engine)
        seed_staff(rt)
        with TestClient(create_app(rt)) as client:
            yield open_shop(rt, client, tmp_path / "cards")
    finally:
        rt.close()
        drop_pg_database(base, url)


def booked(shop: Shop) -> int:
    return int(shop.client.app.state.fast_purchases.booked)  # type: ignore[attr-defined]


def written(shop: Shop, transaction_id: int) -> dict[str, Any]:
    """Every row one purchase wrote, without its ids and times."""
    audit.seal_all(shop.rt.sessions)
    with unit_of_work(shop.rt.sessions) as db:
        tx = db.get(PosTransaction, transaction_id)
        assert tx is not None and tx.transfer_id is not None
        transfer = db.get(Transfer, tx.transfer_id)
        assert transfer is not None
        legs = [(db.get(Account, p.account_id).code, p.amount,  # type: ignore[union-attr]
                 p.balance_after) for p in db.scalars(
            select(Posting).where(Posting.transfer_id == transfer.id).order_by(Posting.id))]
        idem = db.get(IdempotencyRecord, f"t{tx.terminal_id}:{tx.idempotency_key}")
        assert idem is not None
        events = [(e.actor, e.actor_role, e.action, e.purpose, e.target_type,
                   json.loads(e.detail)) for e in db.scalars(
            select(AuditEvent).where(AuditEvent.target_type == "transfer",
                                     AuditEvent.target_id == str(transfer.id)))]
        answer = json.loads(idem.response)
        return {
            "record": {c: getattr(tx, c) for c in (
                "kind", "status", "reason", "terminal_id", "merchant_id", "card_id",
                "card_number", "amount", "refunded", "batch_id", "original_id")},
            "record_has": [getattr(tx, c) is not None for c in (
                "card_counter", "balance_after", "terminal_seq", "card_time", "certificate",
                "idempotency_key")],
            "transfer": (transfer.kind, transfer.card_id, transfer.amount, transfer.actor,
                         transfer.idempotency_key, transfer.memo.split(" seq ")[0]),
            "legs": [(code, amount) for code, amount, _ in legs],
            "idempotency": (idem.operation, idem.status_code, idem.actor),
            "answer_keys": sorted(answer),
            "answer": {k: answer[k] for k in ("kind", "status", "reason", "amount", "refunded",
                                              "card_number", "terminal_id", "merchant_id",
                                              "original_transaction_id")},
            "audit": events,
            "same_time": tx.created_at == transfer.created_at,
        }


def test_fast_and_general_paths_write_the_same_rows(shop: Shop) -> None:
    body = shop.tap(70)
    fast = shop.buy(body)
    assert fast.status_code == 200 and booked(shop) == 1, fast.text
    shop.client.app.state.fast_purchases, saved = None, \
        shop.client.app.state.fast_purchases  # type: ignore[attr-defined]
    body2 = shop.tap(70)
    general = shop.buy(body2)
    shop.client.app.state.fast_purchases = saved  # type: ignore[attr-defined]
    assert general.status_code == 200 and booked(shop) == 1, general.text
    a, b = fast.json(), general.json()
    assert sorted(a) == sorted(b) and a["purse_balance"] == 930 and b["purse_balance"] == 860
    rows_a, rows_b = written(shop, a["transaction_id"]), written(shop, b["transaction_id"])
    assert rows_a == rows_b
    assert rows_a["legs"] == [(f"purse:{shop.card['id']}", -70),
                              (f"terminal:{shop.terminal['id']}", 70)]
    assert len(rows_a["audit"]) == 1 and rows_a["same_time"]
    with unit_of_work(shop.rt.sessions) as db:
        idem = db.scalars(select(IdempotencyRecord).where(
            IdempotencyRecord.operation == "pos.purchase")).all()
        assert sorted(r.request_hash for r in idem) == sorted(
            request_hash("pos.purchase", ps.CardPurchase(**b).model_dump())
            for b in (body, body2))
        assert len(db.scalars(select(PosNonce)).all()) >= 2
        # The chain holds the sealed rows and is intact.
        assert audit.pending_count(db) == 0 and audit.verify_chain(db).ok


def test_a_retry_replays_the_stored_answer(shop: Shop) -> None:
    body, key = shop.tap(40), f.key()
    first, again = shop.buy(body, key), shop.buy(body, key)
    assert booked(shop) == 1
    assert again.headers["Idempotent-Replayed"] == "true" and again.json() == first.json()
    assert shop.clerk.ok("GET", f"/cards/{shop.card['id']}/purse")["balance"] == 960


def test_concurrent_retries_are_charged_once(shop: Shop) -> None:
    body, key = shop.tap(25), f.key()
    answers: list[Any] = []
    lock = threading.Lock()

    def send() -> None:
        r = shop.buy(body, key)
        with lock:
            answers.append(r)

    threads = [threading.Thread(target=send) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert {r.status_code for r in answers} == {200}
    assert len({r.json()["transaction_id"] for r in answers}) == 1
    assert shop.clerk.ok("GET", f"/cards/{shop.card['id']}/purse")["balance"] == 975


def test_a_card_blocked_after_it_was_cached_is_refused(shop: Shop) -> None:
    assert shop.buy(shop.tap(10)).status_code == 200 and booked(shop) == 1
    body = shop.tap(10)
    shop.clerk.ok("POST", f"/cards/{shop.card['id']}/suspend",
                  {"kind": "lost", "reason": "reported lost"})
    r = shop.buy(body)
    assert r.status_code == 409 and r.json()["code"] == "card_hotlisted", r.text
    with unit_of_work(shop.rt.sessions) as db:
        refused = db.scalar(select(PosTransaction).where(PosTransaction.status == "rejected"))
        assert refused is not None and refused.reason == "card_hotlisted"


def test_a_terminal_revoked_after_it_was_cached_is_refused(shop: Shop) -> None:
    assert shop.buy(shop.tap(10)).status_code == 200 and booked(shop) == 1
    body = shop.tap(10)
    shop.clerk.ok("POST", f"/merchants/terminals/{shop.terminal['id']}/revoke",
                  {"reason": "terminal stolen"})
    r = shop.buy(body)
    assert r.status_code == 403 and r.json()["code"] == "terminal_revoked", r.text
    assert shop.clerk.ok("GET", f"/cards/{shop.card['id']}/purse")["balance"] == 990



def test_the_sealer_chains_the_purchase_rows_within_seconds(shop: Shop) -> None:
    assert shop.buy(shop.tap(15)).status_code == 200 and booked(shop) == 1
    deadline = time.monotonic() + 10
    while True:  # nobody reads the trail: the API process's sealer does it on its own
        with unit_of_work(shop.rt.sessions) as db:
            left = audit.pending_count(db)
            sealed = db.scalar(select(AuditEvent).where(AuditEvent.action == "money.purchase"))
        if left == 0 and sealed is not None:
            break
        assert time.monotonic() < deadline, f"{left} audit rows still pending after 10 s"
        time.sleep(0.2)
    with unit_of_work(shop.rt.sessions) as db:
        assert audit.verify_chain(db).ok


@dataclass
class Lanes:
    """Two cards and four more terminals of the shop, for calling the batch function
    directly (its items are what `FastPurchases` builds; certificates are checked before)."""

    shop: Shop
    purse: dict[int, int]
    chips: dict[int, Card]
    lanes: list[tuple[Terminal, int]]
    x: int  # the card whose purse comes first in id order
    y: int
    dsn: str

    def item(self, card_id: int, lane: int, counter: int) -> dict[str, object]:
        terminal, takings = self.lanes[lane]
        chip = self.chips[card_id]
        return {"t": terminal.id, "k": terminal.key_id, "n": f.key(),
                "ik": f"t{terminal.id}:{f.key()}", "rh": "-", "ir": f.key(), "c": chip.id,
                "cn": chip.card_number, "u": chip.chip_uid, "v": chip.load_key_version,
                "a": 5, "cc": counter, "b": 0, "s": counter, "ct": 0, "cert": "00" * 8,
                "pa": self.purse[card_id], "ta": takings}

    def waiting(self, conn: psycopg.Connection[Any], n: int,
                unless: Callable[[], bool] = lambda: False) -> None:
        """Until n sessions of this database wait for a lock (or `unless` is true)."""
        deadline = time.monotonic() + 10
        while not unless() and conn.execute(
                "SELECT count(*) FROM pg_stat_activity WHERE wait_event_type = 'Lock' "
                "AND datname = current_database()").fetchone() != (n,):
            assert time.monotonic() < deadline, f"expected {n} sessions waiting on a lock"
            time.sleep(0.05)

    def balance(self, card_id: int) -> int:
        return int(self.shop.clerk.ok("GET", f"/cards/{card_id}/purse")["balance"])


@pytest.fixture
def lanes(shop: Shop) -> Lanes:
    cards = [chip_card(shop.clerk, 1_000) for _ in range(2)]
    made = [shop.clerk.ok("POST", f"/merchants/{shop.terminal['merchant_id']}/terminals",
                          {"label": f"Lane {i}"}, status=201) for i in range(4)]
    with unit_of_work(shop.rt.sessions) as db:
        purse = {c["id"]: db.scalar(select(Account.id).where(Account.card_id == c["id"]))
                 for c in cards}
        chips = {c["id"]: db.get(Card, c["id"]) for c in cards}
        lanes = [(db.get(Terminal, t["id"]), db.scalar(select(Account.id).where(
            Account.code == f"terminal:{t['id']}"))) for t in made]
        db.expunge_all()
    assert all(c is not None and c.load_key_version is not None for c in chips.values())
    assert max(purse.values()) < min(takings for _, takings in lanes)
    x, y = sorted(purse, key=purse.__getitem__)
    dsn = make_url(shop.rt.settings.database_url).set(drivername="postgresql") \
        .render_as_string(hide_password=False)
    return Lanes(shop, purse, chips, lanes, x, y, dsn)  # type: ignore[arg-type]


def test_batches_sharing_accounts_queue_instead_of_deadlocking(shop: Shop,
                                                                lanes: Lanes) -> None:
    """Two group-committed batches touching the same purses in opposite orders both book:
    each locks all its accounts first, in id order (before, PostgreSQL found a deadlock after
    a second and both batches fell back to the slow path)."""
    hotlisted = shop.client.app.state.fast_purchases.hotlisted  # type: ignore[attr-defined]
    answers: dict[str, object] = {}
    x, y = lanes.x, lanes.y

    def book(name: str, items: list[dict[str, object]]) -> None:
        with psycopg.connect(lanes.dsn, autocommit=True) as conn:
            try:
                row = conn.execute(CALL, call_args(items, hotlisted)).fetchone()
                answers[name] = row[0] if row else None
            except psycopg.Error as e:
                answers[name] = e

    with psycopg.connect(lanes.dsn, autocommit=True) as watch, \
            psycopg.connect(lanes.dsn) as holder:
        # A third transaction (a counter top-up, say) holds x's purse while both arrive.
        holder.execute("SELECT 1 FROM accounts WHERE id = %s FOR UPDATE", (lanes.purse[x],))
        first = threading.Thread(target=book, args=(
            "first", [lanes.item(x, 0, 50), lanes.item(y, 1, 50)]))
        first.start()
        lanes.waiting(watch, 1)
        second = threading.Thread(target=book, args=(
            "second", [lanes.item(y, 2, 51), lanes.item(x, 3, 51)]))
        second.start()
        lanes.waiting(watch, 2)
        holder.rollback()
        first.join(30)
        second.join(30)
    for name in ("first", "second"):
        got = answers[name]
        assert isinstance(got, list) and len(got) == 2 and all(got), (name, got)
    assert lanes.balance(x) == lanes.balance(y) == 990


def test_a_batch_undone_by_a_deadlock_is_booked_one_by_one(shop: Shop, lanes: Lanes) -> None:
    """Another transaction that takes the same purses in the other order can still deadlock
    with a batch; PostgreSQL undoes the batch, and the fast path books its purchases one by
    one instead of sending them all the slow way."""
    fast = FastPurchases(shop.rt.settings, shop.rt.keys)
    answers: list[object] = []

    def run() -> None:
        async def go() -> None:
            try:
                answers.extend(await fast.book([lanes.item(lanes.x, 0, 60),
                                                lanes.item(lanes.y, 1, 60)]))
            except Exception as e:  # reported by the assertion below
                answers.append(e)
            finally:
                await fast.close()
        asyncio.run(go())

    with psycopg.connect(lanes.dsn, autocommit=True) as watch, \
            psycopg.connect(lanes.dsn) as other:
        other.execute("SET deadlock_timeout = '30s'")  # the batch is the one to give way
        other.execute("SELECT 1 FROM accounts WHERE id = %s FOR UPDATE",
                      (lanes.purse[lanes.y],))
        booking = threading.Thread(target=run)
        booking.start()
        lanes.waiting(watch, 1)  # the batch holds x's purse and waits for y's
        other.execute("SELECT 1 FROM accounts WHERE id = %s FOR UPDATE",
                      (lanes.purse[lanes.x],))  # returns once the batch was undone
        # The first purchase, alone now, waits for x's purse (unless the batch gave up).
        lanes.waiting(watch, 1, unless=lambda: not booking.is_alive())
        other.rollback()
        booking.join(30)
    assert len(answers) == 2 and all(isinstance(a, str) for a in answers), answers
    assert lanes.balance(lanes.x) == lanes.balance(lanes.y) == 995
