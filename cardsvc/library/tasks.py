"""Libraries' scheduled work: pushing each feed to its webhook.

A change hands its library to `deliver` right after its commit (the root's notifier); the
sweep every 30 s picks up what is due again after a failure's backoff, and whatever a lost
worker left. Deliveries of one library never overlap (the feed's claim)."""

from __future__ import annotations

from typing import Any

from celery import shared_task

from cardsvc.config import Settings
from cardsvc.db import utcnow
from cardsvc.library import webhooks
from cardsvc.runtime import process_runtime


@shared_task(name="cardsvc.library.tasks.deliver", acks_late=True)
def deliver(library_id: int) -> dict[str, Any]:
    rt = process_runtime()
    out = webhooks.deliver(rt.sessions, rt.settings, rt.keys, library_id,
                           webhooks.HttpTransport())
    app = deliver.app
    if out.retry_in is not None and not app.conf.task_always_eager:
        deliver.apply_async((library_id,), countdown=out.retry_in)
    return {"delivered": out.delivered, "state": out.state}


@shared_task(name="cardsvc.library.tasks.sweep")
def sweep() -> list[int]:
    rt = process_runtime()
    with rt.sessions() as db:
        ids = webhooks.due(db, utcnow())
    for library_id in ids:
        deliver.delay(library_id)
    return ids


def beat(settings: Settings) -> dict[str, dict[str, Any]]:
    return {"push-library-feeds": {"task": "cardsvc.library.tasks.sweep", "schedule": 30.0}}
