"""The worker (cardsvc.app.worker): its beat schedule has every domain's scheduled work."""

from __future__ import annotations


def test_the_beat_schedule_has_every_domains_work(rt) -> None:  # type: ignore[no-untyped-def]
    from cardsvc.app.worker import make_app
    schedule = make_app(rt.settings).conf.beat_schedule
    assert {"clear-the-business-day", "sweep-unfinished-runs", "purge-pos-replay-guards",
            "expire-due-cards", "purge-login-throttle",
            "purge-idempotency-answers"} <= set(schedule)
