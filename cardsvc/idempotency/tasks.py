"""Idempotency's scheduled work: answers kept for retries are dropped once no counter or
terminal could still be retrying (`CARDSVC_IDEMPOTENCY_RETENTION_DAYS`). The work they
answered stays where it is: the transfers, postings and audit rows are kept for good."""

from __future__ import annotations

import datetime as dt
from typing import Any

from celery import shared_task
from sqlalchemy import delete
from sqlalchemy.orm import Session

from cardsvc.config import Settings
from cardsvc.db import unit_of_work, utcnow
from cardsvc.idempotency.models import IdempotencyRecord
from cardsvc.runtime import process_runtime


def purge(db: Session, settings: Settings, now: dt.datetime) -> int:
    cutoff = now - dt.timedelta(days=settings.idempotency_retention_days)
    result = db.execute(delete(IdempotencyRecord).where(IdempotencyRecord.created_at < cutoff))
    return int(getattr(result, "rowcount", 0) or 0)


@shared_task(name="cardsvc.idempotency.tasks.purge_old_answers")
def purge_old_answers() -> int:
    rt = process_runtime()
    with unit_of_work(rt.sessions) as db:
        return purge(db, rt.settings, utcnow())


def beat(settings: Settings) -> dict[str, dict[str, Any]]:
    return {"purge-idempotency-answers": {"task": "cardsvc.idempotency.tasks.purge_old_answers",
                                          "schedule": 86_400.0}}
