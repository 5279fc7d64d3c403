"""Points' scheduled work: expiring what awards left unused (daily, after midnight in
Asia/Taipei; `cardsvc events expire-points` does the same by hand)."""

from __future__ import annotations

from typing import Any

from celery import shared_task
from celery.schedules import crontab

from cardsvc.context import Actor
from cardsvc.db import unit_of_work
from cardsvc.points import service
from cardsvc.runtime import process_runtime

ACTOR = Actor.system("points-expiry")


@shared_task(name="cardsvc.points.tasks.expire_due")
def expire_due() -> list[int]:
    rt = process_runtime()
    with unit_of_work(rt.sessions) as db:
        return list(service.expire_due(rt.ctx(db, ACTOR)))


def beat(settings: Any) -> dict[str, dict[str, Any]]:
    return {"expire-due-points": {"task": "cardsvc.points.tasks.expire_due",
                                  "schedule": crontab(hour=0, minute=15)}}
