"""The POS domain's scheduled work: forgetting what can no longer be replayed.

A signed request's nonce is kept only as long as its timestamp could still pass the clock
check, and a spent QR token only as long as the token could still be fresh: past that, the
clock refuses a replay before the table is asked.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from celery import shared_task
from sqlalchemy import delete

from cardsvc.context import Actor, Ctx
from cardsvc.db import unit_of_work
from cardsvc.runtime import process_runtime
from merchants.pos import auth
from merchants.pos.models import QrTokenUse

ACTOR = Actor.system("pos-housekeeping")
# Slack beyond the exact bound, for clocks and for a task that runs a little late.
MARGIN = dt.timedelta(seconds=60)
QR_CLOCK_SKEW = dt.timedelta(seconds=30)  # how far a token may be dated ahead (token_fresh)


def purge_spent_tokens(ctx: Ctx) -> int:
    """Spent QR tokens that could no longer be fresh: a token lives `qr_token_ttl_seconds`
    from its issue, and may be issued up to 30 s ahead of our clock."""
    cutoff = ctx.now - dt.timedelta(seconds=ctx.settings.qr_token_ttl_seconds) \
        - QR_CLOCK_SKEW - MARGIN
    result = ctx.db.execute(delete(QrTokenUse).where(QrTokenUse.used_at < cutoff))
    return int(getattr(result, "rowcount", 0) or 0)


@shared_task(name="merchants.pos.tasks.purge_replay_guards")
def purge_replay_guards() -> dict[str, int]:
    rt = process_runtime()
    with unit_of_work(rt.sessions) as db:
        ctx = rt.ctx(db, ACTOR)
        return {"nonces": auth.purge_nonces(ctx), "qr_tokens": purge_spent_tokens(ctx)}


def beat(settings: Any) -> dict[str, dict[str, Any]]:
    return {"purge-pos-replay-guards": {"task": "merchants.pos.tasks.purge_replay_guards",
                                        "schedule": 600.0}}
