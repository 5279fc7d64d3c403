"""`cardsvc settle ...`: close a business day's window, run its clearing, show its report."""

from __future__ import annotations

import datetime as dt
import json
import time
from pathlib import Path
from typing import Annotated

import typer
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table
from sqlalchemy import func, select

from cardsvc.app import reports
from cardsvc.app.cli.common import _runtime, cli_actor, console
from cardsvc.app.worker import app as celery
from cardsvc.context import Ctx
from cardsvc.db import unit_of_work
from cardsvc.errors import DomainError
from cardsvc.runtime import Runtime
from settlement.bills.reconcile import reconcile
from settlement.clearing import files, service
from settlement.clearing.models import ClearingPartition, ClearingWindow

app = typer.Typer(help="Daily clearing and settlement.", no_args_is_help=True)
DateOpt = Annotated[dt.datetime, typer.Option("--date", formats=["%Y-%m-%d"],
                                              help="Business day (Asia/Taipei)")]


def _rt() -> Runtime:
    return _runtime().runtime


def _fail(exc: DomainError) -> typer.Exit:
    console.print(f"[bold red]error ({exc.code}):[/] {exc.detail}")
    return typer.Exit(code=1)


@app.command("close")
def close(date: DateOpt) -> None:
    """Close the day's window: its records are fixed from now on."""
    try:
        w = service.close(_rt(), date.date())
    except DomainError as exc:
        raise _fail(exc) from None
    console.print(f"window {w.business_date}: {w.status}, {w.records:,} records "
                  f"received before {w.boundary_at}")


@app.command("run")
def run(date: DateOpt,
        wait: Annotated[float, typer.Option(help="With a broker: seconds to wait for the "
                                            "workers")] = 3_600) -> None:
    """Clear and settle the day: in this process (embedded default) or on the Celery workers
    when CARDSVC_BROKER_URL is set. A window that was cleared already is left as it is."""
    rt = _rt()
    day = date.date()
    columns = (TextColumn("[bold]{task.description}"), BarColumn(), MofNCompleteColumn(),
               TimeElapsedColumn())
    try:
        with Progress(*columns, console=console) as progress:
            task = progress.add_task(f"clearing {day}", total=None)
            if rt.settings.broker_url:
                _run_on_workers(rt, day, wait, progress, task)
            else:
                service.run_in_process(
                    rt, day, lambda done, total: progress.update(task, completed=done,
                                                                 total=total))
    except DomainError as exc:
        raise _fail(exc) from None
    reports.print_clearing(service.report(rt, day), console)


def _run_on_workers(rt: Runtime, day: dt.date, wait: float, progress: Progress,
                    task: object) -> None:

    celery.send_task("settlement.tasks.run_window", args=[day.isoformat()])
    deadline = time.monotonic() + wait
    while time.monotonic() < deadline:
        with rt.sessions() as db:
            w = db.scalar(select(ClearingWindow).where(ClearingWindow.business_date == day))
            if w is not None:
                rows = dict(db.execute(select(ClearingPartition.status, func.count()).where(
                    ClearingPartition.window_id == w.id).group_by(ClearingPartition.status))
                    .tuples().all())
                total = sum(rows.values()) + 1
                done = rows.get("done", 0) + (w.status == "settled")
                progress.update(task, completed=done, total=total)  # type: ignore[arg-type]
                if w.status == "settled":
                    return
        time.sleep(0.5)
    raise typer.Exit(code=3)


@app.command("report")
def report(date: DateOpt,
           fmt: Annotated[str, typer.Option("--format", help="table, csv or json")] = "table",
           out: Annotated[Path | None, typer.Option(help="Write every file of the window "
                                                    "(statements, summary, exceptions, payout) "
                                                    "into this directory")] = None) -> None:
    """The day's clearing report: per merchant gross, refunds, fees, net and payout."""
    rt = _rt()
    try:
        r = service.report(rt, date.date())
    except DomainError as exc:
        raise _fail(exc) from None
    if fmt == "json":
        print(json.dumps(r.summary, ensure_ascii=False, indent=2, sort_keys=True))
    elif fmt == "csv":
        print("merchant_id,legal_name," + ",".join(files.TOTAL_FIELDS))
        for s, name in r.statements:
            print(f"{s.merchant_id},\"{name}\"," + ",".join(
                str(v) for v in files.totals_of(s).values()))
    elif fmt == "table":
        reports.print_clearing(r, console)
    else:
        console.print("[bold red]error:[/] --format is table, csv or json")
        raise typer.Exit(code=2)
    if out:
        out.mkdir(parents=True, exist_ok=True)
        for name, content in service.files_of(rt, date.date()).items():
            path = out / name
            path.write_text(content, encoding="utf-8")
            if name == "payout.xml":
                path.chmod(0o600)  # it names bank accounts
        console.print(f"wrote the window's files to {out}")


@app.command("reconcile")
def reconcile_cmd(date: DateOpt,
                  biller: Annotated[int, typer.Option(help="Biller id")],
                  file: Annotated[Path, typer.Option(exists=True, dir_okay=False,
                                                     help="The biller's confirmation CSV "
                                                     "(bill_number, amount)")]) -> None:
    """Reconcile a biller's confirmation file with the day's remittance."""
    rt = _rt()
    try:
        with unit_of_work(rt.sessions) as db:
            r = reconcile(Ctx(db, rt.settings, rt.keys, cli_actor()), date.date(), biller,
                          file.read_bytes())
    except DomainError as exc:
        raise _fail(exc) from None
    table = Table(title=f"Reconciliation {date.date()} biller {biller}: {r.matched} matched"
                  + (" (this file was read before)" if r.duplicate else ""))
    for col in ("difference", "bill", "remitted", "confirmed"):
        table.add_column(col)
    for name, items in (("missing", r.missing), ("amount differs", r.amount_differs),
                        ("extra", r.extra)):
        for i in items:
            table.add_row(name, i["bill_number"], str(i.get("remitted", "")),
                          str(i.get("confirmed", "")))
    console.print(table)
    if r.missing or r.extra or r.amount_differs:
        raise typer.Exit(code=2)


