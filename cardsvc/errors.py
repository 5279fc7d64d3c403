"""Domain errors. Each carries its HTTP status and a stable machine-readable code.

One handler (`cardsvc.app.problems`) renders them as RFC 9457 problem details. The code is the
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




























class AuthenticationRequired(DomainError):
    status = 401
    code = "authentication_required"
    title = "Authentication required"




class Forbidden(DomainError):
    status = 403
    code = "forbidden"
    title = "Forbidden"














