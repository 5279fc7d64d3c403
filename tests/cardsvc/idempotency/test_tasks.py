"""Tables that would only grow get a rule: idempotency answers are purged by a scheduled
task after CARDSVC_IDEMPOTENCY_RETENTION_DAYS, and the money they answered for stays."""

from __future__ import annotations

import datetime as dt

from sqlalchemy import func, select, text

from cardsvc.idempotency.models import IdempotencyRecord
from tests.support import factories as f


def test_idempotency_answers_go_after_their_retention_and_the_money_stays(  # type: ignore[no-untyped-def]
        rt, clerk, tasks_here) -> None:
    from cardsvc.idempotency.tasks import purge_old_answers
    card = f.active_card(clerk, f.holder(clerk)["id"])
    f.topup(clerk, card["id"], 300)
    f.topup(clerk, card["id"], 200)
    with rt.sessions.begin() as db:
        first = db.scalars(select(IdempotencyRecord).order_by(IdempotencyRecord.created_at)
                           ).first()
        assert first is not None
        first.created_at = dt.datetime.now(dt.UTC) - dt.timedelta(
            days=rt.settings.idempotency_retention_days, minutes=1)
    assert purge_old_answers() == 1
    with rt.sessions() as db:
        assert db.scalar(select(func.count()).select_from(IdempotencyRecord)) == 1
        assert db.execute(text("SELECT COUNT(*) FROM transfers WHERE kind = 'topup'")
                          ).scalar_one() == 2
    assert clerk.ok("GET", f"/cards/{card['id']}/purse")["balance"] == 500
