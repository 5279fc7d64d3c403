"""Failed-login throttling.

Failures are counted three ways: per account and source address (`pair:<name>|<source>`), per
source across accounts (`source:<source>`) and per account across sources (`account:<name>`).
When a count reaches its threshold, attempts wait: a short first delay that doubles with each
further failure, up to a cap.

* A stranger guessing a clerk's password from elsewhere slows down only their own attempts at
  that account (the pair), so cannot lock the clerk out of the counter.
* A source trying many accounts waits (password spraying); so does every new source once an
  account has failed many times from anywhere (guessing from many addresses), except sources
  that logged into that account before (`known:<name>|<source>`): the clerk's own counter.
* IPv6 sources count by /64 network (one host holds a whole /64).

Counts are forgotten a while after the last failure; a successful login ends the pair's count
and marks the source as known to the account.
"""

from __future__ import annotations

import datetime as dt
import ipaddress
from dataclasses import dataclass

from sqlalchemy import and_, case, delete, or_, select, update
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.orm import Session

from cardsvc.config import Settings
from cardsvc.staff.models import LoginThrottle

MAX_SOURCE = 100  # an IPv6 network with its prefix fits; anything longer is cut


def normalise_source(address: str) -> str:
    try:
        ip = ipaddress.ip_address(address)
    except ValueError:
        return address[:MAX_SOURCE]  # not an address (a test client, a unix socket)
    if isinstance(ip, ipaddress.IPv6Address):
        if ip.ipv4_mapped is not None:
            return str(ip.ipv4_mapped)
        return str(ipaddress.ip_network(f"{ip}/64", strict=False))
    return str(ip)


def pair_key(username: str, source: str) -> str:
    return f"pair:{username}|{normalise_source(source)}"


def source_key(source: str) -> str:
    return f"source:{normalise_source(source)}"


def account_key(username: str) -> str:
    return f"account:{username}"


def known_key(username: str, source: str) -> str:
    return f"known:{username}|{normalise_source(source)}"


@dataclass(frozen=True)
class Lock:
    key: str
    seconds: int


def active_lock(db: Session, settings: Settings, username: str, source: str,
                now: dt.datetime) -> Lock | None:
    """The longest lock in force for this login attempt, if any."""
    pair, wide = pair_key(username, source), [source_key(source), account_key(username)]
    rows = {r.key: r for r in db.scalars(select(LoginThrottle).where(
        LoginThrottle.key.in_([pair, *wide, known_key(username, source)])))}
    known = rows.get(known_key(username, source))
    trusted = (known is not None and known.last_success_at is not None and
               known.last_success_at > now - dt.timedelta(days=settings.login_known_days))
    keys = [pair] if trusted else [pair, *wide]
    waits = []
    for key in keys:
        row = rows.get(key)
        if row is not None and row.locked_until is not None and row.locked_until > now:
            waits.append(Lock(key, int((row.locked_until - now).total_seconds()) + 1))
    return max(waits, key=lambda w: w.seconds) if waits else None


def _upsert(db: Session, key: str, now: dt.datetime, window: dt.timedelta | None) -> int:
    """Count one failure for `key` (window given), or mark a success (window None). One
    atomic upsert: concurrent failures each count; a count whose last failure is older than
    the window starts again."""
    dialect = db.get_bind().dialect.name
    insert_fn = pg_insert if dialect == "postgresql" else sqlite_insert
    if window is None:
        stmt = insert_fn(LoginThrottle).values(key=key, failures=0, last_success_at=now)
        db.execute(stmt.on_conflict_do_update(index_elements=[LoginThrottle.key],
                                              set_={"last_success_at": now}))
        return 0
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
    out: dict[str, int | bool] = {"locked": False}
    for key, threshold, name in (
            (pair_key(username, source), settings.login_max_failures, "failures"),
            (source_key(source), settings.login_source_max_failures, "source_failures"),
            (account_key(username), settings.login_account_max_failures, "account_failures")):
        failures = _upsert(db, key, now, window)
        out[name] = failures
        if failures >= threshold:
            seconds = _lock_seconds(settings, failures, threshold)
            db.execute(update(LoginThrottle).where(LoginThrottle.key == key)
                       .values(locked_until=now + dt.timedelta(seconds=seconds)))
            out["locked"] = True
    return out


def record_success(db: Session, username: str, source: str, now: dt.datetime) -> None:
    # The source's and the account's wide counts stay: a sprayer holding one good password
    # must not wipe its record by logging in with it.
    db.execute(delete(LoginThrottle).where(LoginThrottle.key == pair_key(username, source)))
    _upsert(db, known_key(username, source), now, None)


def purge(db: Session, settings: Settings, now: dt.datetime) -> int:
    """Forget counts past their window and no longer locking, and known sources not seen
    for `login_known_days` (failed logins for made-up names would otherwise pile up)."""
    failed_before = now - dt.timedelta(seconds=settings.login_failure_window_seconds)
    seen_before = now - dt.timedelta(days=settings.login_known_days)
    result = db.execute(delete(LoginThrottle).where(or_(
        and_(LoginThrottle.last_success_at.is_(None),
             LoginThrottle.last_failure_at < failed_before,
             or_(LoginThrottle.locked_until.is_(None), LoginThrottle.locked_until < now)),
        and_(LoginThrottle.last_success_at.is_not(None),
             LoginThrottle.last_success_at < seen_before))))
    return int(getattr(result, "rowcount", 0) or 0)
