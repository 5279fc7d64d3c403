"""`cardsvc db`: the database schema."""

from __future__ import annotations

import typer

from cardsvc.app import migrate
from cardsvc.app.cli.common import _fail, console
from cardsvc.config import get_settings
from cardsvc.db import make_engine

app = typer.Typer(help="Database schema.", no_args_is_help=True)



@app.command("upgrade")
def db_upgrade() -> None:
    """Apply all migrations (SQLite or PostgreSQL, per CARDSVC_DATABASE_URL)."""

    engine = make_engine(get_settings().database_url)
    migrate.upgrade(engine)
    console.print(f"schema at {migrate.current_revision(engine)} ({engine.dialect.name})")
    engine.dispose()


@app.command("check")
def db_check() -> None:
    """Fail when the models and the migrations disagree."""

    engine = make_engine(get_settings().database_url)
    try:
        migrate.check(engine)
    except Exception as exc:  # alembic raises its own CommandError types
        raise _fail(str(exc)) from None
    console.print("models and migrations agree")

