"""Domain errors. Each carries its HTTP status and a stable machine-readable code.

One handler (`cardsvc.api_errors`) renders them as RFC 9457 problem details. The code is the
contract with clients: titles and details may be reworded, codes never change meaning.
"""

from __future__ import annotations

from typing import Any, ClassVar


def problem_body(status: int, code: str, title: str, detail: str,
                 **extra: Any) -> dict[str, Any]:
    """An RFC 9457 problem details object."""
    return {"type": f"urn:cardsvc:problem:{code}", "title": title, "status": status,
            "detail": detail, "code": code, **extra}


class ConfigurationError(RuntimeError):
    """The deployment is misconfigured (missing or malformed secrets, bad URL)."""


class DomainError(Exception):
    status: ClassVar[int] = 400
    code: ClassVar[str] = "bad_request"
    title: ClassVar[str] = "Bad request"

    def problem(self) -> dict[str, Any]:
        return problem_body(self.status, self.code, self.title, self.detail, **self.extra)

    def __init__(self, detail: str, *, keep_writes: bool = False, **extra: Any) -> None:
        super().__init__(detail)
        self.detail = detail
        self.extra = extra
        # True when the failure itself is a fact to keep (a failed login's counter and audit
        # row): the request boundary then commits before rendering the error.
        self.keep_writes = keep_writes


class InvalidInput(DomainError):
    status = 422
    code = "invalid_input"
    title = "Invalid input"


class NotFound(DomainError):
    status = 404
    code = "not_found"
    title = "Not found"


class Conflict(DomainError):
    status = 409
    code = "conflict"
    title = "Conflict"


class DuplicateCardholder(Conflict):
    code = "duplicate_cardholder"
    title = "Cardholder already registered"


class CompanionAlreadyRegistered(Conflict):
    code = "companion_already_registered"
    title = "A companion is already registered"


class StaffExists(Conflict):
    code = "staff_exists"
    title = "Staff account already exists"


class LastAdmin(Conflict):
    code = "last_admin"
    title = "The last administrator must stay"


class OwnAccount(Conflict):
    code = "own_account"
    title = "Another administrator must do this"


class IllegalTransition(Conflict):
    code = "illegal_transition"
    title = "Illegal card state transition"


class CardLimitReached(Conflict):
    code = "card_limit_reached"
    title = "Cardholder already holds a card of this form"


class IdempotencyConflict(Conflict):
    code = "idempotency_key_reused"
    title = "Idempotency key reused with a different request"


class Ineligible(DomainError):
    status = 422
    code = "ineligible"
    title = "Not eligible for this card product"

    def __init__(self, rule: str, detail: str) -> None:
        super().__init__(detail, rule=rule)
        self.rule = rule


class InsufficientFunds(Conflict):
    code = "insufficient_funds"
    title = "Purse balance too low"


class PurseLimitExceeded(Conflict):
    code = "purse_limit_exceeded"
    title = "Purse would exceed its maximum balance"


class ChipPurse(Conflict):
    code = "chip_purse"
    title = "This purse is on the chip"


class CardNotUsable(Conflict):
    code = "card_not_usable"
    title = "Card cannot be used in its current state"


class AuthenticationRequired(DomainError):
    status = 401
    code = "authentication_required"
    title = "Authentication required"


class InvalidCredentials(DomainError):
    status = 401
    code = "invalid_credentials"
    title = "Invalid username or password"


class Forbidden(DomainError):
    status = 403
    code = "forbidden"
    title = "Forbidden"


class LoginThrottled(DomainError):
    status = 429
    code = "login_throttled"
    title = "Too many failed logins"


class ReaderUnavailable(DomainError):
    status = 503
    code = "reader_unavailable"
    title = "Card reader unavailable"


class ReaderBusy(Conflict):
    code = "reader_busy"
    title = "The card reader is busy"


class CardNotPresented(Conflict):
    code = "card_not_presented"
    title = "No card on the reader"


class WrongCardOnReader(Conflict):
    code = "wrong_card_on_reader"
    title = "The card on the reader is not the expected one"


class LoadNotInReview(Conflict):
    code = "load_not_in_review"
    title = "Only a load in review is resolved"


class ChipRefused(Conflict):
    code = "chip_refused"
    title = "The card refused the command"
