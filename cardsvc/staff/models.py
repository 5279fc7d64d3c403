from __future__ import annotations

import datetime as dt

from sqlalchemy import Boolean, Date, Integer, String
from sqlalchemy.orm import Mapped, mapped_column

from cardsvc.db import Base, BigId, UTCDateTime, utcnow


class Staff(Base):
    __tablename__ = "staff"

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    username: Mapped[str] = mapped_column(String(64), unique=True)
    display_name: Mapped[str] = mapped_column(String(100))
    role: Mapped[str] = mapped_column(String(16))
    # The county department an organiser works for (their events are that department's).
    department: Mapped[str | None] = mapped_column(String(64), nullable=True)
    password_hash: Mapped[str] = mapped_column(String(200))
    active: Mapped[bool] = mapped_column(Boolean, default=True)
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)
    password_changed_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)


class LoginThrottle(Base):
    """Failed-login counters and known sources (`cardsvc/staff/throttle.py`): per account and
    source address (also for usernames that do not exist), per source, per account."""

    __tablename__ = "login_throttle"

    key: Mapped[str] = mapped_column(String(200), primary_key=True)
    failures: Mapped[int] = mapped_column(Integer, default=0)
    locked_until: Mapped[dt.datetime | None] = mapped_column(UTCDateTime, nullable=True)
    last_failure_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime, nullable=True)
    # Known sources: when this source last logged into the account.
    last_success_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime, nullable=True)


class Desk(Base):
    """A counter desk and its cash drawer (ledger account cash:<code>): the registry staff
    pick from when they log in at a counter, so a typo cannot open a new drawer."""

    __tablename__ = "desks"

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    code: Mapped[str] = mapped_column(String(32), unique=True)
    name: Mapped[str] = mapped_column(String(100))
    active: Mapped[bool] = mapped_column(Boolean, default=True)
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)


class DrawerCount(Base):
    """A supervisor's end-of-day count of a desk's cash drawer against what the ledger says it
    should hold. Counts are kept as they were made, a difference with them."""

    __tablename__ = "drawer_counts"

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    desk: Mapped[str] = mapped_column(String(32), index=True)
    business_date: Mapped[dt.date] = mapped_column(Date, index=True)
    expected: Mapped[int] = mapped_column(Integer)
    counted: Mapped[int] = mapped_column(Integer)
    difference: Mapped[int] = mapped_column(Integer)  # counted - expected
    note: Mapped[str] = mapped_column(String(200), default="")
    counted_by: Mapped[str] = mapped_column(String(64))
    counted_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)


class RevokedToken(Base):
    """A staff token ended before its time (a logout): refused until it would have expired
    anyway, then forgotten."""

    __tablename__ = "revoked_tokens"

    token_id: Mapped[str] = mapped_column(String(32), primary_key=True)
    staff_id: Mapped[int] = mapped_column(Integer)
    revoked_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)
    expires_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, index=True)
