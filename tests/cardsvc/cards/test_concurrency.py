"""Many counters at once: concurrent debits of one purse never overspend; concurrent retries
with one idempotency key charge once. Runs on SQLite (the embedded default) and on
PostgreSQL (production), with real threads, connections and commits."""

from __future__ import annotations

import threading
from collections import Counter
from concurrent.futures import ThreadPoolExecutor

import pytest
from sqlalchemy import func, select

from cardsvc.cards import purse as money
from cardsvc.cards import schemas as s
from cardsvc.cards import service as cards
from cardsvc.context import Actor, Ctx
from cardsvc.db import unit_of_work
from cardsvc.errors import DomainError
from cardsvc.holders import schemas as hs
from cardsvc.holders import service as holders
from cardsvc.idempotency.service import idempotent
from cardsvc.ledger.models import Account, Posting, Transfer
from cardsvc.runtime import Runtime
from tests.support import factories as f
from tests.support.databases import Backend

WORKERS = 60
DEBIT = 200


# "sqlite" is the suite's own database (PostgreSQL in a --database-tests-only pass on it);
# asking for `backend` marks these tests as running on it.
@pytest.fixture(params=["sqlite", "postgresql"])
def any_rt(request: pytest.FixtureRequest, backend: Backend) -> Runtime:
    if request.param == "postgresql":
        rt: Runtime = request.getfixturevalue("pg_runtime")
        return rt
    rt = request.getfixturevalue("rt")
    return rt


def funded_card(rt: Runtime, balance: int) -> int:
    actor = Actor.system("tests")
    with unit_of_work(rt.sessions) as db:
        ctx = Ctx(db, rt.settings, rt.keys, actor)
        h = holders.register(ctx, hs.CardholderCreate(
            name="並行測試", person_id=f.new_person_id(), birth_date=f.years_ago(30),
            township="金湖鎮"))
        card = cards.apply(ctx, s.CardApplication(cardholder_id=h.id, product="general"))
        cards.issue(ctx, card.id, s.IssueRequest(chip_uid=f.uid()))
        cards.simple_transition(ctx, card.id, "activate", "test")
        money.topup(ctx, card.id, s.TopUpRequest(amount=balance))
        return card.id


def test_concurrent_debits_never_overspend(any_rt: Runtime) -> None:
    rt = any_rt
    card_id = funded_card(rt, 10_000)  # exactly 50 debits of NT$200 fit
    barrier = threading.Barrier(WORKERS)

    def debit(i: int) -> str:
        barrier.wait()
        try:
            with unit_of_work(rt.sessions) as db:
                ctx = Ctx(db, rt.settings, rt.keys, Actor(None, f"pos-{i}", "clerk"))
                money.charge(ctx, card_id, s.ChargeRequest(amount=DEBIT,
                                                           description=f"debit {i}"))
            return "ok"
        except DomainError as exc:
            return exc.code

    with ThreadPoolExecutor(WORKERS) as pool:
        results = Counter(pool.map(debit, range(WORKERS)))
    assert results == {"ok": 50, "insufficient_funds": WORKERS - 50}
    with rt.sessions() as db:
        purse = db.scalar(select(Account).where(Account.card_id == card_id))
        assert purse is not None and purse.balance == 0
        posted = db.scalar(select(func.sum(Posting.amount)).where(Posting.account_id == purse.id))
        assert posted == 0
        lowest = db.scalar(select(func.min(Posting.balance_after))
                           .where(Posting.account_id == purse.id))
        assert lowest == 0  # no posting ever left the purse negative


def test_concurrent_retries_with_one_key_charge_once(any_rt: Runtime) -> None:
    rt = any_rt
    card_id = funded_card(rt, 1_000)
    key = f.key()
    n = 20
    barrier = threading.Barrier(n)

    def retry(_: int) -> tuple[int, bool]:
        barrier.wait()
        with unit_of_work(rt.sessions) as db:
            ctx = Ctx(db, rt.settings, rt.keys, Actor(None, "counter-pc", "clerk"))
            body = s.ChargeRequest(amount=300, description="one fee, sent many times")
            res = idempotent(ctx, key, "purse.charge", {"card_id": card_id,
                                                        **body.model_dump()},
                             lambda: money.charge(ctx, card_id, body))
            return res.body["balance"], res.replayed

    with ThreadPoolExecutor(n) as pool:
        results = list(pool.map(retry, range(n)))
    assert {b for b, _ in results} == {700}
    assert sum(1 for _, replayed in results if not replayed) == 1
    with rt.sessions() as db:
        charges = db.scalar(select(func.count()).select_from(Transfer)
                            .where(Transfer.kind == "charge", Transfer.card_id == card_id))
    assert charges == 1


def test_mixed_counter_operations_never_deadlock(any_rt: Runtime) -> None:
    """Top-ups, charges and replacements on many cards at once, as a busy counter day: only
    domain refusals, never a database error; the ledger balances and the audit chain holds."""
    from cardsvc.audit import service as audit
    rt = any_rt
    cards_ids = [funded_card(rt, 2_000) for _ in range(6)]
    live = list(cards_ids)
    lock = threading.Lock()
    errors: list[str] = []

    def work(i: int) -> str:
        with lock:
            card_id = live[i % len(live)]
        try:
            with unit_of_work(rt.sessions) as db:
                ctx = Ctx(db, rt.settings, rt.keys, Actor(None, f"counter-{i % 4}", "clerk"))
                op = i % 3
                if op == 0:
                    money.topup(ctx, card_id, s.TopUpRequest(amount=10))
                elif op == 1:
                    money.charge(ctx, card_id, s.ChargeRequest(amount=7, description="fee"))
                else:
                    new = cards.replace(ctx, card_id, s.ReplaceRequest(
                        reason="damaged", chip_uid=f.uid(), fee_payment="cash"))
                    with lock:
                        live[live.index(card_id)] = new.new_card.id
            return "ok"
        except DomainError as exc:
            return exc.code
        except Exception as exc:
            errors.append(f"{type(exc).__name__}: {exc}")
            return "error"

    with ThreadPoolExecutor(8) as pool:
        results = Counter(pool.map(work, range(150)))
    assert errors == [], errors[:3]
    assert results["ok"] > 50
    with rt.sessions() as db:
        assert (db.scalar(select(func.sum(Account.balance))) or 0) == 0
        assert (db.scalar(select(func.min(Account.balance)).where(
            Account.kind == "card_purse")) or 0) >= 0
        assert audit.verify_chain(db).ok
