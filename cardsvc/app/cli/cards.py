"""`cardsvc cards`: card batch jobs."""

from __future__ import annotations

import typer

from cardsvc.app.cli.common import _runtime, console
from cardsvc.cards import service
from cardsvc.context import Actor, Ctx
from cardsvc.db import unit_of_work

app = typer.Typer(help="Card batch jobs.", no_args_is_help=True)



@app.command("expire-due")
def cards_expire_due() -> None:
    """Expire cards whose validity or concession ended (run daily)."""

    rt = _runtime().runtime
    with unit_of_work(rt.sessions) as db:
        n = service.expire_due(Ctx(db, rt.settings, rt.keys, Actor.system("expiry-job")))
    console.print(f"expired {n} card(s)")

