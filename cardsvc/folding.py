"""Counts kept by triggers as change rows, folded into their totals.

Some reports need a count over millions of rows (cards issued per month, a period's invoices
by exclusion reason). Database triggers append a change row (its keys and a delta) in the
transaction of each change: only inserts, so concurrent writers never wait on a shared
count. Folding adds the pending changes into the totals table and removes them; a report folds
first, so what it reads is exact, and a nightly task keeps the change rows few.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from sqlalchemy import text
from sqlalchemy.orm import Session


@dataclass(frozen=True)
class FoldedCount:
    """A totals table keyed by `keys` with its `total` column, and its change table (an id,
    the same keys and a `delta`)."""

    totals: str
    changes: str
    keys: Sequence[str]
    total: str

    def fold(self, db: Session) -> int:
        """Add the pending changes into the totals, in the caller's transaction; how many
        change rows there were."""
        keys = ", ".join(self.keys)
        add = (f"INSERT INTO {self.totals} ({keys}, {self.total}) {{rows}} "
               f"ON CONFLICT ({keys}) DO UPDATE "
               f"SET {self.total} = {self.totals}.{self.total} + excluded.{self.total}")
        if db.get_bind().dialect.name == "postgresql":
            # One statement: the changes it removes are exactly those it adds (a change
            # committed meanwhile waits for the next fold), and the totals are locked in key
            # order, so two folds cannot deadlock; the advisory lock makes them take turns.
            db.execute(text("SELECT pg_advisory_xact_lock(hashtext(:name))"),
                       {"name": f"cardsvc.fold.{self.totals}"})
            pending = int(db.scalar(text(f"SELECT count(*) FROM {self.changes}")) or 0)
            if pending:
                db.execute(text(
                    f"WITH moved AS (DELETE FROM {self.changes} RETURNING {keys}, delta) "
                    + add.format(rows=f"SELECT {keys}, CAST(sum(delta) AS INTEGER) FROM moved "
                                      f"GROUP BY {keys} ORDER BY {keys}")))
            return pending
        # SQLite has one writer at a time: from the first statement on, no other change can
        # commit before this transaction ends.
        last = db.scalar(text(f"SELECT max(id) FROM {self.changes}"))
        if last is None:
            return 0
        pending = int(db.scalar(text(f"SELECT count(*) FROM {self.changes} WHERE id <= :last"),
                                {"last": last}) or 0)
        db.execute(text(add.format(rows=f"SELECT {keys}, sum(delta) FROM {self.changes} "
                                        f"WHERE id <= :last GROUP BY {keys}")), {"last": last})
        db.execute(text(f"DELETE FROM {self.changes} WHERE id <= :last"), {"last": last})
        return pending
