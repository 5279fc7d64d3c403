"""Statistics' scheduled work: folding the day's card changes into the monthly issuance
counts after the night's expiries (every report folds first too; this keeps the change rows
few when nobody asks for one)."""

from __future__ import annotations

from typing import Any

from celery import shared_task
from celery.schedules import crontab

from cardsvc.db import unit_of_work
from cardsvc.runtime import process_runtime
from cardsvc.stats.counts import fold


@shared_task(name="cardsvc.stats.tasks.fold_issuance_counts")
def fold_issuance_counts() -> int:
    with unit_of_work(process_runtime().sessions) as db:
        return fold(db)


def beat(settings: Any) -> dict[str, dict[str, Any]]:
    # After the expiry job at 00:05 Asia/Taipei (the worker's clock), which changes many cards.
    return {"fold-issuance-counts": {"task": "cardsvc.stats.tasks.fold_issuance_counts",
                                     "schedule": crontab(hour=0, minute=35)}}
