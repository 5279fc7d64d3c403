"""Clearing operations as units of work on a runtime: what the tasks, the CLI and the demo
call. Each function opens its own unit_of_work(s)."""

from __future__ import annotations

import datetime as dt
import json
import os
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor, as_completed
from dataclasses import dataclass

from sqlalchemy import select

from cardsvc.audit import service as audit
from cardsvc.config import Settings
from cardsvc.context import Actor, Ctx
from cardsvc.db import unit_of_work, utcnow
from cardsvc.db_upsert import insert_if_absent
from cardsvc.errors import NotFound
from cardsvc.runtime import Runtime
from merchants.registry.models import Merchant
from settlement.bills.models import Biller, BillerRemittance
from settlement.clearing import steps as clearing
from settlement.clearing import windows
from settlement.clearing.models import (
    ClearingException,
    ClearingFile,
    ClearingPartition,
    ClearingRun,
    ClearingWindow,
    MerchantStatement,
    WindowStatus,
)

ACTOR = Actor.system("clearing")


def _ctx(rt: Runtime, db: object) -> Ctx:
    return rt.ctx(db, ACTOR)  # type: ignore[arg-type]


@dataclass
class Started:
    window_id: int
    pending: list[int]  # merchants whose partition is not done


def due_day(rt: Runtime) -> dt.date:
    with rt.sessions() as db:
        return windows.business_day_due(_ctx(rt, db))


def close(rt: Runtime, day: dt.date) -> ClearingWindow:
    with unit_of_work(rt.sessions) as db:
        window = windows.close(_ctx(rt, db), day)
        db.expunge(window)
        return window


def _pending(db: object, window_id: int) -> list[int]:
    return [int(m) for m in db.scalars(  # type: ignore[attr-defined]
        select(ClearingPartition.merchant_id).where(
            ClearingPartition.window_id == window_id, ClearingPartition.status != "done")
        .order_by(ClearingPartition.merchant_id))]


def _close_and_register(ctx: Ctx, day: dt.date) -> tuple[ClearingWindow, bool]:
    """Close the window; register its one run. False: a run was registered before (the
    unique window id refuses a second one)."""
    window = windows.close(ctx, day)
    run_id = insert_if_absent(ctx.db, ClearingRun,
                              {"window_id": window.id, "status": "running",
                               "started_at": ctx.now, "dispatched_at": ctx.now,
                               "dispatches": 1},
                              [ClearingRun.window_id], ClearingRun.id)
    return window, run_id is not None


def start(rt: Runtime, day: dt.date) -> Started | None:
    """Close the window and register its one run. None when a run was registered before:
    that run is the sweeper's to finish."""
    with unit_of_work(rt.sessions) as db:
        window, registered = _close_and_register(_ctx(rt, db), day)
        return Started(window.id, _pending(db, window.id)) if registered else None


def run_partition(rt: Runtime, window_id: int, merchant_id: int) -> int:
    with unit_of_work(rt.sessions) as db:
        return clearing.verify_partition(_ctx(rt, db), window_id, merchant_id)


def finish(rt: Runtime, window_id: int) -> str:
    """Clear, then settle: two transactions, each done once."""
    with unit_of_work(rt.sessions) as db:
        clearing.clear(_ctx(rt, db), window_id)
    with unit_of_work(rt.sessions) as db:
        clearing.settle(_ctx(rt, db), window_id)
    return WindowStatus.SETTLED.value


def stale_runs(rt: Runtime, stale_seconds: int | None = None) -> list[Started]:
    """Runs not finished `stale_seconds` after their last dispatch: marked dispatched again
    and returned with their unfinished partitions."""
    stale = rt.settings.clearing_stale_seconds if stale_seconds is None else stale_seconds
    out = []
    with unit_of_work(rt.sessions) as db:
        now = utcnow()
        runs = db.scalars(select(ClearingRun).where(
            ClearingRun.status == "running",
            ClearingRun.dispatched_at <= now - dt.timedelta(seconds=stale))
            .order_by(ClearingRun.window_id).with_for_update(skip_locked=True))
        for run in runs:
            run.dispatched_at, run.dispatches = now, run.dispatches + 1
            out.append(Started(run.window_id, _pending(db, run.window_id)))
    return out


def run_in_process(rt: Runtime, day: dt.date,
                   progress: Callable[[int, int], None] | None = None) -> ClearingWindow:
    """The whole run in this process, partition by partition (the embedded default and the
    CLI's progress bar). Resumes whatever an earlier run left unfinished."""
    with unit_of_work(rt.sessions) as db:
        ctx = _ctx(rt, db)
        window, _ = _close_and_register(ctx, day)
        window_id = window.id
        total = len(windows.partitions(ctx, window))
        pending = _pending(db, window_id)
    done = total - len(pending)
    workers = min(len(pending), os.cpu_count() or 1)
    if workers > 1 and rt.engine.dialect.name == "postgresql":
        # Verification is CPU work (CMAC): one process per core, like a worker pool.
        with ProcessPoolExecutor(workers) as pool:
            futures = [pool.submit(_partition_in_child, rt.settings, window_id, m)
                       for m in pending]
            for future in as_completed(futures):
                future.result()
                done += 1
                if progress:
                    progress(done, total + 1)
    else:
        for merchant in pending:
            run_partition(rt, window_id, merchant)
            done += 1
            if progress:
                progress(done, total + 1)
    finish(rt, window_id)
    if progress:
        progress(total + 1, total + 1)
    return get_window(rt, day)


_child_runtime: Runtime | None = None


def _partition_in_child(settings: Settings, window_id: int, merchant_id: int) -> int:
    global _child_runtime
    if _child_runtime is None:
        _child_runtime = Runtime.build(settings)
    return run_partition(_child_runtime, window_id, merchant_id)


def get_window(rt: Runtime, day: dt.date) -> ClearingWindow:
    with rt.sessions() as db:
        window = windows.get(_ctx(rt, db), day)
        db.expunge(window)
        return window


# --- reading what a window produced --------------------------------------------------------


@dataclass
class Report:
    window: ClearingWindow
    statements: list[tuple[MerchantStatement, str]]  # with the merchant's name
    exceptions: list[ClearingException]
    summary: dict[str, object]
    remittances: list[tuple[BillerRemittance, str]]  # with the biller's name


def report(rt: Runtime, day: dt.date) -> Report:
    with rt.sessions() as db:
        window = windows.get(_ctx(rt, db), day)
        if window.status not in (WindowStatus.CLEARED, WindowStatus.SETTLED):
            raise NotFound(f"the window of {day} is {window.status}: no report yet "
                           f"(run `cardsvc settle run --date {day}`)")
        rows = db.execute(select(MerchantStatement, Merchant.legal_name).join(
            Merchant, Merchant.id == MerchantStatement.merchant_id).where(
            MerchantStatement.window_id == window.id).order_by(MerchantStatement.merchant_id))
        statements = [(s, name) for s, name in rows]
        exceptions = list(db.scalars(select(ClearingException).where(
            ClearingException.window_id == window.id).order_by(ClearingException.id)))
        summary = json.loads(file_content(rt, db, window.id, "summary.json"))
        remitted = [(r, name) for r, name in db.execute(
            select(BillerRemittance, Merchant.legal_name)
            .join(Biller, Biller.id == BillerRemittance.biller_id)
            .join(Merchant, Merchant.id == Biller.merchant_id)
            .where(BillerRemittance.window_id == window.id)
            .order_by(BillerRemittance.biller_id))]
        db.expunge_all()
        return Report(window, statements, exceptions, summary, remitted)


def file_content(rt: Runtime, db: object, window_id: int, name: str) -> str:
    f = db.scalar(select(ClearingFile).where(  # type: ignore[attr-defined]
        ClearingFile.window_id == window_id, ClearingFile.name == name))
    if f is None:
        raise NotFound(f"window {window_id} has no file {name}")
    return rt.keys.pii.decrypt("clearing_file", f.content) if f.encrypted else str(f.content)


def files_of(rt: Runtime, day: dt.date) -> dict[str, str]:
    """Every file of a window, by name (the payout file decrypted: an audited read)."""
    with unit_of_work(rt.sessions) as db:
        window = windows.get(_ctx(rt, db), day)
        names = list(db.scalars(select(ClearingFile.name).where(
            ClearingFile.window_id == window.id).order_by(ClearingFile.name)))
        out = {n: file_content(rt, db, window.id, n) for n in names}
        if "payout.xml" in out:
            audit.record(_ctx(rt, db), "pii.read", target_type="clearing_window",
                         target_id=day, purpose="payout file export")
        return out
