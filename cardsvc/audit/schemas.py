"""What the audit routes answer."""

from __future__ import annotations

import datetime as dt

from cardsvc.schemas_common import Model, Out


class AuditEventOut(Out):
    id: int
    at: dt.datetime
    actor: str
    actor_role: str
    action: str
    purpose: str | None
    target_type: str | None
    target_id: str | None
    detail: str
    hash: str


class VerifyOut(Model):
    ok: bool
    rows_checked: int
    first_bad_id: int | None
    problem: str | None
