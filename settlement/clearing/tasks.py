"""Clearing as Celery tasks. They carry ids, never data; each is one transaction or a few,
idempotent, and safe to run twice or to be killed halfway: the database is the truth.

    run_window(date) -> chord( verify_partition(window, merchant) for each merchant )
                           -> finalize(window)            (clear, then settle)
    daily()          -> run_window(the business day whose cut-off passed)   (celery beat)
    sweep()          -> dispatch again what a lost worker or chord callback left unfinished
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from celery import chord, group, shared_task
from celery.schedules import crontab
from sqlalchemy.exc import OperationalError

from cardsvc.config import Settings
from cardsvc.runtime import process_runtime, use_process_runtime
from settlement.clearing import service

use_runtime = use_process_runtime
runtime = process_runtime


RETRY = {"autoretry_for": (OperationalError,), "retry_backoff": True, "max_retries": 8,
         "acks_late": True, "reject_on_worker_lost": True}


@shared_task(name="settlement.tasks.verify_partition", **RETRY)
def verify_partition(window_id: int, merchant_id: int) -> int:
    return service.run_partition(runtime(), window_id, merchant_id)


@shared_task(name="settlement.tasks.finalize", **RETRY)
def finalize(window_id: int) -> str:
    return service.finish(runtime(), window_id)


def dispatch(window_id: int, merchants: list[int]) -> None:
    if merchants:
        chord(group(verify_partition.si(window_id, m) for m in merchants))(
            finalize.si(window_id))
    else:
        finalize.delay(window_id)


@shared_task(name="settlement.tasks.run_window", **RETRY)
def run_window(day: str) -> int | None:
    """Close the window of `day` (YYYY-MM-DD) and start its run, unless one was started."""
    started = service.start(runtime(), dt.date.fromisoformat(day))
    if started is None:
        return None
    dispatch(started.window_id, started.pending)
    return started.window_id


@shared_task(name="settlement.tasks.daily", **RETRY)
def daily() -> int | None:
    return run_window(service.due_day(runtime()).isoformat())


@shared_task(name="settlement.tasks.sweep", **RETRY)
def sweep(stale_seconds: int | None = None) -> list[int]:
    """Dispatch again every run unfinished for longer than `stale_seconds`."""
    redone = []
    for started in service.stale_runs(runtime(), stale_seconds):
        dispatch(started.window_id, started.pending)
        redone.append(started.window_id)
    return redone


def beat(settings: Settings) -> dict[str, dict[str, Any]]:
    """This domain's entries in the beat schedule (the worker collects them)."""
    start = (dt.datetime.combine(dt.date(2000, 1, 1), settings.clearing_cutoff)
             + dt.timedelta(minutes=settings.clearing_start_delay_minutes))
    return {
        "clear-the-business-day": {"task": "settlement.tasks.daily",
                                   "schedule": crontab(hour=start.hour, minute=start.minute)},
        "sweep-unfinished-runs": {"task": "settlement.tasks.sweep", "schedule": 300.0},
    }
