"""Failed-login throttling.

Failures are counted per account *and source address* (`account:<name>|<source>`) and per
source address (`source:<source>`). When either count reaches its threshold the pair (or the
source) waits: a short first delay that doubles with each further failure, up to a cap. A
stranger guessing a clerk's password from elsewhere therefore slows down only themselves; the
clerk at the counter logs in as before. Counts are forgotten a while after the last failure,
and an account's count at a source ends with a successful login there.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

from sqlalchemy import case, delete, select, update
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.orm import Session

from cardsvc.config import Settings
from cardsvc.staff.models import LoginThrottle

MAX_SOURCE = 100  # an IPv6 address with a zone fits; anything longer is cut


def account_key(username: str, source: str) -> str:
    return f"account:{username}|{source[:MAX_SOURCE]}"


def source_key(source: str) -> str:
    return f"source:{source[:MAX_SOURCE]}"


@dataclass(frozen=True)
class Lock:
    key: str
    seconds: int


def active_lock(db: Session, username: str, source: str, now: dt.datetime) -> Lock | None:
    """The longest lock in force for this login attempt, if any."""
    keys = [account_key(username, source), source_key(source)]
    rows = db.scalars(select(LoginThrottle).where(LoginThrottle.key.in_(keys))).all()
    waits = [Lock(r.key, int((r.locked_until - now).total_seconds()) + 1) for r in rows
             if r.locked_until is not None and r.locked_until > now]
    return max(waits, key=lambda w: w.seconds) if waits else None


def _count(db: Session, key: str, now: dt.datetime, window: dt.timedelta) -> int:
    """One atomic upsert: concurrent failures for one key each count; a count whose last
    failure is older than the window starts again."""
    dialect = db.get_bind().dialect.name
    insert_fn = pg_insert if dialect == "postgresql" else sqlite_insert
    stmt = insert_fn(LoginThrottle).values(key=key, failures=1, last_failure_at=now)
    stale = LoginThrottle.last_failure_at < now - window
    upsert = stmt.on_conflict_do_update(
        index_elements=[LoginThrottle.key],
        set_={"failures": case((stale, 1), else_=LoginThrottle.failures + 1),
              "last_failure_at": now},
    ).returning(LoginThrottle.failures)
    return int(db.execute(upsert).scalar_one())


def _lock_seconds(settings: Settings, failures: int, threshold: int) -> int:
    doublings = min(failures - threshold, 30)
    return min(settings.login_lock_seconds * 2**doublings, settings.login_lock_max_seconds)


def record_failure(db: Session, settings: Settings, username: str, source: str,
                   now: dt.datetime) -> dict[str, int | bool]:
    """Count a failed login; lock what reached its threshold. Returns the counts (for the
    audit row)."""
    window = dt.timedelta(seconds=settings.login_failure_window_seconds)
    out: dict[str, int | bool] = {}
    for key, threshold, name in (
            (account_key(username, source), settings.login_max_failures, "failures"),
            (source_key(source), settings.login_source_max_failures, "source_failures")):
        failures = _count(db, key, now, window)
        out[name] = failures
        if failures >= threshold:
            seconds = _lock_seconds(settings, failures, threshold)
            db.execute(update(LoginThrottle).where(LoginThrottle.key == key)
                       .values(locked_until=now + dt.timedelta(seconds=seconds)))
            out["locked"] = True
    out.setdefault("locked", False)
    return out


def record_success(db: Session, username: str, source: str) -> None:
    # The source's own count stays: a sprayer holding one good password must not be able to
    # wipe its record by logging in with it.
    db.execute(delete(LoginThrottle).where(LoginThrottle.key == account_key(username, source)))
