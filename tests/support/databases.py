"""The suite's databases: settings for a runtime on one, PostgreSQL databases created and
dropped per run (or per test), and what the first start seeds plus the role accounts."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from pathlib import Path

from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url

from cardsvc.config import Settings
from cardsvc.context import Actor
from cardsvc.db import unit_of_work
from cardsvc.keystore.service import KeyStore
from cardsvc.runtime import Runtime
from cardsvc.staff import service as staff_service
from tests.support.api import DEPARTMENT, PASSWORD, ROLES
from tests.support.ci import need_service

DEFAULT_PG = "postgresql+psycopg://postgres@127.0.0.1:5432/test"


@dataclass
class Backend:
    name: str  # sqlite | postgresql
    template: Path | None  # sqlite: migrated file copied per test
    url: str | None  # postgresql: the run's database


def create_pg_database(base_url: str) -> str:
    """Create a fresh database on the server of `base_url`; return its URL."""
    url = make_url(base_url)
    name = f"cardsvc_t_{uuid.uuid4().hex[:10]}"
    admin = create_engine(url, isolation_level="AUTOCOMMIT")
    try:
        with admin.connect() as conn:
            conn.execute(text(f'CREATE DATABASE "{name}"'))
    except Exception as exc:
        admin.dispose()
        need_service(f"PostgreSQL not reachable at {url.host}:{url.port} ({type(exc).__name__})")
    admin.dispose()
    return url.set(database=name).render_as_string(hide_password=False)


def drop_pg_database(base_url: str, url: str) -> None:
    admin = create_engine(make_url(base_url), isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f'DROP DATABASE IF EXISTS "{make_url(url).database}" WITH (FORCE)'))
    admin.dispose()


def make_settings(url: str, secrets_file: Path, **overrides: object) -> Settings:
    return Settings(database_url=url, secrets_file=secrets_file, token_ttl_seconds=3600,
                    **overrides)  # type: ignore[arg-type]


def seed_staff(rt: Runtime) -> None:
    """What the first start creates: card master keys; plus one staff account per role."""
    with unit_of_work(rt.sessions) as db:
        KeyStore(db, rt.keys.secrets.kek, rt.keys.secrets.system_id).ensure_initial(
            Actor.system("tests"))
        for role in ROLES:
            staff_service.create_staff(db, Actor.system("tests"), f"t.{role}", role, PASSWORD,
                                       department=DEPARTMENT if role == "organiser" else None)


def disable_audit_guard(rt: Runtime) -> None:
    """What a rogue administrator with database access does first: switch off the audit
    trail's immutability triggers (emptying the PostgreSQL tables between tests switches
    them on again)."""
    with rt.engine.begin() as conn:
        if rt.engine.dialect.name == "sqlite":
            conn.execute(text("DROP TRIGGER audit_events_no_update"))
            conn.execute(text("DROP TRIGGER audit_events_no_delete"))
        else:
            conn.execute(text("ALTER TABLE audit_events DISABLE TRIGGER USER"))
