"""Database plumbing: the declarative base, UTC timestamps, engines for SQLite and PostgreSQL.

The request (or task, or CLI command) boundary owns the transaction: services only `flush()`.
"""

from __future__ import annotations

import datetime as dt
import enum
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from sqlalchemy import BigInteger, DateTime, Engine, Integer, MetaData, create_engine, event, text
from sqlalchemy.engine import Dialect
from sqlalchemy.orm import DeclarativeBase, Session, sessionmaker
from sqlalchemy.types import TypeDecorator

from cardsvc.errors import DomainError

NAMING_CONVENTION = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}

# BIGINT on PostgreSQL, INTEGER (the rowid alias) on SQLite.
BigId = BigInteger().with_variant(Integer(), "sqlite")


class UTCDateTime(TypeDecorator[dt.datetime]):
    """Timestamps are stored in UTC and always come back timezone-aware.

    SQLite has no time zone type; this makes both backends behave the same.
    """

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: dt.datetime | None, dialect: Dialect) -> Any:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime given to a UTC column")
        value = value.astimezone(dt.UTC)
        if dialect.name == "sqlite":
            return value.replace(tzinfo=None)
        return value

    def process_result_value(self, value: Any, dialect: Dialect) -> dt.datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            return value.replace(tzinfo=dt.UTC)
        return value.astimezone(dt.UTC)


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING_CONVENTION)


class AdvisoryLock(enum.IntEnum):
    """PostgreSQL advisory lock ids, every one here: two uses of one id would wait for each
    other without reason."""

    CLEARING_CLOSE = 0x4B4D434C  # a window's close (exclusive) against voids (shared)


def advisory_xact_lock(db: Session, lock: AdvisoryLock, *, shared: bool = False) -> None:
    """Take `lock` until the transaction ends (PostgreSQL; SQLite's writers queue anyway)."""
    if db.get_bind().dialect.name != "postgresql":
        return
    function = "pg_advisory_xact_lock_shared" if shared else "pg_advisory_xact_lock"
    db.execute(text(f"SELECT {function}(:k)"), {"k": int(lock)})


def sql_list(*values: str) -> str:
    """Constants of ours (enum values) as an SQL list, for the queries written as text:
    `kind IN ({sql_list(PosKind.PURCHASE, ...)})`. Never for anything a request sent."""
    for value in values:
        if not value.replace("_", "").isalnum() or not value.isascii():
            raise ValueError(f"not a constant: {value!r}")
    return ", ".join(f"'{value}'" for value in values)


def utcnow() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


def make_engine(url: str, **kwargs: Any) -> Engine:
    # Bound parameters hold ciphertext and blind indexes; keep them out of logs and errors.
    kwargs.setdefault("hide_parameters", True)
    if url.startswith("sqlite"):
        engine = create_engine(url, connect_args={"timeout": 30}, **kwargs)

        @event.listens_for(engine, "connect")
        def _sqlite_connect(dbapi_conn: Any, _record: Any) -> None:
            # Take transaction control away from the sqlite3 module so BEGIN IMMEDIATE below
            # is the only BEGIN; writers then queue on the lock instead of failing with
            # "database is locked" when a read turns into a write.
            dbapi_conn.isolation_level = None
            cur = dbapi_conn.cursor()
            cur.execute("PRAGMA foreign_keys=ON")
            cur.execute("PRAGMA journal_mode=WAL")
            cur.execute("PRAGMA busy_timeout=30000")
            cur.close()

        @event.listens_for(engine, "begin")
        def _sqlite_begin(conn: Any) -> None:
            conn.exec_driver_sql("BEGIN IMMEDIATE")

        return engine
    kwargs.setdefault("pool_size", 10)
    kwargs.setdefault("max_overflow", 40)
    kwargs.setdefault("pool_pre_ping", True)
    return create_engine(url, **kwargs)


def make_sessionmaker(engine: Engine) -> sessionmaker[Session]:
    return sessionmaker(bind=engine, expire_on_commit=False, autoflush=True)


@contextmanager
def unit_of_work(factory: sessionmaker[Session]) -> Iterator[Session]:
    """One unit of work, the only one there is: the request, command or task boundary opens
    it, services only flush. Commit once at the end, or roll back everything, except the
    writes a refusal keeps (`DomainError.keep_writes`: a failed login's counter and audit
    row, a rejected POS record)."""
    session = factory()
    try:
        yield session
        session.commit()
    except DomainError as exc:
        if exc.keep_writes:
            session.commit()
        else:
            session.rollback()
        raise
    except BaseException:
        session.rollback()
        raise
    finally:
        session.close()
