"""`cardsvc library` and `cardsvc sip2`: the libraries the card borrows at, their feeds and
exports, and the county's SIP2 server."""

from __future__ import annotations

import asyncio
import json
import ssl
from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table
from sqlalchemy import select

from cardsvc.app.cli.common import _fail, _runtime, cli_actor, console
from cardsvc.audit.service import Sealer, seal_all
from cardsvc.context import Ctx
from cardsvc.db import make_engine, make_sessionmaker, unit_of_work
from cardsvc.errors import DomainError
from cardsvc.library import schemas as s
from cardsvc.library import service, webhooks
from cardsvc.library.models import Ils, Library
from cardsvc.library.records import CATEGORY_KEYS
from cardsvc.library.sip2.server import Sip2Server
from cardsvc.runtime import Runtime

app = typer.Typer(help="Libraries: registry, feeds, exports.", no_args_is_help=True)
sip2_app = typer.Typer(help="The county's SIP2 server.", no_args_is_help=True)


def _by_code(ctx: Ctx, code: str) -> Library:
    found = ctx.db.scalar(select(Library).where(Library.code == code.upper()))
    if found is None:
        raise _fail(f"no library {code!r} (see `cardsvc library list`)")
    return found


def _categories(pairs: list[str]) -> dict[str, str]:
    out: dict[str, str] = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or key not in CATEGORY_KEYS:
            raise _fail(f"--category takes KEY=CODE with KEY one of {', '.join(CATEGORY_KEYS)}")
        out[key] = value
    return out


@app.command("add")
def add(code: Annotated[str, typer.Argument(help="Short code, e.g. KMCCL")],
        name: Annotated[str, typer.Option(help="The library's name")],
        branch: Annotated[str, typer.Option(help="Home branch code in its system")],
        category: Annotated[list[str], typer.Option(
            help="KEY=CODE, repeated: the patron category by product or concession; "
                 "default=CODE is required")],
        ils: Annotated[Ils, typer.Option(help="Its library system")] = Ils.KOHA,
        optional: Annotated[str, typer.Option(
            help="Optional fields it may receive with consent: name,phone,email,township")] = "",
        webhook: Annotated[str | None, typer.Option(help="Webhook URL for pushed changes")
                           ] = None) -> None:
    """Register a library; prints its feed key (and webhook secret) once."""
    rt = _runtime().runtime
    try:
        data = s.LibraryCreate.model_validate({
            "code": code, "name": name, "ils": ils.value, "categories": _categories(category),
            "home_branch": branch,
            "optional_fields": [f for f in optional.split(",") if f], "webhook_url": webhook})
        with unit_of_work(rt.sessions) as db:
            out = service.create_library(rt.ctx(db, cli_actor()), data)
    except DomainError as exc:
        raise _fail(exc.detail) from None
    except ValueError as exc:
        raise _fail(str(exc).splitlines()[-1] if str(exc) else "invalid input") from None
    console.print(f"registered {out.code} (#{out.id})")
    console.print(f"  feed key id: {out.feed_key_id}\n  feed key: {out.feed_key}  (shown once)")
    if out.webhook_secret:
        console.print(f"  webhook secret: {out.webhook_secret}  (shown once)")


@app.command("list")
def list_() -> None:
    """Libraries, their links and the state of their feeds."""
    rt = _runtime().runtime
    table = Table("code", "name", "ils", "links", "events", "pushed", "state")
    with unit_of_work(rt.sessions) as db:
        ctx = rt.ctx(db, cli_actor())
        for lib in service.list_libraries(ctx):
            out = service.library_out(ctx, lib)
            state = ("parked: " + (out.feed.last_error or "")) if out.feed.parked_at else (
                "pull only" if not out.webhook_url else
                f"retrying ({out.feed.failures})" if out.feed.failures else "ok")
            table.add_row(out.code, out.name, out.ils, str(out.links), str(out.feed.last_seq),
                          str(out.feed.delivered_seq) if out.webhook_url else "—",
                          state if out.active else "inactive")
    console.print(table)


@app.command("sip-login")
def sip_login(code: Annotated[str, typer.Argument(help="The library's code")],
              username: Annotated[str, typer.Argument(help="The login a kiosk sends (CN)")],
              expiry_field: Annotated[str, typer.Option(
                  help="Field carrying the card's expiry in 64 answers")] = "PA",
              encoding: Annotated[str, typer.Option(help="utf-8 or big5")] = "utf-8") -> None:
    """Add a SIP2 login for a library's kiosk or proxy; prints its password once."""
    rt = _runtime().runtime
    try:
        data = s.SipLoginCreate.model_validate({"username": username,
                                                "expiry_field": expiry_field,
                                                "encoding": encoding})
        with unit_of_work(rt.sessions) as db:
            ctx = rt.ctx(db, cli_actor())
            out = service.add_sip_login(ctx, _by_code(ctx, code).id, data)
    except DomainError as exc:
        raise _fail(exc.detail) from None
    except ValueError as exc:
        raise _fail(str(exc).splitlines()[-1] if str(exc) else "invalid input") from None
    console.print(f"SIP2 login {out.username} for {code.upper()}\n  password: {out.password}"
                  "  (shown once)")


@app.command("resume")
def resume(code: Annotated[str, typer.Argument(help="The library's code")]) -> None:
    """Resume a parked webhook feed where it stopped."""
    rt = _runtime().runtime
    with unit_of_work(rt.sessions) as db:
        ctx = rt.ctx(db, cli_actor())
        service.resume_feed(ctx, _by_code(ctx, code).id)
    console.print(f"{code.upper()}: feed resumed")


@app.command("push")
def push(code: Annotated[str | None, typer.Argument(help="One library (default: all due)")
                         ] = None) -> None:
    """Deliver webhook events now (what the workers' beat does every 30 s)."""
    rt = _runtime().runtime
    with unit_of_work(rt.sessions) as db:
        ctx = rt.ctx(db, cli_actor())
        ids = [_by_code(ctx, code).id] if code else webhooks.due(db, ctx.now)
    for library_id in ids:
        out = webhooks.deliver(rt.sessions, rt.settings, rt.keys, library_id,
                               webhooks.HttpTransport())
        console.print(f"library #{library_id}: {out.state}, {out.delivered} delivered")


@app.command("export")
def export(code: Annotated[str, typer.Argument(help="The library's code")],
           out: Annotated[Path, typer.Option(help="File to write")],
           fmt: Annotated[str, typer.Option("--format", help="koha (CSV) or json")] = "koha"
           ) -> None:
    """Every current patron of a library, for its nightly reconcile (audited)."""
    rt = _runtime().runtime
    with unit_of_work(rt.sessions) as db:
        ctx = rt.ctx(db, cli_actor())
        rows = service.export_records(ctx, _by_code(ctx, code))
    text = service.koha_csv(rows) if fmt == "koha" else json.dumps(rows, ensure_ascii=False,
                                                                   indent=1)
    out.write_text(text, encoding="utf-8")
    console.print(f"{len(rows)} patrons written to {out}")


@app.command("diff")
def diff(code: Annotated[str, typer.Argument(help="The library's code")],
         file: Annotated[Path, typer.Option(help="The library's own patron export (CSV)")],
         ) -> None:
    """What differs between a library's own export and what it should hold (exit 2 if any)."""
    rt = _runtime().runtime
    try:
        with unit_of_work(rt.sessions) as db:
            ctx = rt.ctx(db, cli_actor())
            report = service.diff(ctx, _by_code(ctx, code), file.read_bytes())
    except DomainError as exc:
        raise _fail(exc.detail) from None
    table = Table("patron id", "card", "problem")
    for line in report.differences:
        table.add_row(line.patron_id or "—", line.card_number or "—", line.problem)
    console.print(table)
    console.print(f"{report.compared} rows compared, {len(report.differences)} differences")
    if report.differences:
        raise typer.Exit(code=2)


def make_server(rt: Runtime) -> Sip2Server:
    if rt.engine.dialect.name != "postgresql":
        return Sip2Server(rt.sessions, rt.ctx)
    # A lookup is one read and one audit row: each its own statement, committed as it runs
    # (2 round trips instead of 5 with BEGIN, COMMIT and the pool's ping; a connection the
    # server dropped fails one lookup, and the pool replaces it).
    engine = make_engine(rt.settings.database_url, pool_pre_ping=False,
                         isolation_level="AUTOCOMMIT")
    return Sip2Server(make_sessionmaker(engine), rt.ctx, own_engine=engine)


@sip2_app.command("serve")
def sip2_serve(host: Annotated[str, typer.Option(help="Address to listen on")] = "127.0.0.1",
               port: Annotated[int, typer.Option(help="TCP port (6001 is common)")] = 6001,
               tls_cert: Annotated[Path | None, typer.Option(help="PEM certificate")] = None,
               tls_key: Annotated[Path | None, typer.Option(help="PEM private key")] = None
               ) -> None:
    """Answer libraries' SIP2 clients: is this card good?"""
    rt = _runtime().runtime
    tls = None
    if tls_cert or tls_key:
        if not (tls_cert and tls_key):
            raise _fail("TLS needs both --tls-cert and --tls-key")
        tls = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        tls.load_cert_chain(tls_cert, tls_key)

    def ready(bound: int) -> None:
        console.print(f"SIP2 server on {host}:{bound}{' (TLS)' if tls else ''}; Ctrl-C stops")

    server = make_server(rt)
    # Lookups are audited without waiting for the chain's head; chain them every second.
    sealer = Sealer(rt.sessions)
    sealer.start()
    try:
        asyncio.run(server.serve(host, port, tls, ready))
    except KeyboardInterrupt:
        pass
    except OSError as exc:
        raise _fail(f"cannot listen on {host}:{port} ({exc.strerror or exc})") from None
    finally:
        server.close()
        sealer.stop()
        seal_all(rt.sessions)
