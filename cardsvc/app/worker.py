"""The Celery application: every domain's tasks, and the beat schedule their `beat()` give.

Embedded default (no `CARDSVC_BROKER_URL`): tasks run in-process, eagerly, with no broker.
Production: `CARDSVC_BROKER_URL=redis://host:6379/0`; results (the chord's bookkeeping) go to
`CARDSVC_RESULT_BACKEND`, by default the same Redis. Run a worker and beat:

    celery -A cardsvc.app.worker worker --loglevel=INFO
    celery -A cardsvc.app.worker beat --loglevel=INFO
"""

from __future__ import annotations

import importlib
from typing import Any

from celery import Celery

from cardsvc.app.bootstrap import build_runtime
from cardsvc.config import BUSINESS_TZ, Settings, get_settings
from cardsvc.runtime import build_process_runtime_with

# Each module defines its tasks with `shared_task` (explicit names: a task's name is its wire
# format) and a `beat(settings)` with its schedule entries.
TASK_MODULES = ("settlement.clearing.tasks", "merchants.pos.tasks", "cardsvc.cards.tasks",
                "cardsvc.holders.tasks",
                "cardsvc.staff.tasks", "cardsvc.idempotency.tasks", "cardsvc.library.tasks",
                "cardsvc.notify.tasks", "cardsvc.points.tasks", "cardsvc.audit.tasks",
                "cardsvc.stats.tasks", "cardsvc.einvoice.tasks")


def beat_schedule(settings: Settings) -> dict[str, dict[str, Any]]:
    schedule: dict[str, dict[str, Any]] = {}
    for name in TASK_MODULES:
        schedule.update(importlib.import_module(name).beat(settings))
    return schedule


def make_app(settings: Settings) -> Celery:
    app = Celery("cardsvc", include=list(TASK_MODULES))
    conf: dict[str, object] = {
        "timezone": BUSINESS_TZ,
        "enable_utc": True,
        "task_serializer": "json",
        "accept_content": ["json"],
        "result_serializer": "json",
        # The database is the truth; a task is acknowledged only when its transaction has
        # committed, and one lost with its worker goes back to the queue.
        "task_acks_late": True,
        "task_reject_on_worker_lost": True,
        "worker_prefetch_multiplier": 1,
        "broker_connection_retry_on_startup": True,
        "result_expires": 7 * 86_400,
        "task_default_queue": settings.celery_queue,
    }
    if settings.broker_url:
        conf["broker_url"] = settings.broker_url
        conf["result_backend"] = settings.result_backend or settings.broker_url
    else:
        conf.update(task_always_eager=True, task_eager_propagates=True,
                    broker_url="memory://", result_backend="cache+memory://")
    conf["beat_schedule"] = beat_schedule(settings)
    app.conf.update(conf)
    app.set_default()
    return app


# A worker's tasks run on the runtime the root builds (the process builds it on first use).
build_process_runtime_with(build_runtime)
app = make_app(get_settings())
