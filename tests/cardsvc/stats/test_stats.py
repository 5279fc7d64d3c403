"""Issuance statistics: by product, status and township, on Asia/Taipei business days."""

from __future__ import annotations

import datetime as dt
from collections import Counter

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


def test_kept_monthly_counts_agree_with_the_cards(clerk, supervisor, rt) -> None:  # type: ignore[no-untyped-def]
    """The report over whole months reads the kept counts; every change to a card or a move
    to another township must leave them equal to counting the cards themselves."""
    from cardsvc.db import unit_of_work
    from cardsvc.stats import service

    moved = f.holder(clerk, township="金湖鎮")
    cards = [f.active_card(clerk, moved["id"]),
             f.active_card(clerk, f.holder(clerk, township="金城鎮")["id"]),
             f.active_card(clerk, f.holder(clerk, age=70, township="烈嶼鄉")["id"], "senior")]
    # Spread the issues over three months, one of them a year back.
    days = [dt.datetime(2025, 11, 30, 17, 0, tzinfo=dt.UTC),  # 2025-12-01 in Taipei
            dt.datetime(2026, 1, 15, 3, 0, tzinfo=dt.UTC), None]
    with rt.engine.begin() as conn:
        for card, at in zip(cards, days, strict=True):
            if at is not None:
                conn.execute(update(Card).where(Card.id == card["id"]).values(issued_at=at))
    clerk.ok("POST", f"/cards/{cards[0]['id']}/suspend", {"kind": "lost", "reason": "lost"})
    clerk.ok("POST", f"/cards/{cards[0]['id']}/replace", {"reason": "lost",
                                                          "fee_payment": "cash"},
             key=f.key())
    clerk.ok("POST", f"/cards/{cards[1]['id']}/close", {"reason": "moving away"},
             key=f.key())
    clerk.ok("PATCH", f"/cardholders/{moved['id']}", {"township": "金沙鎮"})
    today = f.today()
    periods = [(dt.date(2025, 12, 1), dt.date(2025, 12, 31)),  # one whole month
               (dt.date(2025, 11, 15), today),  # partial, whole months, partial
               (dt.date(2025, 12, 1), today), (today.replace(day=1), today),
               (dt.date(2017, 1, 1), dt.date(2026, 12, 31)), (today, today)]
    with unit_of_work(rt.sessions) as db:
        for first, last in periods:
            assert service.counts(db, first, last) == service.live_counts(db, first, last), (
                first, last)
        everything = service.counts(db, dt.date(2017, 1, 1), dt.date(2026, 12, 31))
    assert everything[("general", "replaced", "金沙鎮")] == 1  # moved with its holder
    assert everything[("general", "closed", "金城鎮")] == 1
    assert sum(n for (_p, _s, town), n in everything.items() if town == "金湖鎮") == 0
    rep = supervisor.ok("GET", "/stats/issuance", **{"from": "2025-12-01", "to": "2025-12-31"})
    assert rep["total"] == 1 and rep["by_status"] == {"replaced": 1}


def test_the_nightly_fold_empties_the_changes_and_keeps_the_counts(clerk, rt) -> None:  # type: ignore[no-untyped-def]
    from sqlalchemy import func, select

    from cardsvc.app.worker import make_app
    from cardsvc.db import unit_of_work
    from cardsvc.runtime import use_process_runtime
    from cardsvc.stats import service, tasks
    from cardsvc.stats.models import IssuanceCountChange

    card = f.active_card(clerk, f.holder(clerk, township="金寧鄉")["id"])
    clerk.ok("POST", f"/cards/{card['id']}/suspend", {"kind": "lost", "reason": "lost"})
    month = f.today().replace(day=1)
    with unit_of_work(rt.sessions) as db:
        assert db.scalar(select(func.count()).select_from(IssuanceCountChange)) >= 3
    use_process_runtime(rt)
    try:
        assert tasks.fold_issuance_counts() >= 3
        assert tasks.fold_issuance_counts() == 0  # folded once
    finally:
        use_process_runtime(None)
    with unit_of_work(rt.sessions) as db:
        assert db.scalar(select(func.count()).select_from(IssuanceCountChange)) == 0
        kept = service.month_counts(db, month, service._next_month(month))
    assert kept == Counter({("general", "suspended", "金寧鄉"): 1})
    entry = make_app(rt.settings).conf.beat_schedule["fold-issuance-counts"]
    assert entry["task"] == "cardsvc.stats.tasks.fold_issuance_counts"
