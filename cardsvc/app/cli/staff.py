"""`cardsvc staff`: staff accounts."""

from __future__ import annotations

from typing import Annotated

import typer
from rich.table import Table
from sqlalchemy import select

from cardsvc.app.cli.common import _fail, _runtime, cli_actor, console
from cardsvc.db import unit_of_work
from cardsvc.errors import DomainError
from cardsvc.staff import service
from cardsvc.staff.models import Staff

app = typer.Typer(help="Staff accounts.", no_args_is_help=True)



@app.command("add")
def staff_add(
    username: Annotated[str, typer.Argument(help="Login name, e.g. clerk.chen")],
    role: Annotated[str, typer.Option(help="clerk, supervisor, auditor, admin or organiser")],
    name: Annotated[str | None, typer.Option(help="Display name")] = None,
    department: Annotated[str | None, typer.Option(
        help="An organiser's department (whose events they manage)")] = None,
    password: Annotated[str | None, typer.Option(
        help="Password (omit to generate one; prefer omitting, shells keep history)")] = None,
) -> None:
    """Create a staff account."""

    rt = _runtime().runtime
    generated = password is None
    pw = password or service.generate_password()
    try:
        with unit_of_work(rt.sessions) as db:
            staff = service.create_staff(db, cli_actor(), username, role, pw, name,
                                             department)
    except DomainError as exc:
        raise _fail(exc.detail) from None
    console.print(f"created {staff.username} ({staff.role})")
    if generated:
        console.print(f"  password: {pw}  (shown once)")


@app.command("list")
def staff_list() -> None:
    """List staff accounts."""


    rt = _runtime().runtime
    table = Table("id", "username", "name", "role", "active")
    with unit_of_work(rt.sessions) as db:
        for s in db.scalars(select(Staff).order_by(Staff.id)):
            table.add_row(str(s.id), s.username, s.display_name, s.role,
                          "yes" if s.active else "no")
    console.print(table)


@app.command("passwd")
def staff_passwd(username: str) -> None:
    """Set a new password for a staff account (prompts twice)."""

    rt = _runtime().runtime
    pw = typer.prompt("new password", hide_input=True, confirmation_prompt=True)
    try:
        with unit_of_work(rt.sessions) as db:
            staff = service.find_by_username(db, username)
            if staff is None:
                raise _fail(f"no staff account {username!r}")
            service.set_password(db, cli_actor(), staff.id, pw)
    except DomainError as exc:
        raise _fail(exc.detail) from None
    console.print("password changed")



@app.command("desk-add")
def desk_add(code: Annotated[str, typer.Argument(help="Desk code, e.g. KM-JC-1")],
             name: Annotated[str, typer.Option(help="What staff see, e.g. 金城櫃台 1")] = "",
             ) -> None:
    """Register a counter desk (its cash drawer is cash:<code>); staff pick it at login."""
    rt = _runtime().runtime
    try:
        with unit_of_work(rt.sessions) as db:
            desk = service.add_desk(db, cli_actor(), code, name)
    except DomainError as exc:
        raise _fail(exc.detail) from None
    console.print(f"desk {desk.code} ({desk.name}) registered")


@app.command("desks")
def desk_list() -> None:
    """The registered counter desks."""
    rt = _runtime().runtime
    with rt.sessions() as db:
        for d in service.desks(db, active_only=False):
            console.print(f"{d.code:<12} {d.name}" + ("" if d.active else "  (closed)"))
