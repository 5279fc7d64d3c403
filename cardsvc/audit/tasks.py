"""The audit trail's scheduled work: the day's signed checkpoint (`cardsvc audit checkpoint`
does the same by hand), written to `CARDSVC_AUDIT_CHECKPOINT_DIR` for the ethics office to
copy off the host."""

from __future__ import annotations

from typing import Any

from celery import shared_task
from celery.schedules import crontab

from cardsvc.audit import checkpoints, service
from cardsvc.context import Actor
from cardsvc.db import unit_of_work
from cardsvc.runtime import process_runtime

ACTOR = Actor.system("audit-checkpoint")


@shared_task(name="cardsvc.audit.tasks.write_checkpoint")
def write_checkpoint() -> str:
    """The checkpoint's file name. Sealing first in transactions of its own keeps the chain
    head free while the checkpoint's walk reads the whole trail."""
    rt = process_runtime()
    service.seal_all(rt.sessions)
    with unit_of_work(rt.sessions) as db:
        written = checkpoints.write(rt.ctx(db, ACTOR), rt.settings.audit_checkpoint_dir)
    return written.json_path.name


def beat(settings: Any) -> dict[str, dict[str, Any]]:
    # The worker's clock is Asia/Taipei (cardsvc.app.worker): the day's last minutes, so the
    # checkpoint is dated the day whose rows it closes; the few rows after it fall to the next.
    return {"audit-checkpoint": {"task": "cardsvc.audit.tasks.write_checkpoint",
                                 "schedule": crontab(hour=23, minute=55)}}
