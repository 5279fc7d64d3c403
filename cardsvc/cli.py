"""The `cardsvc` command: serve the API, migrate, manage staff, verify the audit trail, seed
synthetic data, run the counter demo."""

from __future__ import annotations

import csv
import datetime as dt
import sys
from pathlib import Path
from typing import Annotated

import typer
from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from cardsvc.audit import service as audit
from cardsvc.bootstrap import BootReport
from cardsvc.config import Settings, get_settings
from cardsvc.console import make_console
from cardsvc.context import Actor
from cardsvc.errors import ConfigurationError, DomainError
from cardsvc.stats.service import IssuanceReport

app = typer.Typer(help="Resident card system: card-management core.", no_args_is_help=True,
                  add_completion=False)
db_app = typer.Typer(help="Database schema.", no_args_is_help=True)
staff_app = typer.Typer(help="Staff accounts.", no_args_is_help=True)
audit_app = typer.Typer(help="The audit trail.", no_args_is_help=True)
cards_app = typer.Typer(help="Card batch jobs.", no_args_is_help=True)
stats_app = typer.Typer(help="Reports.", no_args_is_help=True)
keys_app = typer.Typer(help="Key management.", no_args_is_help=True)
sim_app = typer.Typer(help="Simulated hardware for tests and demos.", no_args_is_help=True)
app.add_typer(db_app, name="db")
app.add_typer(staff_app, name="staff")
app.add_typer(audit_app, name="audit")
app.add_typer(cards_app, name="cards")
app.add_typer(stats_app, name="stats")
app.add_typer(keys_app, name="keys")
app.add_typer(sim_app, name="sim")
console = make_console()


def cli_actor() -> Actor:
    """Who ran the command, for the audit trail: the operating-system account."""
    import getpass

    try:
        user = getpass.getuser()
    except (KeyError, OSError):
        user = "unknown"
    return Actor(None, f"cli:{user}"[:64], "operator")


def _fail(message: str) -> typer.Exit:
    console.print(f"[bold red]error:[/] {message}")
    return typer.Exit(code=1)


def _runtime(settings: Settings | None = None) -> BootReport:
    from cardsvc.bootstrap import bootstrap
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


@app.command()
def serve(
    host: Annotated[str | None, typer.Option(help="Bind address")] = None,
    port: Annotated[int | None, typer.Option(help="Port")] = None,
    workers: Annotated[int, typer.Option(min=1, max=64,
                                         help="API processes (one per core)")] = 1,
) -> None:
    """Run the counter API. First start creates the database, keys and an admin account."""
    from cardsvc.app import create_app
    from cardsvc.server import serve as run_server

    settings = get_settings()
    rt = _runtime(settings).runtime
    h, p = host or settings.host, port or settings.port
    console.print(f"Counter API on http://{h}:{p}  (API docs: http://{h}:{p}/docs)  "
                  f"database: {rt.engine.dialect.name}"
                  + (f"  workers: {workers}" if workers > 1 else ""))
    app_or_path: object = "cardsvc.asgi:app" if workers > 1 else create_app(rt, serving=True)
    if workers > 1:
        rt.close()  # each worker builds its own (cardsvc.asgi)
    run_server(app_or_path, host=h, port=p, head_limit=settings.max_header_bytes,
               workers=workers, forwarded_allow_ips=settings.forwarded_allow_ips)


@db_app.command("upgrade")
def db_upgrade() -> None:
    """Apply all migrations (SQLite or PostgreSQL, per CARDSVC_DATABASE_URL)."""
    from cardsvc import migrate
    from cardsvc.db import make_engine

    engine = make_engine(get_settings().database_url)
    migrate.upgrade(engine)
    console.print(f"schema at {migrate.current_revision(engine)} ({engine.dialect.name})")
    engine.dispose()


@db_app.command("check")
def db_check() -> None:
    """Fail when the models and the migrations disagree."""
    from cardsvc import migrate
    from cardsvc.db import make_engine

    engine = make_engine(get_settings().database_url)
    try:
        migrate.check(engine)
    except Exception as exc:  # alembic raises its own CommandError types
        raise _fail(str(exc)) from None
    console.print("models and migrations agree")


@staff_app.command("add")
def staff_add(
    username: Annotated[str, typer.Argument(help="Login name, e.g. clerk.chen")],
    role: Annotated[str, typer.Option(help="clerk, supervisor, auditor or admin")],
    name: Annotated[str | None, typer.Option(help="Display name")] = None,
    password: Annotated[str | None, typer.Option(
        help="Password (omit to generate one; prefer omitting, shells keep history)")] = None,
) -> None:
    """Create a staff account."""
    from cardsvc.db import transaction
    from cardsvc.staff import service

    rt = _runtime().runtime
    generated = password is None
    pw = password or service.generate_password()
    try:
        with transaction(rt.sessions) as db:
            staff = service.create_staff(db, cli_actor(), username, role, pw, name)
    except DomainError as exc:
        raise _fail(exc.detail) from None
    console.print(f"created {staff.username} ({staff.role})")
    if generated:
        console.print(f"  password: {pw}  (shown once)")


@staff_app.command("list")
def staff_list() -> None:
    """List staff accounts."""
    from sqlalchemy import select

    from cardsvc.db import transaction
    from cardsvc.staff.models import Staff

    rt = _runtime().runtime
    table = Table("id", "username", "name", "role", "active")
    with transaction(rt.sessions) as db:
        for s in db.scalars(select(Staff).order_by(Staff.id)):
            table.add_row(str(s.id), s.username, s.display_name, s.role,
                          "yes" if s.active else "no")
    console.print(table)


@staff_app.command("passwd")
def staff_passwd(username: str) -> None:
    """Set a new password for a staff account (prompts twice)."""
    from cardsvc.db import transaction
    from cardsvc.staff import service

    rt = _runtime().runtime
    pw = typer.prompt("new password", hide_input=True, confirmation_prompt=True)
    try:
        with transaction(rt.sessions) as db:
            staff = service.find_by_username(db, username)
            if staff is None:
                raise _fail(f"no staff account {username!r}")
            service.set_password(db, cli_actor(), staff.id, pw)
    except DomainError as exc:
        raise _fail(exc.detail) from None
    console.print("password changed")


@audit_app.command("verify")
def audit_verify() -> None:
    """Check the audit trail's hash chain; name the first broken row."""
    from cardsvc.audit import service
    from cardsvc.db import transaction

    rt = _runtime().runtime
    sealed = service.seal_all(rt.sessions)
    if sealed:
        console.print(f"sealed {sealed} pending audit rows into the chain")
    with transaction(rt.sessions) as db:
        total = service.count_events(db)
        with Progress(TextColumn("verifying audit chain"), BarColumn(),
                      TextColumn("{task.completed}/{task.total}"), TimeElapsedColumn(),
                      console=console, transient=True) as progress:
            task = progress.add_task("verify", total=total)
            result = service.verify_chain(db, lambda n: progress.advance(task, n))
    if result.ok:
        console.print(f"[green]audit chain intact:[/] {result.rows_checked} rows")
        return
    console.print(f"[bold red]audit chain BROKEN at row {result.first_bad_id}:[/] "
                  f"{result.problem} ({result.rows_checked} rows before it are intact)")
    raise typer.Exit(code=2)


@cards_app.command("expire-due")
def cards_expire_due() -> None:
    """Expire cards whose validity or concession ended (run daily)."""
    from cardsvc.cards import service
    from cardsvc.context import Ctx
    from cardsvc.db import transaction

    rt = _runtime().runtime
    with transaction(rt.sessions) as db:
        n = service.expire_due(Ctx(db, rt.settings, rt.keys, Actor.system("expiry-job")))
    console.print(f"expired {n} card(s)")


@stats_app.command("issuance")
def stats_issuance(
    date_from: Annotated[dt.datetime, typer.Option("--from", formats=["%Y-%m-%d"])],
    date_to: Annotated[dt.datetime, typer.Option("--to", formats=["%Y-%m-%d"])],
    csv_out: Annotated[Path | None, typer.Option("--csv", help="Also write a CSV file")] = None,
) -> None:
    """Cards issued by product, status and township between two days (Asia/Taipei)."""
    from cardsvc.context import Ctx
    from cardsvc.db import transaction
    from cardsvc.stats import service

    rt = _runtime().runtime
    with transaction(rt.sessions) as db:
        report = service.issuance(Ctx(db, rt.settings, rt.keys, cli_actor()),
                                  date_from.date(), date_to.date())
    console.print(render_issuance(report))
    if csv_out:
        with csv_out.open("w", newline="", encoding="utf-8-sig") as fh:
            w = csv.writer(fh)
            w.writerow(["product", "status", "township", "cards"])
            for r in report.rows:
                w.writerow([r.product, r.status, r.township, r.cards])
        console.print(f"wrote {csv_out}")


def render_issuance(report: IssuanceReport) -> Table:
    from cardsvc.config import TOWNSHIPS
    from cardsvc.stats.service import OUTSIDE

    towns = [t for t in (*TOWNSHIPS, OUTSIDE) if t in report.by_township]
    table = Table(title=f"Cards issued {report.date_from} – {report.date_to}",
                  show_footer=True)
    table.add_column("product", footer="total")
    for t in towns:
        table.add_column(t, justify="right", footer=f"{report.by_township[t]:,}")
    table.add_column("total", justify="right", footer=f"{report.total:,}")
    cells: dict[tuple[str, str], int] = {}
    for r in report.rows:
        cells[(r.product, r.township)] = cells.get((r.product, r.township), 0) + r.cards
    for product, n in report.by_product.items():
        table.add_row(product, *[f"{cells.get((product, t), 0):,}" for t in towns], f"{n:,}")
    table.caption = "by status: " + ", ".join(
        f"{status} {n:,}" for status, n in sorted(report.by_status.items()))
    return table


@keys_app.command("transport-key")
def keys_transport_key(uid: Annotated[str, typer.Argument(help="Chip UID in hex")]) -> None:
    """Print the transport key of a blank card (for the card supplier's initialisation, or
    for `cardsvc sim card --transport-key`). The output is a secret."""
    from cardsvc.db import transaction
    from cardsvc.identifiers import normalize_chip_uid
    from cardsvc.keystore.service import KeyStore

    norm = normalize_chip_uid(uid)
    if norm is None:
        raise _fail("UID must be 4, 7 or 10 bytes in hex")
    rt = _runtime().runtime
    with transaction(rt.sessions) as db:
        store = KeyStore(db, rt.keys.secrets.kek, rt.keys.secrets.system_id)
        key = store.transport_key(bytes.fromhex(norm))
        audit.record_for(db, cli_actor(), "keys.transport_key_export", target_type="chip",
                         target_id=norm)
    console.print(key.hex().upper())


@keys_app.command("terminal-export")
def keys_terminal_export(
    out: Annotated[Path, typer.Option(help="File to write (mode 0600)")],
) -> None:
    """Write the debit master keys (every version) and the system id for installing in POS
    terminals. Terminals never get the load or personalisation keys."""
    import json
    import os

    from cardsvc.db import transaction
    from cardsvc.keystore.service import KeyStore
    from readers.protocol import KeyPurpose

    rt = _runtime().runtime
    with transaction(rt.sessions) as db:
        masters = KeyStore(db, rt.keys.secrets.kek, rt.keys.secrets.system_id).masters(
            KeyPurpose.DEBIT)
        audit.record_for(db, cli_actor(), "keys.terminal_export", target_type="key",
                         target_id="debit", detail={"versions": sorted(masters)})
    fd = os.open(out, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as fh:
        json.dump({"format": 1, "system_id": rt.keys.secrets.system_id.hex(),
                   "debit_masters": {str(v): k.hex() for v, k in masters.items()}}, fh)
    console.print(f"wrote debit master keys (versions {sorted(masters)}) to {out}")


@keys_app.command("rotate-pii")
def keys_rotate_pii() -> None:
    """Add a new personal-data key and make it active; then re-encrypt every row with it."""
    from cardsvc.holders.rekey import reencrypt_all
    from cardsvc.security.secrets import load_secrets, write_secrets

    settings = get_settings()
    current, _ = load_secrets(settings.secrets_file, generate=False)
    rotated = current.with_new_pii_key()
    write_secrets(settings.secrets_file, rotated)
    console.print(f"new active PII key: {rotated.pii_active}")
    rt = _runtime(settings).runtime
    with Progress(TextColumn("re-encrypting"), BarColumn(), TextColumn("{task.completed}"),
                  console=console, transient=True) as progress:
        task = progress.add_task("rekey", total=None)
        n = reencrypt_all(rt, lambda k: progress.advance(task, k))
    console.print(f"re-encrypted {n} cardholder record(s)")


@app.command()
def demo() -> None:
    """The counter's day, end to end, against a throw-away database."""
    from cardsvc.demo import run_demo

    ok = run_demo(console)
    raise typer.Exit(code=0 if ok else 1)


@app.command()
def seed(
    cards: Annotated[int, typer.Option(help="How many cards to create", min=1, max=2_000_000)],
    random_seed: Annotated[int, typer.Option("--seed", help="Random seed")] = 2017,
) -> None:
    """Create a synthetic population with the county's product and township mix."""
    from cardsvc.seed import run_seed

    rt = _runtime().runtime
    run_seed(rt, cards, random_seed, console)


@sim_app.command("card")
def sim_card(
    uid: Annotated[str, typer.Option(help="Chip UID in hex (4, 7 or 10 bytes)")],
    state: Annotated[Path | None, typer.Option(
        help="JSON file keeping the card's state between runs (blank card if missing)")] = None,
    vpcd: Annotated[str, typer.Option(help="pcscd's vpcd driver, HOST:PORT")] =
        "127.0.0.1:35963",
    transport_key: Annotated[str | None, typer.Option(
        help="A new blank card's transport key (32 hex digits), as its supplier set it; "
             "the backend derives the same key per card from its transport master. Default: "
             "the all-zero factory key, which only a development backend accepts.")] = None,
) -> None:
    """Run a virtual card in a vpcd reader slot until interrupted (Ctrl-C)."""
    import signal
    import threading

    from cardsvc.identifiers import normalize_chip_uid
    from simulators.card import VirtualCard
    from simulators.vpcd import VpcdCard

    norm = normalize_chip_uid(uid)
    if norm is None:
        raise _fail("--uid must be a 4, 7 or 10-byte UID in hex")
    host, _, port = vpcd.rpartition(":")
    if not host or not port.isdigit():
        raise _fail("--vpcd must be HOST:PORT")
    if transport_key is not None and (len(transport_key) != 32 or
                                      any(c not in "0123456789abcdefABCDEF"
                                          for c in transport_key)):
        raise _fail("--transport-key must be 32 hex digits")
    key = bytes.fromhex(transport_key) if transport_key else bytes(16)
    card = VirtualCard(bytes.fromhex(norm), state, transport_key=key)
    runner = VpcdCard(card, host, int(port)).start()
    done = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: done.set())
    kind = "personalised" if card.state["personalised"] else "blank"
    console.print(f"virtual card {norm} ({kind}) → vpcd at {host}:{port}; Ctrl-C to stop")
    if runner.connected.wait(10):
        console.print("[green]in the reader slot[/]")
    else:
        console.print(f"[yellow]waiting for pcscd's vpcd driver at {host}:{port} ...[/]")
    try:
        done.wait()
    except KeyboardInterrupt:
        pass
    runner.stop()
    console.print("card removed")


pos_app = typer.Typer(help="A simulated POS terminal against a running API.",
                      no_args_is_help=True)
sim_app.add_typer(pos_app, name="pos")
ProfileOpt = Annotated[Path, typer.Option(
    "--profile", help="Terminal profile JSON: api, key_id, secret, terminal_id, keys (file "
    "from `cardsvc keys terminal-export`), state (file), reader (pcsc:<name> or "
    "sim:<card state file>)")]


def _pos(profile: Path):  # type: ignore[no-untyped-def]
    import json

    import httpx

    from merchants.client import PosClient
    from simulators.pos import SimulatedPos

    cfg = json.loads(profile.read_text())
    keys = json.loads(Path(cfg["keys"]).read_text())
    http = httpx.Client(base_url=cfg["api"], timeout=10)
    return cfg, SimulatedPos(
        PosClient(http, cfg["key_id"], cfg["secret"]), int(cfg["terminal_id"]),
        {int(v): bytes.fromhex(k) for v, k in keys["debit_masters"].items()},
        bytes.fromhex(keys["system_id"]), state_file=Path(cfg.get("state", "pos-state.json")))


def _pos_reader(spec: str):  # type: ignore[no-untyped-def]
    if spec.startswith("sim:"):
        from readers.memory import InProcessReader
        from simulators.card import VirtualCard
        path = Path(spec[4:])
        import json
        uid = bytes.fromhex(json.loads(path.read_text())["uid"])
        return InProcessReader(VirtualCard(uid, path))
    from readers.pcsc import PcscReader
    reader = PcscReader(spec[5:] if spec.startswith("pcsc:") else "")
    if not reader.wait_for_card(15):
        raise _fail("no card on the reader")
    return reader


@pos_app.command("hotlist")
def pos_hotlist(profile: ProfileOpt) -> None:
    """Fetch the hotlist changes since the version the terminal holds."""
    _, pos = _pos(profile)
    n = pos.refresh_hotlist()
    console.print(f"{n} change(s); version {pos.hotlist_version}; {len(pos.hotlist)} card(s)")


@pos_app.command("tap")
def pos_tap(profile: ProfileOpt, amount: Annotated[int, typer.Option(min=1)],
            offline: Annotated[bool, typer.Option(help="Keep the record for a batch")] = False,
            ) -> None:
    """A card-present purchase with the card on the profile's reader."""
    from simulators.pos import TerminalRefusal
    cfg, pos = _pos(profile)
    try:
        result = pos.tap(_pos_reader(cfg["reader"]), amount, online=not offline)
    except TerminalRefusal as exc:
        raise _fail(f"terminal refused: {exc.code} ({exc})") from None
    console.print(f"{result.status}: NT${result.amount} on card {result.card_number}"
                  + (f" → {result.response}" if result.response else ""))


@pos_app.command("upload")
def pos_upload(profile: ProfileOpt) -> None:
    """Upload the records kept while offline, as one batch."""
    _, pos = _pos(profile)
    console.print(pos.upload_offline() or "nothing to upload")


@pos_app.command("qr")
def pos_qr(profile: ProfileOpt, token: Annotated[str, typer.Option()],
           amount: Annotated[int, typer.Option(min=1)]) -> None:
    """A QR purchase with a token scanned from the resident's phone."""
    _, pos = _pos(profile)
    console.print(pos.qr_purchase(token, amount))


@pos_app.command("refund")
def pos_refund(profile: ProfileOpt, transaction: Annotated[int, typer.Option()],
               amount: Annotated[int, typer.Option(min=1)]) -> None:
    """Refund all or part of a purchase."""
    _, pos = _pos(profile)
    console.print(pos.refund(transaction, amount))


def _settle_app() -> None:
    # Clearing lives in settlement/, which is built on the core: registered here, where the
    # command line is composed (like the POS simulator above).
    from settlement.cli import app as settle_app
    app.add_typer(settle_app, name="settle")


_settle_app()


def main() -> None:
    try:
        app()
    except ConfigurationError as exc:
        console.print(f"[bold red]configuration error:[/] {exc}")
        sys.exit(1)


if __name__ == "__main__":
    main()
