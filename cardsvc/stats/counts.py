"""Folding the triggers' changes into the monthly issuance counts.

The database triggers (migration 8a1c5e0d4b27) append a change row for every issue, state
change and move to another township, in the transaction of the change. Folding adds them to
`issuance_counts` and removes them: a report folds first, so what it reads is exact, and a
nightly task keeps the change rows few when nobody asks for a report.
"""

from __future__ import annotations

from sqlalchemy import func, select, text
from sqlalchemy.orm import Session

from cardsvc.stats.models import IssuanceCountChange

# One statement on PostgreSQL: the changes it removes are exactly those it adds (a change
# committed meanwhile waits for the next fold), and the counts are locked in key order, so
# two folds cannot deadlock; the advisory lock makes them take turns anyway.
_PG_FOLD = text(
    "WITH moved AS (DELETE FROM issuance_count_changes "
    "RETURNING month, product, status, township, delta) "
    "INSERT INTO issuance_counts (month, product, status, township, cards) "
    "SELECT month, product, status, township, CAST(sum(delta) AS INTEGER) FROM moved "
    "GROUP BY month, product, status, township ORDER BY month, product, status, township "
    "ON CONFLICT (month, product, status, township) "
    "DO UPDATE SET cards = issuance_counts.cards + excluded.cards")
_PG_TURN = text("SELECT pg_advisory_xact_lock(hashtext('cardsvc.issuance_counts'))")

# SQLite has one writer at a time: from the first statement on, no other change can commit
# before this transaction ends.
_SQLITE_ADD = text(
    "INSERT INTO issuance_counts (month, product, status, township, cards) "
    "SELECT month, product, status, township, sum(delta) FROM issuance_count_changes "
    "WHERE id <= :last GROUP BY month, product, status, township "
    "ON CONFLICT (month, product, status, township) "
    "DO UPDATE SET cards = issuance_counts.cards + excluded.cards")
_SQLITE_REMOVE = text("DELETE FROM issuance_count_changes WHERE id <= :last")


def fold(db: Session) -> int:
    """Add the pending changes into the monthly counts, in the caller's transaction; how
    many change rows there were."""
    if db.get_bind().dialect.name == "postgresql":
        db.execute(_PG_TURN)
        pending = int(db.scalar(select(func.count()).select_from(IssuanceCountChange)) or 0)
        if pending:
            db.execute(_PG_FOLD)
        return pending
    last = db.scalar(select(func.max(IssuanceCountChange.id)))
    if last is None:
        return 0
    pending = int(db.scalar(select(func.count()).select_from(IssuanceCountChange)
                            .where(IssuanceCountChange.id <= last)) or 0)
    db.execute(_SQLITE_ADD, {"last": last})
    db.execute(_SQLITE_REMOVE, {"last": last})
    return pending
