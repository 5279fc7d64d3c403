"""What every command shares: the console, who ran it, failing clearly, the runtime."""

from __future__ import annotations

import getpass

import typer

from cardsvc.app.bootstrap import BootReport, bootstrap
from cardsvc.app.console import make_console
from cardsvc.config import Settings, get_settings
from cardsvc.context import Actor
from cardsvc.errors import ConfigurationError

console = make_console()


def cli_actor() -> Actor:
    """Who ran the command, for the audit trail: the operating-system account."""

    try:
        user = getpass.getuser()
    except (KeyError, OSError):
        user = "unknown"
    return Actor(None, f"cli:{user}"[:64], "operator")


def _fail(message: str) -> typer.Exit:
    console.print(f"[bold red]error:[/] {message}")
    return typer.Exit(code=1)


def _runtime(settings: Settings | None = None) -> BootReport:
    settings = settings or get_settings()
    try:
        boot = bootstrap(settings)
    except ConfigurationError as exc:
        raise _fail(str(exc)) from None
    if boot.secrets_created:
        console.print(f"[green]Generated keys in {settings.secrets_file} (mode 0600). "
                      "Back this file up: without it the personal data cannot be read.[/]")
    if boot.admin_password:
        console.print(
            "[bold yellow]First start: created the staff account 'admin'.[/]\n"
            f"  username: admin\n  password: {boot.admin_password}\n"
            "  (shown once; log in with POST /auth/login, then create counter staff with "
            "POST /staff or `cardsvc staff add`)")
    return boot

