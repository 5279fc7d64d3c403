"""Sending the outbox every minute, through the sender the root bound (none bound: the
notices wait in the outbox until one is)."""

from __future__ import annotations

import logging
from typing import Any

from celery import shared_task

from cardsvc.config import Settings
from cardsvc.context import Actor
from cardsvc.db import unit_of_work
from cardsvc.notify import service
from cardsvc.runtime import process_runtime

ACTOR = Actor.system("notify")
log = logging.getLogger("cardsvc.notify")


@shared_task(name="cardsvc.notify.tasks.send")
def send() -> int:
    rt = process_runtime()
    sender: service.Sender | None = rt.services.find_or(service.Sender, None)
    if sender is None:
        log.warning("notices wait in the outbox: no sender is configured")
        return 0
    with unit_of_work(rt.sessions) as db:
        return service.deliver(rt.ctx(db, ACTOR), sender)


def beat(settings: Settings) -> dict[str, dict[str, Any]]:
    return {"send-notifications": {"task": "cardsvc.notify.tasks.send", "schedule": 60.0}}
