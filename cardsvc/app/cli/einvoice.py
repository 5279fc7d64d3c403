"""`cardsvc einvoice`: draws, the periods' prize checks and reports, paper invoices."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from cardsvc.app import reports
from cardsvc.app.cli.common import _fail, _runtime, cli_actor, console
from cardsvc.db import unit_of_work
from cardsvc.einvoice import platform, rules, service
from cardsvc.einvoice import schemas as s
from cardsvc.errors import DomainError
from cardsvc.runtime import Runtime

app = typer.Typer(help="E-invoice carrier: draws, prize checks, reports.", no_args_is_help=True)
draw_app = typer.Typer(help="A period's winning numbers.", no_args_is_help=True)
app.add_typer(draw_app, name="draw")

PeriodOpt = Annotated[int, typer.Option(help="yyyMM: ROC year and the even month, e.g. 11410")]


@draw_app.command("import")
def draw_import(file: Annotated[Path, typer.Argument(help="The QryWinningList answer (JSON)")],
                cloud: Annotated[Path | None, typer.Option(
                    help="The period's cloud-prize list (CSV or JSON)")] = None) -> None:
    """Import a period's draw (a re-import replaces it and checks the period again)."""
    rt = _runtime().runtime
    try:
        with unit_of_work(rt.sessions) as db:
            ctx = rt.ctx(db, cli_actor())
            draw = service.import_draw(ctx, service.read_draw_file(file.read_bytes()))
            prizes = service.import_cloud(ctx, draw.period, cloud.read_bytes()) if cloud else 0
    except DomainError as exc:
        raise _fail(exc.detail) from None
    except OSError as exc:
        raise _fail(f"cannot read {exc.filename}: {exc.strerror}") from None
    console.print(f"draw of {rules.period_label(draw.period)} ({draw.period}) imported"
                  + (f", {prizes} cloud prizes" if cloud else ""))


@app.command("check")
def check(period: PeriodOpt) -> None:
    """Check every carrier invoice of the period; notify the winners (once per win)."""
    rt = _runtime().runtime
    columns = (TextColumn("[bold]{task.description}"), BarColumn(), MofNCompleteColumn(),
               TimeElapsedColumn())
    try:
        with Progress(*columns, console=console) as progress, \
                unit_of_work(rt.sessions) as db:
            task = progress.add_task(f"checking {period}", total=None)
            out = service.run_check(rt.ctx(db, cli_actor()), period,
                                    lambda done, total: progress.update(
                                        task, completed=done, total=total))
    except DomainError as exc:
        raise _fail(exc.detail) from None
    console.print(f"{out.invoices:,} invoices checked: {out.winners:,} winners, "
                  f"NT${out.amount:,}; {out.notified} residents notified")
    _print_report(service_report(rt, period))


def service_report(rt: Runtime, period: int) -> s.PeriodReport:
    with unit_of_work(rt.sessions) as db:
        return service.report(rt.ctx(db, cli_actor()), period)


def _print_report(out: s.PeriodReport) -> None:
    console.print(reports.prizes_table(out))


@app.command("report")
def report(period: PeriodOpt,
           fmt: Annotated[str, typer.Option("--format", help="table, csv or json")] = "table"
           ) -> None:
    """A period's check: winners and amounts by tier, exclusions by reason."""
    rt = _runtime().runtime
    out = service_report(rt, period)
    if fmt == "csv":
        typer.echo(service.report_csv(out), nl=False)
    elif fmt == "json":
        typer.echo(json.dumps(out.model_dump(mode="json"), ensure_ascii=False, indent=1))
    else:
        _print_report(out)


@app.command("prize")
def prize(numbers: Annotated[list[str] | None, typer.Argument(help="Invoice numbers")] = None,
          period: Annotated[int | None, typer.Option(help="yyyMM of the numbers")] = None,
          qr: Annotated[str | None, typer.Option(help="The text of a proof's left QR code")
                        ] = None) -> None:
    """Check paper invoices: numbers with their period, or a proof's QR code."""
    rt = _runtime().runtime
    try:
        data = s.PaperCheck(period=period, numbers=numbers or [], qr=qr)
        with unit_of_work(rt.sessions) as db:
            results = service.paper_check(rt.ctx(db, cli_actor()), data)
    except DomainError as exc:
        raise _fail(exc.detail) from None
    except ValueError as exc:
        raise _fail(str(exc).splitlines()[-1]) from None
    table = Table("period", "invoice", "prize", "NT$", "note")
    for r in results:
        table.add_row(str(r.period), r.number, r.tier_name or "—", f"{r.amount:,}", r.note)
    console.print(table)


@app.command("tell-platform")
def tell_platform() -> None:
    """Tell the MOF platform the 歸戶 unbindings it is owed and did not take yet (a worker's
    sweep does this every five minutes; exit 1 when some are still owed)."""
    rt = _runtime().runtime
    told = platform.tell(rt.sessions, platform.platform_of(rt.services))
    console.print(f"{told.told} unbinding(s) told to the e-invoice platform"
                  + (f"; {told.left} not taken, still owed" if told.left else ""))
    if told.left:
        raise typer.Exit(1)
