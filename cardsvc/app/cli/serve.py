"""`cardsvc serve`, `cardsvc demo`, `cardsvc seed`: the commands at the top level."""

from __future__ import annotations

from typing import Annotated

import typer

from cardsvc.app.cli.common import _runtime, console
from cardsvc.app.demo import run_demo
from cardsvc.app.http import create_app
from cardsvc.app.seed import run_seed
from cardsvc.app.server import serve as run_server
from cardsvc.config import get_settings


def serve(
    host: Annotated[str | None, typer.Option(help="Bind address")] = None,
    port: Annotated[int | None, typer.Option(help="Port")] = None,
    workers: Annotated[int, typer.Option(min=1, max=64,
                                         help="API processes (one per core)")] = 1,
) -> None:
    """Run the counter API. First start creates the database, keys and an admin account."""

    settings = get_settings()
    rt = _runtime(settings).runtime
    h, p = host or settings.host, port or settings.port
    console.print(f"Counter API on http://{h}:{p}  (API docs: http://{h}:{p}/docs)  "
                  f"database: {rt.engine.dialect.name}"
                  + (f"  workers: {workers}" if workers > 1 else ""))
    app_or_path: object = "cardsvc.app.asgi:app" if workers > 1 else create_app(rt, serving=True)
    if workers > 1:
        rt.close()  # each worker builds its own (cardsvc.app.asgi)
    run_server(app_or_path, host=h, port=p, head_limit=settings.max_header_bytes,
               workers=workers, forwarded_allow_ips=settings.forwarded_allow_ips)


def demo() -> None:
    """The counter's day, end to end, against a throw-away database."""

    ok = run_demo(console)
    raise typer.Exit(code=0 if ok else 1)


def seed(
    cards: Annotated[int, typer.Option(help="How many cards to create", min=1, max=2_000_000)],
    random_seed: Annotated[int, typer.Option("--seed", help="Random seed")] = 2017,
) -> None:
    """Create a synthetic population with the county's product and township mix."""

    rt = _runtime().runtime
    run_seed(rt, cards, random_seed, console)

