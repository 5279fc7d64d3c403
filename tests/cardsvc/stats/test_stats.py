"""Issuance statistics: by product, status and township, on Asia/Taipei business days."""

from __future__ import annotations

import datetime as dt

from sqlalchemy import update

from cardsvc.cards.models import Card
from tests.support import factories as f


def test_counts_by_product_status_and_township(clerk, supervisor, rt) -> None:  # type: ignore[no-untyped-def]
    a = f.active_card(clerk, f.holder(clerk, township="金湖鎮")["id"])
    f.active_card(clerk, f.holder(clerk, township="金湖鎮")["id"])
    f.active_card(clerk, f.holder(clerk, age=70, township="烈嶼鄉")["id"], "senior")
    clerk.ok("POST", f"/cards/{a['id']}/suspend", {"kind": "lost", "reason": "lost"})
    clerk.ok("POST", "/cards/applications", {"cardholder_id": f.holder(clerk)["id"],
                                             "product": "general"}, status=201)  # not issued
    t = f.today().isoformat()
    rep = supervisor.ok("GET", "/stats/issuance", **{"from": t, "to": t})
    assert rep["total"] == 3
    assert rep["by_product"] == {"general": 2, "senior": 1}
    assert rep["by_township"] == {"金湖鎮": 2, "烈嶼鄉": 1}
    assert rep["by_status"] == {"active": 2, "suspended": 1}


def test_business_day_is_taipei(clerk, supervisor, rt) -> None:  # type: ignore[no-untyped-def]
    card = f.active_card(clerk, f.holder(clerk)["id"])
    # 2018-01-01 00:30 in Taipei is still 2017-12-31 in UTC.
    at = dt.datetime(2017, 12, 31, 16, 30, tzinfo=dt.UTC)
    with rt.engine.begin() as conn:
        conn.execute(update(Card).where(Card.id == card["id"]).values(issued_at=at))
    jan = supervisor.ok("GET", "/stats/issuance", **{"from": "2018-01-01", "to": "2018-01-31"})
    dec = supervisor.ok("GET", "/stats/issuance", **{"from": "2017-12-01", "to": "2017-12-31"})
    assert jan["total"] == 1 and dec["total"] == 0


def test_reversed_range_is_refused(supervisor) -> None:  # type: ignore[no-untyped-def]
    r = supervisor.get("/stats/issuance", **{"from": "2018-02-01", "to": "2018-01-01"})
    assert r.status_code == 422
