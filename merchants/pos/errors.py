"""POS API errors, each with its stable code (see docs/pos-integration.md): a terminal's
request that does not authenticate, and refusals of POS transactions. A refusal keeps the
submitted record (keep_writes) for clearing's exceptions report: a refused record is never
silently dropped."""

from __future__ import annotations

from typing import Any

from cardsvc.errors import DomainError


class PosRefusal(DomainError):
    status = 409
    code = "refused"
    title = "Transaction refused"

    def __init__(self, detail: str, **extra: Any) -> None:
        super().__init__(detail, keep_writes=True, **extra)


class UnknownCard(PosRefusal):
    status = 404
    code = "unknown_card"
    title = "Unknown card"


class CardHotlisted(PosRefusal):
    code = "card_hotlisted"
    title = "Card on the hotlist"


class CardExpired(PosRefusal):
    code = "card_expired"
    title = "Card expired"


class AmountOverLimit(PosRefusal):
    status = 422
    code = "amount_over_limit"
    title = "Amount above the per-purchase limit"


class BadCertificate(PosRefusal):
    status = 422
    code = "bad_certificate"
    title = "Transaction certificate does not verify"


class ReplayedCertificate(PosRefusal):
    code = "replayed_certificate"
    title = "Card transaction already submitted"


class BalanceMismatch(PosRefusal):
    code = "balance_mismatch"
    title = "The card spent more than the backend knows it holds"


class RefundExceedsOriginal(DomainError):
    status = 422
    code = "refund_exceeds_original"
    title = "Refund above what is left of the original"


class NotVoidable(DomainError):
    status = 409
    code = "not_voidable"
    title = "Only the terminal's last transaction of the day can be voided"


class QrTokenInvalid(PosRefusal):
    status = 422
    code = "qr_token_invalid"
    title = "QR payment token not valid"


class QrTokenExpired(PosRefusal):
    code = "qr_token_expired"
    title = "QR payment token expired"


class QrTokenSpent(PosRefusal):
    code = "qr_token_spent"
    title = "QR payment token already used"


class QrInsufficientFunds(PosRefusal):
    code = "insufficient_funds"
    title = "Purse balance too low"


class BatchConflict(DomainError):
    status = 409
    code = "batch_conflict"
    title = "Batch reference already used for other records"


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
