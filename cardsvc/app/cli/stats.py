"""`cardsvc stats`: reports."""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from typing import Annotated

import typer

from cardsvc.app import reports
from cardsvc.app.cli.common import _runtime, cli_actor, console
from cardsvc.context import Ctx
from cardsvc.db import unit_of_work
from cardsvc.stats import service

app = typer.Typer(help="Reports.", no_args_is_help=True)



@app.command("issuance")
def stats_issuance(
    date_from: Annotated[dt.datetime, typer.Option("--from", formats=["%Y-%m-%d"])],
    date_to: Annotated[dt.datetime, typer.Option("--to", formats=["%Y-%m-%d"])],
    csv_out: Annotated[Path | None, typer.Option("--csv", help="Also write a CSV file")] = None,
) -> None:
    """Cards issued by product, status and township between two days (Asia/Taipei)."""

    rt = _runtime().runtime
    with unit_of_work(rt.sessions) as db:
        report = service.issuance(Ctx(db, rt.settings, rt.keys, cli_actor()),
                                  date_from.date(), date_to.date())
    console.print(reports.issuance_table(report))
    if csv_out:
        csv_out.write_text(service.to_csv(report), encoding="utf-8-sig")
        console.print(f"wrote {csv_out}")



