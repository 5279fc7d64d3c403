"""Folding the triggers' changes into the monthly issuance counts.

The database triggers (migration 8a1c5e0d4b27) append a change row for every issue, state
change and move to another township, in the transaction of the change (`cardsvc.folding`).
A report folds first, so what it reads is exact; a nightly task keeps the change rows few
when nobody asks for a report.
"""

from __future__ import annotations

from sqlalchemy.orm import Session

from cardsvc.folding import FoldedCount

ISSUANCE = FoldedCount(totals="issuance_counts", changes="issuance_count_changes",
                       keys=("month", "product", "status", "township"), total="cards")


def fold(db: Session) -> int:
    """Add the pending changes into the monthly counts, in the caller's transaction; how
    many change rows there were."""
    return ISSUANCE.fold(db)
