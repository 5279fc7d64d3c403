"""`cardsvc checkin`, `cardsvc draw`, `cardsvc events`: a venue's check-in station, the
verification of a published draw (no database, no keys), points expiry and participation."""

from __future__ import annotations

import datetime as dt
import os
from pathlib import Path
from typing import Annotated

import httpx
import typer
from rich.table import Table

from cardsvc.app.cli.common import _fail, _runtime, cli_actor, console
from cardsvc.app.cli.sim import _pos_reader
from cardsvc.app.station import CheckinStation, Tap
from cardsvc.db import unit_of_work
from cardsvc.errors import DomainError
from cardsvc.events import drawrule, stats
from cardsvc.points import service as points

checkin_app = typer.Typer(help="A check-in station at an event's venue.", no_args_is_help=True)
draw_app = typer.Typer(help="County events' draws.", no_args_is_help=True)
events_app = typer.Typer(help="County events: points and participation.",
                         no_args_is_help=True)


def _station(api: str, username: str, event: int, name: str, state: Path) -> CheckinStation:
    password = os.environ.get("CARDSVC_STATION_PASSWORD") or typer.prompt(
        f"password of {username}", hide_input=True)
    http = httpx.Client(base_url=api, timeout=10)
    r = http.post("/auth/login", json={"username": username, "password": password})
    if r.status_code != 200:
        raise _fail(f"login refused: {r.json().get('detail', r.text)}")
    return CheckinStation(http, r.json()["access_token"], event, name, state)


def _show(tap: Tap) -> None:
    if tap.status in ("checked_in", "kept"):
        console.print(f"[bold green]✔ 簽到完成 checked in[/]  抽獎券 ticket [bold]{tap.ticket}[/]"
                      + (f"  +{tap.points} 點 points" if tap.points else "")
                      + (f"  ({tap.detail})" if tap.detail else ""))
    elif tap.status == "repeated":
        console.print(f"[yellow]already stored[/]  ticket {tap.ticket}")
    else:
        console.print(f"[bold red]✘ {tap.code}[/]  {tap.detail or ''}")


@checkin_app.command("station")
def station(
    event: Annotated[int, typer.Option(help="The event's id")],
    api: Annotated[str, typer.Option(help="The API's base URL")] = "http://127.0.0.1:8000",
    username: Annotated[str, typer.Option(help="An organiser's login "
                                          "(password: CARDSVC_STATION_PASSWORD or a prompt)")
                        ] = "",
    reader: Annotated[str, typer.Option(help="pcsc[:<name>] or sim:<card state file>")
                      ] = "pcsc",
    name: Annotated[str, typer.Option(help="This station's name")] = "station-1",
    state: Annotated[Path, typer.Option(help="Where taps are kept while offline")
                     ] = Path("checkin-station.json"),
    once: Annotated[bool, typer.Option(help="One tap, then exit")] = False,
    phone: Annotated[str | None, typer.Option(help="A phone's check-in token, scanned")
                     ] = None,
) -> None:
    """Check residents in: each card on the reader (or a phone's token) in turn."""
    st = _station(api, username, event, name, state)
    if st.kept:
        try:
            out = st.upload()
            console.print(f"uploaded the offline taps: {out}")
        except (httpx.TransportError, RuntimeError) as exc:
            console.print(f"[yellow]still offline ({exc}); {len(st.kept)} tap(s) kept[/]")
    if phone:
        _show(st.scan_phone(phone))
        return
    while True:
        try:
            _show(st.tap_card(_pos_reader(reader)))
        except (OSError, ValueError) as exc:
            console.print(f"[red]card error: {exc}[/]")
        if once:
            return
        if reader.startswith("pcsc"):
            from readers.pcsc import PcscReader  # pyscard: only with the pcsc extra
            PcscReader(reader[5:] if reader.startswith("pcsc:") else "").wait_for_removal(30)


@checkin_app.command("upload")
def upload(event: Annotated[int, typer.Option()],
           api: Annotated[str, typer.Option()] = "http://127.0.0.1:8000",
           username: Annotated[str, typer.Option()] = "",
           name: Annotated[str, typer.Option()] = "station-1",
           state: Annotated[Path, typer.Option()] = Path("checkin-station.json")) -> None:
    """Send the taps a station kept while offline (safe to repeat)."""
    out = _station(api, username, event, name, state).upload()
    console.print(out or "nothing to upload")


@draw_app.command("verify")
def verify(file: Annotated[Path, typer.Argument(help="The record from "
                                                "/public/events/{id}/draw")]) -> None:
    """Recompute a published draw from its record: no database, no keys. The same checker
    runs alone as `python cardsvc/events/drawrule.py FILE`."""
    raise typer.Exit(drawrule.main([str(file)]))


@events_app.command("expire-points")
def expire_points() -> None:
    """Expire the points awards left unused past their end (the daily job, by hand)."""
    rt = _runtime().runtime
    with unit_of_work(rt.sessions) as db:
        residents, expired = points.expire_due(rt.ctx(db, cli_actor()))
    console.print(f"{expired} point(s) of {residents} resident(s) expired")


@events_app.command("participation")
def participation(
    date_from: Annotated[str, typer.Option("--from", help="YYYY-MM-DD")],
    date_to: Annotated[str, typer.Option("--to", help="YYYY-MM-DD")],
    by: Annotated[str, typer.Option(help=", ".join(stats.DIMENSIONS))] = "event",
    csv: Annotated[Path | None, typer.Option(help="Also write CSV here")] = None,
    svg: Annotated[Path | None, typer.Option(help="Also write the chart (SVG) here")] = None,
) -> None:
    """Check-ins for the county, cells of fewer than 5 residents shown as <5."""
    rt = _runtime().runtime
    try:
        start, end = dt.date.fromisoformat(date_from), dt.date.fromisoformat(date_to)
        with unit_of_work(rt.sessions) as db:
            report = stats.participation(rt.ctx(db, cli_actor()), by, start, end)
    except ValueError as exc:
        raise _fail(f"dates are YYYY-MM-DD: {exc}") from None
    except DomainError as exc:
        raise _fail(exc.detail) from None
    table = Table(by, "check-ins", "residents",
                  title=f"縣政活動參與 participation {start} – {end}")
    for row in report.rows:
        table.add_row(row.key, str(row.checkins), str(row.residents))
    console.print(table)
    if csv:
        csv.write_text(stats.to_csv(report), encoding="utf-8")
    if svg:
        svg.write_text(stats.to_svg(report), encoding="utf-8")
