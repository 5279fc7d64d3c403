"""`cardsvc retention`: erasing the personal data of residents nothing needs any more
(cardsvc/holders/retention.py says who is due and what erasure does)."""

from __future__ import annotations

import csv
import io
from pathlib import Path
from typing import Annotated

import typer
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn
from rich.table import Table

from cardsvc.app.cli.common import _fail, _runtime, cli_actor, console
from cardsvc.context import TAIPEI
from cardsvc.db import unit_of_work
from cardsvc.holders import retention

app = typer.Typer(help="Retention: erase residents' personal data when it is due.",
                  no_args_is_help=True)

CSV_FIELDS = ("cardholder_id", "last_activity", "person_id_masked")


def _csv(found: list[retention.Candidate]) -> str:
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(CSV_FIELDS)
    for c in found:
        w.writerow([c.holder_id, c.last_activity.astimezone(TAIPEI).date().isoformat(),
                    c.person_id_masked])
    return buf.getvalue()


@app.command("run")
def run(
    dry_run: Annotated[bool, typer.Option("--dry-run", help="List who would be erased; "
                                          "change nothing")] = False,
    years: Annotated[int | None, typer.Option(
        min=1, max=100, help="Years without activity (default: the retention_years "
        "setting)")] = None,
    csv_out: Annotated[Path | None, typer.Option(
        "--csv", help="With --dry-run: also write the list to this CSV file")] = None,
    yes: Annotated[bool, typer.Option("--yes", help="Erase without asking")] = False,
) -> None:
    """Erase the personal data of residents with no live card, no open balance and no
    activity for the given years. Run it with --dry-run first: erasure cannot be undone."""
    if csv_out is not None and not dry_run:
        raise _fail("--csv lists who would be erased: use it with --dry-run")
    rt = _runtime().runtime
    years = years or rt.settings.retention_years
    actor = cli_actor()
    if dry_run:
        with unit_of_work(rt.sessions) as db:
            found = retention.review(rt.ctx(db, actor), years)
        table = Table(title=f"Due for erasure: no live card, no balance, no activity for "
                      f"{years} year(s)")
        for column in ("cardholder", "last activity", "national ID"):
            table.add_column(column)
        for c in found:
            table.add_row(str(c.holder_id),
                          c.last_activity.astimezone(TAIPEI).date().isoformat(),
                          c.person_id_masked)
        console.print(table)
        console.print(f"{len(found)} resident(s) would be erased; nothing was changed")
        if csv_out is not None:
            try:
                csv_out.write_text(_csv(found), encoding="utf-8-sig")
            except OSError as exc:
                console.print(f"[red]cannot write {csv_out}:[/] {exc.strerror}")
                raise typer.Exit(code=1) from None
            console.print(f"wrote {csv_out}")
        return
    with unit_of_work(rt.sessions) as db:
        count = len(retention.due(rt.ctx(db, actor), years))
    if count == 0:
        console.print("nobody is due for erasure")
        return
    if not yes and not typer.confirm(
            f"Erase the personal data of {count} resident(s)? This cannot be undone."):
        raise typer.Exit(code=1)
    with Progress(TextColumn("erasing"), BarColumn(), MofNCompleteColumn(), console=console,
                  transient=True) as progress:
        task = progress.add_task("erase", total=count)
        result = retention.run(
            rt, actor, years,
            progress=lambda done, total: progress.update(task, completed=done, total=total))
    console.print(f"erased {result.erased} resident(s) of {result.due} due"
                  + (f"; {result.skipped} no longer due" if result.skipped else ""))
    if result.compacted:
        console.print("compacted the embedded database: nothing erased is left in its free "
                      "pages")
    elif rt.engine.dialect.name == "sqlite" and result.erased:
        console.print("[yellow]the embedded database was busy and is not compacted yet: "
                      "erased data may linger in its free pages until the next run[/]")
    if result.failed:
        raise _fail(f"{len(result.failed)} resident(s) not erased (tried again next run): "
                    f"{', '.join(str(i) for i in result.failed[:20])}")
