"""Staff accounts' scheduled work: forgetting old login failures and sources, and the
revocations of tokens that have expired anyway."""

from __future__ import annotations

from typing import Any

from celery import shared_task

from cardsvc.db import unit_of_work, utcnow
from cardsvc.runtime import process_runtime
from cardsvc.staff import service, throttle


@shared_task(name="cardsvc.staff.tasks.purge_login_throttle")
def purge_login_throttle() -> int:
    rt = process_runtime()
    with unit_of_work(rt.sessions) as db:
        return throttle.purge(db, rt.settings, utcnow())


@shared_task(name="cardsvc.staff.tasks.purge_revoked_tokens")
def purge_revoked_tokens() -> int:
    rt = process_runtime()
    with unit_of_work(rt.sessions) as db:
        return service.purge_revoked(db, utcnow())


def beat(settings: Any) -> dict[str, dict[str, Any]]:
    return {"purge-login-throttle": {"task": "cardsvc.staff.tasks.purge_login_throttle",
                                     "schedule": 3600.0},
            "purge-revoked-tokens": {"task": "cardsvc.staff.tasks.purge_revoked_tokens",
                                     "schedule": 3600.0}}
