"""What the login and staff routes take and answer."""

from __future__ import annotations

import datetime as dt

from pydantic import Field

from cardsvc.schemas_common import Model, Out
from cardsvc.staff import service
from cardsvc.staff.roles import (
    Role,
)


class LoginRequest(Model):
    username: str = Field(min_length=1, max_length=64)
    password: str = Field(min_length=1, max_length=200)


class LoginResponse(Model):
    access_token: str
    token_type: str = "bearer"  # noqa: S105 - the OAuth token type, not a secret
    expires_at: dt.datetime
    username: str
    role: str


class StaffOut(Out):
    id: int
    username: str
    display_name: str
    role: str
    department: str | None = None
    active: bool
    created_at: dt.datetime


class StaffCreate(Model):
    username: str = Field(pattern=service.USERNAME_PATTERN, examples=["clerk.chen"],
                          description="Letters, digits and . _ -, starting with a letter; "
                          "stored in lower case")
    display_name: str | None = Field(default=None, max_length=100)
    role: Role
    department: str | None = Field(default=None, max_length=64, examples=["文化局"],
                                   description="Required for an organiser: the department "
                                   "whose events they manage")
    password: str = Field(min_length=10, max_length=200)


class StaffUpdate(Model):
    role: Role | None = None
    active: bool | None = Field(default=None, strict=True)
    display_name: str | None = Field(default=None, max_length=100)


class PasswordSet(Model):
    password: str = Field(min_length=10, max_length=200)
