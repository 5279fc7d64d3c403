"""E-invoice scheduled work: folding the day's invoice tally changes (one per invoice a
terminal reported, voided or gave an allowance) into the periods' tallies overnight, so a
check, which folds first too, finds only a day's worth to add; and telling the MOF platform
of ended 歸戶 bindings (a commit's own right after it, and every five minutes what the
platform did not take)."""

from __future__ import annotations

from typing import Any

from celery import shared_task
from celery.schedules import crontab

from cardsvc.db import unit_of_work
from cardsvc.einvoice import platform
from cardsvc.einvoice.check import TALLIES
from cardsvc.runtime import process_runtime


@shared_task(name="cardsvc.einvoice.tasks.fold_tallies")
def fold_tallies() -> int:
    with unit_of_work(process_runtime().sessions) as db:
        return TALLIES.fold(db)


@shared_task(name="cardsvc.einvoice.tasks.tell_platform")
def tell_platform(ids: list[int] | None = None) -> dict[str, int]:
    """Those unbindings (right after their commit), or every one still owed (the sweep)."""
    rt = process_runtime()
    told = platform.tell(rt.sessions, platform.platform_of(rt.services), ids)
    return {"told": told.told, "left": told.left}


def beat(settings: Any) -> dict[str, dict[str, Any]]:
    return {"fold-einvoice-tallies": {"task": "cardsvc.einvoice.tasks.fold_tallies",
                                      "schedule": crontab(hour=0, minute=45)},
            "tell-einvoice-platform": {"task": "cardsvc.einvoice.tasks.tell_platform",
                                       "schedule": 300.0}}
