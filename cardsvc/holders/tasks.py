"""Residents' scheduled work: erasing the personal data retention says is due (daily, in the
night, Asia/Taipei), only where the deployment turned it on (`retention_scheduled`);
`cardsvc retention run` does the same by hand, after a dry run."""

from __future__ import annotations

from typing import Any

from celery import shared_task
from celery.schedules import crontab

from cardsvc.context import Actor
from cardsvc.holders import retention
from cardsvc.runtime import process_runtime

ACTOR = Actor.system("retention")


@shared_task(name="cardsvc.holders.tasks.erase_due")
def erase_due() -> int:
    rt = process_runtime()
    # Checked here too: a task queued by hand must not erase where the county has not
    # decided to erase on a schedule.
    if not rt.settings.retention_scheduled:
        return 0
    return retention.run(rt, ACTOR, rt.settings.retention_years).erased


def beat(settings: Any) -> dict[str, dict[str, Any]]:
    if not settings.retention_scheduled:
        return {}
    return {"erase-due-residents": {"task": "cardsvc.holders.tasks.erase_due",
                                    "schedule": crontab(hour=3, minute=30)}}
