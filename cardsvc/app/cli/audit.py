"""`cardsvc audit`: the audit trail."""

from __future__ import annotations

import typer
from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn

from cardsvc.app.cli.common import _runtime, console
from cardsvc.audit import service
from cardsvc.db import unit_of_work

app = typer.Typer(help="The audit trail.", no_args_is_help=True)



@app.command("verify")
def audit_verify() -> None:
    """Check the audit trail's hash chain; name the first broken row."""

    rt = _runtime().runtime
    sealed = service.seal_all(rt.sessions)
    if sealed:
        console.print(f"sealed {sealed} pending audit rows into the chain")
    with unit_of_work(rt.sessions) as db:
        total = service.count_events(db)
        with Progress(TextColumn("verifying audit chain"), BarColumn(),
                      TextColumn("{task.completed}/{task.total}"), TimeElapsedColumn(),
                      console=console, transient=True) as progress:
            task = progress.add_task("verify", total=total)
            result = service.verify_chain(db, lambda n: progress.advance(task, n))
    if result.ok:
        console.print(f"[green]audit chain intact:[/] {result.rows_checked} rows")
        return
    console.print(f"[bold red]audit chain BROKEN at row {result.first_bad_id}:[/] "
                  f"{result.problem} ({result.rows_checked} rows before it are intact)")
    raise typer.Exit(code=2)

