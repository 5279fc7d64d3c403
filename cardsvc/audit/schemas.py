"""What the audit routes answer."""

from __future__ import annotations

import datetime as dt

from cardsvc.audit.review_rules import Flag, Kind
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


class ReviewSettings(Model):
    """The settings a review was produced with (they decide what is flagged)."""

    # Clock times of day, Asia/Taipei ("08:00:00"): JSON Schema's "time" wants an offset
    office_start: str
    office_end: str
    office_weekdays: list[int]
    residents_per_hour: int


class ReadCount(Model):
    """Reads of personal data by one person, for one purpose, on one business day."""

    day: dt.date
    staff: str
    role: str
    purpose: str | None
    reads: int
    residents: int  # distinct residents named by the reads (searches name none)


class ReviewLine(Model):
    """One flagged line: what it flags, who, when, and the audit rows behind it."""

    flag: Flag
    day: dt.date  # business day (Asia/Taipei) of the first row
    first_at: dt.datetime
    last_at: dt.datetime
    staff: str
    role: str
    action: str | None
    purpose: str | None
    subject: str | None  # the resident ("cardholder 12"), library, terminal or report
    count: int
    residents: int
    audit_ids: list[int]


class AccessReview(Model):
    date_from: dt.date
    date_to: dt.date
    generated_at: dt.datetime
    generated_by: str
    settings: ReviewSettings
    reads: list[ReadCount]
    flags: list[ReviewLine]


class AccessEntry(Model):
    """One time a resident's data was read or handed out."""

    audit_id: int
    at: dt.datetime
    kind: Kind
    action: str
    by: str  # the staff username, or the library's or terminal's name
    role: str  # the staff role, or "library" / "terminal"
    purpose: str | None


class AccessLog(Model):
    """個資查詢: who saw a resident's data. Never a full national ID."""

    cardholder_id: int
    name: str
    person_id_masked: str
    generated_at: dt.datetime
    entries: list[AccessEntry]
