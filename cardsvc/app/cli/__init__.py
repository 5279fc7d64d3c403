"""The `cardsvc` command, one module per command group: serve the API, migrate, manage
staff, verify the audit trail, run batch jobs and reports, manage keys, drive the simulated
hardware, clear and settle, tell the demo, seed synthetic data."""

from __future__ import annotations

import sys

import typer

from cardsvc.app.cli import (  # audit_review adds its commands to the audit group
    audit,
    audit_review,  # noqa: F401
    cards,
    db,
    einvoice,
    events,
    keys,
    library,
    retention,
    serve,
    settle,
    sim,
    staff,
    stats,
    transit,
)
from cardsvc.app.cli.common import console
from cardsvc.errors import ConfigurationError

app = typer.Typer(help="Resident card system: card-management core.", no_args_is_help=True,
                  add_completion=False)
app.command()(serve.serve)
for name, group in (("db", db.app), ("staff", staff.app), ("audit", audit.app),
                    ("cards", cards.app), ("stats", stats.app), ("keys", keys.app),
                    ("sim", sim.app), ("settle", settle.app), ("library", library.app),
                    ("sip2", library.sip2_app), ("einvoice", einvoice.app),
                    ("checkin", events.checkin_app), ("draw", events.draw_app),
                    ("events", events.events_app), ("transit", transit.app),
                    ("retention", retention.app)):
    app.add_typer(group, name=name)
app.command()(serve.demo)
app.command()(serve.seed)


def main() -> None:
    try:
        app()
    except ConfigurationError as exc:
        console.print(f"[bold red]configuration error:[/] {exc}")
        sys.exit(1)
