"""Clearing on real Celery workers over Redis: a worker killed with SIGKILL in the middle of a
run, another started, and the window's files are byte for byte those of an undisturbed run of
the same data (cleared in-process on a copy of the database)."""

from __future__ import annotations

import datetime as dt
import os
import shutil
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import Engine, create_engine, func, select, text
from sqlalchemy.engine import make_url
from sqlalchemy.orm import Session

from cardsvc.app import synthetic
from cardsvc.app.worker import make_app
from cardsvc.config import Settings
from cardsvc.context import TAIPEI
from cardsvc.runtime import Runtime
from settlement.clearing import service
from settlement.clearing.models import ClearingPartition, ClearingRun, ClearingWindow
from tests.support.ci import need_service

BROKER = os.environ.get("CARDSVC_TEST_BROKER_URL", "redis://127.0.0.1:6379/15")
ROOT = Path(__file__).resolve().parents[3]


def _redis_or_skip() -> None:
    import redis
    try:
        redis.Redis.from_url(BROKER, socket_connect_timeout=2).ping()
    except Exception as exc:
        need_service(f"no Redis broker at {BROKER} ({type(exc).__name__})")


class Workers:
    """Real `celery worker` processes against this test's database and its own queue."""

    def __init__(self, settings: Settings, log_dir: Path) -> None:
        self.queue = f"cardsvc-test-{uuid.uuid4().hex[:8]}"
        self.env = {**os.environ, "CARDSVC_BROKER_URL": BROKER,
                    "CARDSVC_DATABASE_URL": settings.database_url,
                    "CARDSVC_SECRETS_FILE": str(settings.secrets_file),
                    "CARDSVC_CELERY_QUEUE": self.queue, "PYTHONPATH": str(ROOT)}
        self.log_dir = log_dir
        self.procs: list[subprocess.Popen[bytes]] = []
        self.app = make_app(Settings(broker_url=BROKER, celery_queue=self.queue))

    def start(self) -> subprocess.Popen[bytes]:
        log = open(self.log_dir / f"worker-{len(self.procs)}.log", "wb")
        proc = subprocess.Popen(
            [sys.executable, "-m", "celery", "-A", "cardsvc.app.worker", "worker",
             "--pool", "solo", "--loglevel", "INFO", "--without-heartbeat",
             "--without-gossip", "--without-mingle", "-n", f"w{len(self.procs)}@%h"],
            env=self.env, cwd=ROOT, stdout=log, stderr=subprocess.STDOUT)
        self.procs.append(proc)
        return proc

    def send(self, name: str, *args: Any) -> None:
        self.app.send_task(f"settlement.tasks.{name}", args=list(args))

    def logs(self) -> str:
        return "\n".join(p.read_text(errors="replace")[-3000:]
                         for p in sorted(self.log_dir.glob("worker-*.log")))

    def stop(self) -> None:
        for p in self.procs:
            if p.poll() is None:
                p.terminate()
                try:
                    p.wait(10)
                except subprocess.TimeoutExpired:
                    p.kill()


@pytest.fixture
def workers(rt: Runtime, tmp_path: Path) -> Iterator[Workers]:
    _redis_or_skip()
    w = Workers(rt.settings, tmp_path)
    yield w
    w.stop()


def _copy_database(rt: Runtime, tmp_path: Path) -> str:
    """A copy of the test database as it is now: the undisturbed run's starting point."""
    rt.engine.dispose()
    url = make_url(rt.settings.database_url)
    if url.get_backend_name() == "sqlite":
        target = tmp_path / "undisturbed.db"
        shutil.copy(str(url.database), target)
        return f"sqlite:///{target}"
    name = f"{url.database}_copy"
    admin = create_engine(url.set(database="postgres"), isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f'DROP DATABASE IF EXISTS "{name}"'))
        conn.execute(text(f'CREATE DATABASE "{name}" TEMPLATE "{url.database}"'))
    admin.dispose()
    return url.set(database=name).render_as_string(hide_password=False)


def _drop_copy(url: str) -> None:
    u = make_url(url)
    if u.get_backend_name() == "postgresql":
        admin = create_engine(u.set(database="postgres"), isolation_level="AUTOCOMMIT")
        with admin.connect() as conn:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{u.database}" WITH (FORCE)'))
        admin.dispose()


def _reader(rt: Runtime) -> Engine:
    """What the test watches the run through. On SQLite the app's engine begins every
    transaction IMMEDIATE (a writer's lock), so a watcher through it queues behind the
    workers' writes and can miss the run's middle altogether; a plain WAL reader never
    waits."""
    url = rt.settings.database_url
    if not url.startswith("sqlite"):
        return rt.engine
    if url not in _READERS:
        _READERS[url] = create_engine(url)
    return _READERS[url]


_READERS: dict[str, Engine] = {}


def _state(rt: Runtime, day: dt.date) -> tuple[str, int, int]:
    with Session(_reader(rt)) as db:
        w = db.scalar(select(ClearingWindow).where(ClearingWindow.business_date == day))
        if w is None:
            return "none", 0, 0
        done = db.scalar(select(func.count()).select_from(ClearingPartition).where(
            ClearingPartition.window_id == w.id, ClearingPartition.status == "done")) or 0
        total = db.scalar(select(func.count()).select_from(ClearingPartition).where(
            ClearingPartition.window_id == w.id)) or 0
        return w.status, int(done), int(total)


def test_a_worker_killed_mid_run_leaves_the_same_results(rt: Runtime, workers: Workers,
                                                           tmp_path: Path) -> None:
    # Yesterday's uploads: the window closes at its cut-off in both runs.
    day = dt.datetime.now(TAIPEI).date() - dt.timedelta(days=1)
    pop = synthetic.population(rt, merchants=30, cards=200)
    synthetic.records(rt, pop, 30_000,
                      received_at=dt.datetime.combine(day, dt.time(12), TAIPEI))
    copy_url = _copy_database(rt, tmp_path)
    try:
        first = workers.start()
        workers.send("run_window", day.isoformat())
        deadline = time.monotonic() + 120
        while True:
            status, done, total = _state(rt, day)
            if total and 1 <= done < total - 1:
                break
            if status in ("cleared", "settled") or time.monotonic() > deadline:
                pytest.fail(f"the run was not caught in the middle ({status}, {done}/{total}):"
                            f"\n{workers.logs()}")
            time.sleep(0.005)
        os.kill(first.pid, signal.SIGKILL)
        first.wait(10)
        killed_at = _state(rt, day)
        assert killed_at[0] == "closed" and killed_at[1] < killed_at[2], killed_at

        workers.start()
        deadline = time.monotonic() + 120
        while _state(rt, day)[0] != "settled":
            # The chord's callback died with the worker: the sweeper finds the run unfinished
            # and dispatches what is left (beat sends it every few minutes; here, now).
            workers.send("sweep", 0)
            if time.monotonic() > deadline:
                pytest.fail(f"the window was not settled: {_state(rt, day)}\n{workers.logs()}")
            time.sleep(1)
        with rt.sessions() as db:
            run = db.scalar(select(ClearingRun))
            assert run is not None and run.status == "finished" and run.dispatches >= 2
        disturbed = service.files_of(rt, day)

        undisturbed_rt = Runtime.build(rt.settings.model_copy(update={"database_url": copy_url}))
        try:
            window = service.run_in_process(undisturbed_rt, day)
            assert window.status == "settled" and window.records == 30_000
            assert service.files_of(undisturbed_rt, day) == disturbed
        finally:
            undisturbed_rt.close()
    finally:
        _drop_copy(copy_url)
