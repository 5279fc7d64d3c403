"""The points ledger: entries sum to the balance, the earliest-expiring points are used
first, what is left of an award expires at the end of the following year, redemptions at
the counter are idempotent and refused whole."""

from __future__ import annotations

import datetime as dt

from sqlalchemy import func, select

from cardsvc.context import TAIPEI, Actor, Ctx
from cardsvc.db import unit_of_work
from cardsvc.points import rules
from cardsvc.points import service as points
from cardsvc.points.models import PointsEntry
from cardsvc.runtime import Runtime
from tests.support import factories as f
from tests.support.api import Api


def at(year: int, month: int, day: int) -> dt.datetime:
    return dt.datetime(year, month, day, 10, tzinfo=TAIPEI).astimezone(dt.UTC)


def test_points_expire_at_the_end_of_the_following_year_oldest_first(rt: Runtime,
                                                                      clerk: Api) -> None:
    holder = f.holder(clerk)["id"]

    def run(when: dt.datetime, fn):  # type: ignore[no-untyped-def]
        with unit_of_work(rt.sessions) as db:
            return fn(Ctx(db, rt.settings, rt.keys, Actor.system("tests"), now=when))

    assert rules.expires_on(dt.date(2025, 3, 1), 1) == dt.date(2026, 12, 31)
    run(at(2025, 3, 1), lambda c: points.award(c, holder, 30, "checkin:a", "2025 walk"))
    run(at(2026, 2, 1), lambda c: points.award(c, holder, 20, "checkin:b", "2026 walk"))
    item = run(at(2026, 2, 1), lambda c: points.add_item(c, "環保袋", 25, 5)).id
    run(at(2026, 6, 1), lambda c: points.redeem(c, holder, item, 1))  # 25 of the 2025 award

    assert run(at(2026, 6, 2), lambda c: points.expiring(c, holder)) == \
        (5, dt.date(2026, 12, 31))
    # Nothing is due before the year ends; on 2027-01-01 the 2025 award's last 5 go.
    assert run(at(2026, 12, 31), points.expire_due) == (0, 0)
    assert run(at(2027, 1, 1), points.expire_due) == (1, 5)
    assert run(at(2027, 1, 1), points.expire_due) == (0, 0)  # once
    assert run(at(2027, 1, 2), lambda c: points.balance(c, holder)) == 20
    assert run(at(2028, 1, 1), points.expire_due) == (1, 20)
    with rt.sessions() as db:
        assert db.scalar(select(func.sum(PointsEntry.points))
                         .where(PointsEntry.cardholder_id == holder)) == 0


def test_a_redemption_at_the_counter_is_idempotent_and_refused_whole(rt: Runtime, clerk: Api,
                                                                     supervisor: Api) -> None:
    holder = f.holder(clerk)["id"]
    with unit_of_work(rt.sessions) as db:
        points.award(Ctx(db, rt.settings, rt.keys, Actor.system("t")), holder, 40, "g:1", "t")
    mug = supervisor.ok("POST", "/rewards", {"name": "馬克杯", "points": 15, "stock": 3},
                        status=201)
    assert clerk.post("/rewards", {"name": "x", "points": 1, "stock": 1}).status_code == 403
    key = f.key()
    body = {"item_id": mug["id"], "quantity": 2}
    first = clerk.ok("POST", f"/cardholders/{holder}/points/redemptions", body, key=key)
    again = clerk.req("POST", f"/cardholders/{holder}/points/redemptions", body, key=key)
    assert again.headers.get("Idempotent-Replayed") == "true" and again.json() == first
    assert first["balance"] == 10
    r = clerk.req("POST", f"/cardholders/{holder}/points/redemptions",
                  {"item_id": mug["id"], "quantity": 1}, key=f.key())
    assert (r.status_code, r.json()["code"]) == (409, "points_insufficient")
    # Refused whole: the stock the refused redemption would have taken is still there.
    assert [i["stock"] for i in clerk.ok("GET", "/rewards") if i["id"] == mug["id"]] == [1]
    r = clerk.req("POST", f"/cardholders/{holder}/points/redemptions",
                  {"item_id": mug["id"], "quantity": 0}, key=f.key())
    assert r.status_code == 422
    # Points are never money: nothing of this touched the resident's purse accounts.
    statement = clerk.ok("GET", f"/cardholders/{holder}/points")
    assert [e["kind"] for e in statement["entries"]] == ["redeem", "award"]
