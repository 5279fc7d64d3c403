"""`cardsvc settle ...`: close a business day's window, run its clearing, show its report."""

from __future__ import annotations

import datetime as dt
import json
import time
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from cardsvc.console import make_console
from cardsvc.errors import DomainError
from cardsvc.runtime import Runtime

app = typer.Typer(help="Daily clearing and settlement.", no_args_is_help=True)
console = make_console()
DateOpt = Annotated[dt.datetime, typer.Option("--date", formats=["%Y-%m-%d"],
                                              help="Business day (Asia/Taipei)")]


def _rt() -> Runtime:
    from cardsvc.cli import _runtime
    return _runtime().runtime


def _fail(exc: DomainError) -> typer.Exit:
    console.print(f"[bold red]error ({exc.code}):[/] {exc.detail}")
    return typer.Exit(code=1)


@app.command("close")
def close(date: DateOpt) -> None:
    """Close the day's window: its records are fixed from now on."""
    from settlement import service
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
    from settlement import service
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
    render(service.report(rt, day))


def _run_on_workers(rt: Runtime, day: dt.date, wait: float, progress: Progress,
                    task: object) -> None:
    from sqlalchemy import func, select

    from settlement.celery_app import app as celery
    from settlement.models import ClearingPartition, ClearingWindow
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
    from settlement import files, service
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
        render(r)
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
    from cardsvc.cli import cli_actor
    from cardsvc.context import Ctx
    from cardsvc.db import transaction
    from settlement.reconcile import reconcile
    rt = _rt()
    try:
        with transaction(rt.sessions) as db:
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


def render(r: object, console_: Console | None = None) -> None:
    from settlement.service import Report
    assert isinstance(r, Report)  # noqa: S101
    w = r.window
    table = Table(title=f"Clearing {w.business_date} ({w.status}, {w.records:,} records, "
                  "NT$)", show_footer=True)
    # Each row adds up: net = gross - refunds - fees - collected + b/f (brought forward):
    # "collected" is bill money the merchant took in cash for a biller.
    cols = ("sales", "gross", "refunds", "fees", "collected", "b/f", "net", "payout")
    table.add_column("merchant", footer="total", overflow="fold")  # names wrap, never cut
    sums = dict.fromkeys(cols, 0)
    rows = []
    for s, name in r.statements:
        values = {"sales": s.sales_count, "gross": s.gross, "refunds": s.refunds,
                  "fees": s.fees, "collected": s.collections, "b/f": s.brought_forward,
                  "net": s.net, "payout": s.payout}
        for k in cols:
            sums[k] += values[k]
        rows.append((f"{name} (#{s.merchant_id})", values))
    for k in cols:
        table.add_column(k, justify="right", footer=f"{sums[k]:,}")
    for label, values in rows:
        table.add_row(label, *[f"{values[k]:,}" for k in cols])
    by_reason: dict[str, int] = {}
    for x in r.exceptions:
        by_reason[x.reason] = by_reason.get(x.reason, 0) + 1
    reasons = ", ".join(f"{k} {v}" for k, v in sorted(by_reason.items())) or "none"
    table.caption = (f"b/f: brought forward · exceptions: {reasons} · summary sha256 "
                     f"{(w.summary_hash or '')[:16]}…")
    (console_ or console).print(table)
    if r.remittances:
        billers = Table(title="Remitted to billers (NT$)")
        for col in ("biller", "bills", "amount"):
            billers.add_column(col, justify="left" if col == "biller" else "right")
        for rem, name in r.remittances:
            billers.add_row(f"{name} (biller #{rem.biller_id})", f"{rem.bills:,}",
                            f"{rem.amount:,}")
        (console_ or console).print(billers)
