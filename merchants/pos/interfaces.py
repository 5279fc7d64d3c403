"""What the POS domain asks of the domains built on it, bound by the composition root
(`cardsvc.services`): clearing implements `ClearingState`."""

from __future__ import annotations

from typing import Protocol

from cardsvc.context import Ctx


class ClearingState(Protocol):
    def holds(self, ctx: Ctx, transaction_id: int) -> bool:
        """Whether a clearing window already holds this transaction (it is settled as it
        was: a void must refund instead). Waits while a window's close is copying records,
        so the answer cannot change under the caller's feet before it commits."""
        ...


def clearing_state(ctx: Ctx) -> ClearingState:
    found: ClearingState = ctx.services.find(ClearingState)
    return found


class NothingCleared:
    """A `ClearingState` with no clearing at all: every transaction is still open (for the
    POS domain's own tests, and a deployment that runs no clearing)."""

    def holds(self, ctx: Ctx, transaction_id: int) -> bool:
        return False
