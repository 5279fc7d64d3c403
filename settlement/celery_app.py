"""The Celery application of daily clearing.

Embedded default (no `CARDSVC_BROKER_URL`): tasks run in-process, eagerly, with no broker.
Production: `CARDSVC_BROKER_URL=redis://host:6379/0`; results (the chord's bookkeeping) go to
`CARDSVC_RESULT_BACKEND`, by default the same Redis. Run a worker and beat:

    celery -A settlement.celery_app worker --loglevel=INFO
    celery -A settlement.celery_app beat --loglevel=INFO
"""

from __future__ import annotations

import datetime as dt

from celery import Celery
from celery.schedules import crontab

from cardsvc.config import BUSINESS_TZ, Settings, get_settings

TASKS = "settlement.tasks"


def make_app(settings: Settings) -> Celery:
    app = Celery("cardsvc", include=[TASKS])
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
    start = (dt.datetime.combine(dt.date(2000, 1, 1), settings.clearing_cutoff)
             + dt.timedelta(minutes=settings.clearing_start_delay_minutes))
    conf["beat_schedule"] = {
        "clear-the-business-day": {"task": f"{TASKS}.daily",
                                   "schedule": crontab(hour=start.hour, minute=start.minute)},
        "sweep-unfinished-runs": {"task": f"{TASKS}.sweep", "schedule": 300.0},
    }
    app.conf.update(conf)
    return app


app = make_app(get_settings())
