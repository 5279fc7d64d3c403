"""`cardsvc sim`: simulated hardware for tests and demos (a virtual card in pcscd's vpcd
slot, a POS terminal and a bus validator against a running API)."""

from __future__ import annotations

import json
import signal
import threading
from pathlib import Path
from typing import Annotated

import httpx
import typer

from cardsvc.app.cli.common import _fail, console
from cardsvc.identifiers import normalize_chip_uid
from merchants.pos.client import PosClient
from merchants.transit.fares import FareTableRejected
from readers.memory import InProcessReader
from simulators.bus import BusValidator
from simulators.card import VirtualCard
from simulators.pos import InvoiceBook, SimulatedPos, TerminalRefusal
from simulators.vpcd import VpcdCard

app = typer.Typer(help="Simulated hardware for tests and demos.", no_args_is_help=True)



@app.command("card")
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
app.add_typer(pos_app, name="pos")


ProfileOpt = Annotated[Path, typer.Option(
    "--profile", help="Terminal profile JSON: api, key_id, secret, terminal_id, keys (file "
    "from `cardsvc keys terminal-export`), state (file), reader (pcsc:<name> or "
    "sim:<card state file>), and optionally invoices: {seller_tax_id, track, first, last}, "
    "the shop's e-invoice numbers, to issue an invoice onto the card for every purchase")]


def _pos(profile: Path):  # type: ignore[no-untyped-def]



    cfg = json.loads(profile.read_text())
    keys = json.loads(Path(cfg["keys"]).read_text())
    try:
        book = InvoiceBook.from_profile(cfg["invoices"]) if "invoices" in cfg else None
    except (KeyError, TypeError, ValueError) as exc:
        raise _fail(f"the profile's invoices: {exc} (seller_tax_id, track, first, last)") \
            from None
    http = httpx.Client(base_url=cfg["api"], timeout=10)
    return cfg, SimulatedPos(
        PosClient(http, cfg["key_id"], cfg["secret"]), int(cfg["terminal_id"]),
        {int(v): bytes.fromhex(k) for v, k in keys["debit_masters"].items()},
        bytes.fromhex(keys["system_id"]), state_file=Path(cfg.get("state", "pos-state.json")),
        invoice_book=book)


def _pos_reader(spec: str):  # type: ignore[no-untyped-def]
    if spec.startswith("sim:"):
        path = Path(spec[4:])
        uid = bytes.fromhex(json.loads(path.read_text())["uid"])
        return InProcessReader(VirtualCard(uid, path))
    from readers.pcsc import PcscReader  # pyscard: only where the pcsc extra is installed
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
    cfg, pos = _pos(profile)
    try:
        result = pos.tap(_pos_reader(cfg["reader"]), amount, online=not offline)
    except TerminalRefusal as exc:
        raise _fail(f"terminal refused: {exc.code} ({exc})") from None
    console.print(f"{result.status}: NT${result.amount} on card {result.card_number}"
                  + (f" → {result.response}" if result.response else ""))
    if result.invoice is not None:
        answer = result.invoice_response
        if result.status == "stored":
            told = "kept for the batch"
        elif answer is None:
            told = "not reported yet: it goes with the next purchase or upload"
        else:
            told = "reported" if "number" in answer else f"refused: {answer.get('code')}"
        console.print(f"invoice {result.invoice['invoice_number']} ({told})")


@pos_app.command("upload")
def pos_upload(profile: ProfileOpt) -> None:
    """Upload the records kept while offline, as one batch (and any invoice reports that
    did not get through)."""
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



bus_app = typer.Typer(help="A simulated bus validator against a running API.",
                      no_args_is_help=True)
app.add_typer(bus_app, name="bus")

BusProfileOpt = Annotated[Path, typer.Option(
    "--profile", help="Validator profile JSON: what a POS terminal profile holds, plus "
    "operator_id, route and public_keys (file from `cardsvc transit public-keys`)")]


def _bus(profile: Path):  # type: ignore[no-untyped-def]
    try:
        cfg = json.loads(profile.read_text())
        keys = json.loads(Path(cfg["keys"]).read_text())
        public_keys = json.loads(Path(cfg["public_keys"]).read_text())
        http = httpx.Client(base_url=cfg["api"], timeout=10)
        return cfg, BusValidator(
            PosClient(http, cfg["key_id"], cfg["secret"]), int(cfg["terminal_id"]),
            {int(v): bytes.fromhex(k) for v, k in keys["debit_masters"].items()},
            bytes.fromhex(keys["system_id"]),
            state_file=Path(cfg.get("state", "bus-state.json")),
            operator_id=int(cfg["operator_id"]), route=str(cfg["route"]),
            public_keys=public_keys)
    except OSError as exc:
        raise _fail(f"cannot read {exc.filename}: {exc.strerror}") from None
    except (KeyError, ValueError, TypeError, AttributeError) as exc:
        raise _fail(f"{profile}: not a validator profile ({type(exc).__name__}: {exc})") \
            from None


@bus_app.command("fares")
def bus_fares(profile: BusProfileOpt) -> None:
    """Fetch the operator's fare table; hold it only if its signature verifies."""
    _, bus = _bus(profile)
    try:
        table = bus.refresh_fares()
    except FareTableRejected as exc:
        raise _fail(f"fare table refused: {exc}") from None
    console.print(f"fare table version {table.version} verified and held: " + ", ".join(
        f"route {r} full NT${f['full']}" for r, f in table.routes.items()))


@bus_app.command("updates")
def bus_updates(profile: BusProfileOpt) -> None:
    """Fetch the concession profile updates waiting for their cards' next tap."""
    _, bus = _bus(profile)
    console.print(f"{bus.refresh_profile_updates()} update(s); "
                  f"{len(bus.profile_updates)} held")


@bus_app.command("ride")
def bus_ride(profile: BusProfileOpt) -> None:
    """A ride with the card on the profile's reader: the fare by its concession."""
    cfg, bus = _bus(profile)
    try:
        result = bus.ride(_pos_reader(cfg["reader"]))
    except (TerminalRefusal, FareTableRejected) as exc:
        raise _fail(f"validator refused: {exc}") from None
    console.print(f"{result.status}: NT${result.fare} of NT${result.full_fare} — "
                  f"{result.message}" + (" (profile updated)" if result.profile_written
                                         else ""))
