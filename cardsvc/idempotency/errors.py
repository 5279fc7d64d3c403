"""An idempotency key used again for another request."""

from __future__ import annotations

from cardsvc.errors import Conflict


class IdempotencyConflict(Conflict):
    code = "idempotency_key_reused"
    title = "Idempotency key reused with a different request"
