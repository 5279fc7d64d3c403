"""Staff and login refusals, each with its stable code."""

from __future__ import annotations

from cardsvc.errors import Conflict, DomainError


class StaffExists(Conflict):
    code = "staff_exists"
    title = "Staff account already exists"


class LastAdmin(Conflict):
    code = "last_admin"
    title = "The last administrator must stay"


class OwnAccount(Conflict):
    code = "own_account"
    title = "Another administrator must do this"


class InvalidCredentials(DomainError):
    status = 401
    code = "invalid_credentials"
    title = "Invalid username or password"


class LoginThrottled(DomainError):
    status = 429
    code = "login_throttled"
    title = "Too many failed logins"
