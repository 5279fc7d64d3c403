"""Many taps at once, many counters at once: one check-in per resident, never more than the
capacity, never a negative points balance or stock. On SQLite and PostgreSQL, with real
threads, connections and commits."""

from __future__ import annotations

import datetime as dt
import threading
import time
from collections import Counter
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest
from sqlalchemy import func, select

from cardsvc.cards import schemas as cs
from cardsvc.cards import service as cards
from cardsvc.context import Actor, Ctx
from cardsvc.db import unit_of_work
from cardsvc.errors import DomainError
from cardsvc.events import schemas as s
from cardsvc.events import service as events
from cardsvc.events.models import CheckIn
from cardsvc.holders import schemas as hs
from cardsvc.holders import service as holders
from cardsvc.points import service as points
from cardsvc.points.models import PointsAccount, PointsEntry, RewardItem
from cardsvc.runtime import Runtime
from tests.support import factories as f
from tests.support.databases import Backend

WORKERS = 24


# "sqlite" is the suite's own database (PostgreSQL in a --database-tests-only pass on it);
# asking for `backend` marks these tests as running on it.
@pytest.fixture(params=["sqlite", "postgresql"])
def any_rt(request: pytest.FixtureRequest, backend: Backend) -> Runtime:
    name = "pg_runtime" if request.param == "postgresql" else "rt"
    rt: Runtime = request.getfixturevalue(name)
    return rt


def in_tx(rt: Runtime, fn: Callable[[Ctx], Any], who: str = "tests") -> Any:
    with unit_of_work(rt.sessions) as db:
        return fn(Ctx(db, rt.settings, rt.keys, Actor(None, who, "admin")))


def phone_resident(rt: Runtime) -> tuple[Any, str, int]:
    private, public = f.phone_key()

    def make(ctx: Ctx) -> tuple[str, int]:
        h = holders.register(ctx, hs.CardholderCreate(
            name="並行簽到", person_id=f.new_person_id(), birth_date=f.years_ago(30),
            township="金湖鎮"))
        card = cards.apply(ctx, cs.CardApplication(
            cardholder_id=h.id, product="mobile", device_id=f"ph-{f.key()[:10]}",
            device_public_key=public))
        cards.issue(ctx, card.id, cs.IssueRequest())
        cards.simple_transition(ctx, card.id, "activate", "test")
        return card.card_number, h.id
    number, holder_id = in_tx(rt, make)
    return private, number, holder_id


def new_event(rt: Runtime, **over: Any) -> int:
    now = dt.datetime.now(dt.UTC)
    body = s.EventCreate(**{
        "title": "並行活動", "department": "文化局", "venue": "金城", "starts_at": now,
        "ends_at": now + dt.timedelta(hours=2), "checkin_opens": now - dt.timedelta(minutes=1),
        "checkin_closes": now + dt.timedelta(hours=1), "points": 7, **over})
    event_id: int = in_tx(rt, lambda ctx: events.create(ctx, body).id)
    in_tx(rt, lambda ctx: events.publish(ctx, event_id))
    return event_id


def tap(rt: Runtime, event_id: int, private: Any, number: str, barrier: threading.Barrier
        ) -> str:
    req = s.CheckinRequest(proof=s.PhoneProof(method="phone", token=events.make_phone_token(
        private, number, event_id, time.time())), station="gate")
    barrier.wait()
    try:
        in_tx(rt, lambda ctx: events.check_in(ctx, event_id, req))
        return "ok"
    except DomainError as exc:
        return exc.code


def test_concurrent_taps_of_one_resident_check_in_once(any_rt: Runtime) -> None:
    rt = any_rt
    event_id = new_event(rt)
    private, number, holder_id = phone_resident(rt)
    barrier = threading.Barrier(WORKERS)
    with ThreadPoolExecutor(WORKERS) as pool:
        results = Counter(pool.map(lambda _: tap(rt, event_id, private, number, barrier),
                                   range(WORKERS)))
    assert results == {"ok": 1, "checkin_already": WORKERS - 1}
    with rt.sessions() as db:
        assert db.scalar(select(func.count()).select_from(CheckIn)
                         .where(CheckIn.event_id == event_id)) == 1
        account = db.get(PointsAccount, holder_id)
        assert account is not None and account.balance == 7


def test_concurrent_taps_never_pass_the_capacity(any_rt: Runtime) -> None:
    rt = any_rt
    event_id = new_event(rt, capacity=5)
    people = [phone_resident(rt) for _ in range(12)]
    barrier = threading.Barrier(len(people))
    with ThreadPoolExecutor(len(people)) as pool:
        results = Counter(pool.map(lambda p: tap(rt, event_id, p[0], p[1], barrier), people))
    assert results == {"ok": 5, "checkin_event_full": 7}
    with rt.sessions() as db:
        assert db.scalar(select(func.count()).select_from(CheckIn)
                         .where(CheckIn.event_id == event_id)) == 5


def test_concurrent_redemptions_never_overspend_points_or_stock(any_rt: Runtime) -> None:
    rt = any_rt
    rich, poor = phone_resident(rt)[2], phone_resident(rt)[2]
    in_tx(rt, lambda ctx: points.award(ctx, rich, 1000, "grant:rich", "test"))
    in_tx(rt, lambda ctx: points.award(ctx, poor, 50, "grant:poor", "test"))
    bag = in_tx(rt, lambda ctx: points.add_item(ctx, "環保袋", 20, 6).id)
    cup = in_tx(rt, lambda ctx: points.add_item(ctx, "馬克杯", 10, 100).id)
    barrier = threading.Barrier(WORKERS)

    def redeem(args: tuple[int, int]) -> str:
        holder, item = args
        barrier.wait()
        try:
            in_tx(rt, lambda ctx: points.redeem(ctx, holder, item, 1), who="counter")
            return f"ok-{holder}-{item}"
        except DomainError as exc:
            return exc.code

    work = [(rich, bag)] * 12 + [(poor, cup)] * 12
    with ThreadPoolExecutor(WORKERS) as pool:
        results = Counter(pool.map(redeem, work))
    # The bag's stock (6) limits the rich resident; the poor one's 50 points buy 5 cups.
    assert results == {f"ok-{rich}-{bag}": 6, "reward_out_of_stock": 6,
                       f"ok-{poor}-{cup}": 5, "points_insufficient": 7}
    with rt.sessions() as db:
        assert db.get(RewardItem, bag).stock == 0  # type: ignore[union-attr]
        assert db.get(RewardItem, cup).stock == 95  # type: ignore[union-attr]
        for holder, left in ((rich, 1000 - 6 * 20), (poor, 0)):
            assert db.get(PointsAccount, holder).balance == left  # type: ignore[union-attr]
            assert db.scalar(select(func.sum(PointsEntry.points))
                             .where(PointsEntry.cardholder_id == holder)) == left
