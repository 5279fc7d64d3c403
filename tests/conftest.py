"""Test fixtures: a real migrated database (SQLite by default, PostgreSQL when
CARDSVC_TEST_DATABASE_URL names one), real HTTP through the ASGI app, real commits.

Isolation: SQLite tests each get a copy of a migrated template file; PostgreSQL tests share a
migrated database created for this run and emptied after each test. Tests commit for
real because idempotency, the audit chain and locking are all about what a commit does.
Staff accounts (one per role) survive between tests so passwords are hashed once per run.

Every fixture more than one test module uses is here; helpers that are not fixtures live in
tests/support/, which is what test modules import (never each other, never a conftest).

In CI (CI=true) a skip is a failure: every service the suite needs is there.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import text

from cardsvc.app import migrate
from cardsvc.app.bootstrap import build_runtime
from cardsvc.app.http import create_app
from cardsvc.app.models import Base
from cardsvc.context import Actor, Ctx
from cardsvc.db import unit_of_work
from cardsvc.runtime import Runtime, use_process_runtime
from tests.support.api import PASSWORD, ROLES, Api
from tests.support.ci import IN_CI
from tests.support.databases import (
    DEFAULT_PG,
    Backend,
    create_pg_database,
    drop_pg_database,
    make_settings,
    seed_staff,
)
from tests.support.events import Venue
from tests.support.pcsc import VpcdSlot, pcsc_reader_name
from tests.support.transit import Depot, open_depot
from tests.support.worlds import Shop, open_shop


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption(
        "--database-tests-only", action="store_true",
        help="run only the tests on the suite's database (the `backend` fixture): a second "
             "pass on another database, after a full one; the others do the same on any")


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    if not config.getoption("--database-tests-only"):
        return
    kept: list[pytest.Item] = []
    dropped: list[pytest.Item] = []
    for item in items:
        (kept if "backend" in getattr(item, "fixturenames", ()) else dropped).append(item)
    config.hook.pytest_deselected(items=dropped)
    items[:] = kept


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]):  # type: ignore[no-untyped-def]
    outcome = yield
    rep = outcome.get_result()
    if IN_CI and rep.skipped and not hasattr(rep, "wasxfail"):
        rep.outcome = "failed"
        rep.longrepr = f"skipped in CI, where every service must be present: {rep.longrepr}"


# --- databases ---------------------------------------------------------------------------


@pytest.fixture(scope="session")
def secrets_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("keys") / "secrets.json"


@pytest.fixture(scope="session")
def backend(tmp_path_factory: pytest.TempPathFactory, secrets_file: Path) -> Iterator[Backend]:
    url = os.environ.get("CARDSVC_TEST_DATABASE_URL", "").strip()
    if url.startswith("postgresql"):
        db_url = create_pg_database(url)
        rt = build_runtime(make_settings(db_url, secrets_file))
        migrate.upgrade(rt.engine)
        seed_staff(rt)
        rt.close()
        yield Backend("postgresql", None, db_url)
        drop_pg_database(url, db_url)
        return
    template = tmp_path_factory.mktemp("db") / "template.db"
    rt = build_runtime(make_settings(f"sqlite:///{template}", secrets_file))
    migrate.upgrade(rt.engine)
    seed_staff(rt)
    rt.close()  # the last connection to close checkpoints the WAL into the file
    assert not Path(f"{template}-wal").exists()
    yield Backend("sqlite", template, None)


KEEP_BETWEEN_TESTS = {"staff", "alembic_version", "card_master_keys"}


# Every table's rows go between tests, with the triggers off for this one transaction
# (replica role: no immutability guard, no count triggers, no foreign-key checks), and the
# tables' own id sequences start again. A DELETE of a few rows takes milliseconds where a
# TRUNCATE of every table took a quarter of a second. The replica role needs a superuser;
# a test database owned by a plain role gets the TRUNCATE.
_OWNED_SEQUENCES = text(
    "SELECT setval(s.oid, 1, false) FROM pg_class s "
    "JOIN pg_depend d ON d.objid = s.oid AND d.deptype IN ('a', 'i') "
    "JOIN pg_class t ON t.oid = d.refobjid "
    "WHERE s.relkind = 'S' AND t.relname = ANY(:tables)")
_SWITCHED_OFF = text(
    "SELECT DISTINCT c.relname FROM pg_trigger g JOIN pg_class c ON c.oid = g.tgrelid "
    "WHERE NOT g.tgisinternal AND g.tgenabled = 'D'")


def _empty(rt: Runtime) -> None:
    tables = [t.name for t in reversed(Base.metadata.sorted_tables)
              if t.name not in KEEP_BETWEEN_TESTS]
    with rt.engine.begin() as conn:
        if conn.scalar(text("SELECT current_setting('is_superuser')")) == "on":
            conn.execute(text("SET LOCAL session_replication_role = replica"))
            conn.execute(text("; ".join(f"DELETE FROM {table}" for table in tables)))
            conn.execute(_OWNED_SEQUENCES, {"tables": tables})
        else:
            conn.execute(text(f"TRUNCATE {', '.join(tables)} RESTART IDENTITY CASCADE"))
        # Tamper tests switch the immutability triggers off; switch them back on.
        for table in conn.execute(_SWITCHED_OFF).scalars():
            conn.execute(text(f"ALTER TABLE {table} ENABLE TRIGGER USER"))
        conn.execute(text("INSERT INTO audit_head (id, last_id, last_hash) "
                          "VALUES (1, 0, :h)"), {"h": "0" * 64})


@pytest.fixture
def runtime_factory(backend: Backend, secrets_file: Path, tmp_path: Path
                    ) -> Iterator[object]:
    """Build runtimes on this test's fresh database, optionally with other settings."""
    made: list[Runtime] = []
    if backend.name == "sqlite":
        assert backend.template is not None
        path = tmp_path / "test.db"
        shutil.copy(backend.template, path)
        url = f"sqlite:///{path}"
    else:
        assert backend.url is not None
        url = backend.url

    def factory(**overrides: object) -> Runtime:
        rt = build_runtime(make_settings(url, secrets_file, **overrides))
        made.append(rt)
        return rt

    yield factory
    if backend.name == "postgresql" and made:
        _empty(made[0])
    for rt in made:
        rt.close()


@pytest.fixture
def rt(runtime_factory) -> Runtime:  # type: ignore[no-untyped-def]
    return runtime_factory()  # type: ignore[no-any-return]


@pytest.fixture
def app_client(rt: Runtime) -> Iterator[TestClient]:
    with TestClient(create_app(rt), raise_server_exceptions=False) as client:
        yield client


_TOKENS: dict[tuple[str, str], str] = {}


@pytest.fixture
def tokens(app_client: TestClient, backend: Backend) -> dict[str, str]:
    """A bearer token per role; logged in once per run (scrypt is slow on purpose)."""
    out = {}
    for role in ROLES:
        key = (backend.name, role)
        if key not in _TOKENS:
            r = app_client.post("/auth/login", json={"username": f"t.{role}",
                                                     "password": PASSWORD})
            assert r.status_code == 200, r.text
            _TOKENS[key] = r.json()["access_token"]
        out[role] = _TOKENS[key]
    return out


@pytest.fixture
def clerk(app_client: TestClient, tokens: dict[str, str]) -> Api:
    return Api(app_client, tokens["clerk"])


@pytest.fixture
def supervisor(app_client: TestClient, tokens: dict[str, str]) -> Api:
    return Api(app_client, tokens["supervisor"])


@pytest.fixture
def auditor(app_client: TestClient, tokens: dict[str, str]) -> Api:
    return Api(app_client, tokens["auditor"])


@pytest.fixture
def admin(app_client: TestClient, tokens: dict[str, str]) -> Api:
    return Api(app_client, tokens["admin"])


@pytest.fixture
def organiser(app_client: TestClient, tokens: dict[str, str]) -> Api:
    return Api(app_client, tokens["organiser"])


@pytest.fixture
def system_ctx(rt: Runtime) -> Iterator[Ctx]:
    """A service-level unit of work acting as the system (commits at the end)."""
    with unit_of_work(rt.sessions) as db:
        yield Ctx(db=db, settings=rt.settings, keys=rt.keys, actor=Actor.system("tests"))


# --- PostgreSQL for tests that only make sense there -----------------------------------------


@pytest.fixture
def pg_runtime(secrets_file: Path) -> Iterator[Runtime]:
    base = os.environ.get("CARDSVC_TEST_PG_URL", DEFAULT_PG)
    url = create_pg_database(base)
    rt = build_runtime(make_settings(url, secrets_file))
    migrate.upgrade(rt.engine)
    yield rt
    rt.close()
    drop_pg_database(base, url)


# --- a shop: a merchant with a terminal and a chip card (tests/support/worlds.py) ------------


@pytest.fixture
def shop(runtime_factory, tmp_path) -> Iterator[Shop]:  # type: ignore[no-untyped-def]
    rt = runtime_factory(reader="sim", sim_cards_dir=tmp_path / "cards")
    with TestClient(create_app(rt)) as client:
        yield open_shop(rt, client, tmp_path / "cards")


@pytest.fixture
def venue(runtime_factory, tmp_path, tokens) -> Iterator[Venue]:  # type: ignore[no-untyped-def]
    rt = runtime_factory(reader="sim", sim_cards_dir=tmp_path / "cards")
    with TestClient(create_app(rt), raise_server_exceptions=False) as client:
        yield Venue(client, Api(client, tokens["clerk"]), Api(client, tokens["organiser"]),
                    tmp_path / "cards")


# --- the process runtime that scheduled tasks use ----------------------------------------------


@pytest.fixture
def depot(runtime_factory, tmp_path, tokens) -> Iterator[Depot]:  # type: ignore[no-untyped-def]
    rt = runtime_factory(reader="sim", sim_cards_dir=tmp_path / "cards")
    with TestClient(create_app(rt), raise_server_exceptions=False) as client:
        yield open_depot(rt, client, tmp_path / "cards", tokens)


@pytest.fixture
def tasks_here(rt) -> Iterator[None]:  # type: ignore[no-untyped-def]
    use_process_runtime(rt)
    yield
    use_process_runtime(None)


# --- PC/SC: pcscd with a virtual card in the vpcd slot (see tests/support/pcsc.py) ------------


@pytest.fixture
def vpcd_slot() -> Iterator[VpcdSlot]:
    pcsc_reader_name()
    slot = VpcdSlot()
    yield slot
    slot.eject()


@pytest.fixture
def pcsc_reader(vpcd_slot):  # type: ignore[no-untyped-def]
    from readers.pcsc import PcscReader
    reader = PcscReader(pcsc_reader_name())
    yield reader
    reader.close()
