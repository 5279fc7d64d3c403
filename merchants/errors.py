"""POS API errors, each with its stable code (see docs/pos-integration.md)."""

from __future__ import annotations

from cardsvc.errors import DomainError


class PosAuthError(DomainError):
    status = 401
    code = "bad_signature"
    title = "Request signature refused"


class BadSignature(PosAuthError):
    pass


class UnknownTerminal(PosAuthError):
    code = "unknown_terminal"
    title = "Unknown terminal key"


class TerminalRevoked(PosAuthError):
    status = 403
    code = "terminal_revoked"
    title = "Terminal revoked"


class StaleTimestamp(PosAuthError):
    code = "stale_timestamp"
    title = "Request timestamp outside the allowed window"


class NonceReused(PosAuthError):
    code = "nonce_reused"
    title = "Nonce already used"
