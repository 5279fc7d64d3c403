"""Cards' scheduled work: expiring cards whose validity or concession ended (daily, after
midnight in Asia/Taipei; `cardsvc cards expire-due` does the same by hand)."""

from __future__ import annotations

from typing import Any

from celery import shared_task
from celery.schedules import crontab

from cardsvc.cards import service
from cardsvc.context import Actor
from cardsvc.db import unit_of_work
from cardsvc.runtime import process_runtime

ACTOR = Actor.system("expiry-job")


@shared_task(name="cardsvc.cards.tasks.expire_due")
def expire_due() -> int:
    rt = process_runtime()
    with unit_of_work(rt.sessions) as db:
        return service.expire_due(rt.ctx(db, ACTOR))


def beat(settings: Any) -> dict[str, dict[str, Any]]:
    # The worker's clock is Asia/Taipei (cardsvc.app.worker): five past midnight there.
    return {"expire-due-cards": {"task": "cardsvc.cards.tasks.expire_due",
                                 "schedule": crontab(hour=0, minute=5)}}
