"""`cardsvc keys`: key management."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Annotated

import typer
from rich.progress import BarColumn, Progress, TextColumn

from cardsvc.app.cli.common import _fail, _runtime, cli_actor, console
from cardsvc.audit import service as audit
from cardsvc.config import get_settings
from cardsvc.db import unit_of_work
from cardsvc.holders.rekey import reencrypt_all
from cardsvc.identifiers import normalize_chip_uid
from cardsvc.keystore.service import KeyStore
from cardsvc.security.secrets import load_secrets, write_secrets
from readers.protocol import KeyPurpose

app = typer.Typer(help="Key management.", no_args_is_help=True)



@app.command("transport-key")
def keys_transport_key(uid: Annotated[str, typer.Argument(help="Chip UID in hex")]) -> None:
    """Print the transport key of a blank card (for the card supplier's initialisation, or
    for `cardsvc sim card --transport-key`). The output is a secret."""

    norm = normalize_chip_uid(uid)
    if norm is None:
        raise _fail("UID must be 4, 7 or 10 bytes in hex")
    rt = _runtime().runtime
    with unit_of_work(rt.sessions) as db:
        store = KeyStore(db, rt.keys.secrets.kek, rt.keys.secrets.system_id)
        key = store.transport_key(bytes.fromhex(norm))
        audit.record_for(db, cli_actor(), "keys.transport_key_export", target_type="chip",
                         target_id=norm)
    console.print(key.hex().upper())


@app.command("terminal-export")
def keys_terminal_export(
    out: Annotated[Path, typer.Option(help="File to write (mode 0600)")],
) -> None:
    """Write the debit master keys (every version) and the system id for installing in POS
    terminals. Terminals never get the load or personalisation keys."""


    rt = _runtime().runtime
    with unit_of_work(rt.sessions) as db:
        masters = KeyStore(db, rt.keys.secrets.kek, rt.keys.secrets.system_id).masters(
            KeyPurpose.DEBIT)
        audit.record_for(db, cli_actor(), "keys.terminal_export", target_type="key",
                         target_id="debit", detail={"versions": sorted(masters)})
    fd = os.open(out, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as fh:
        json.dump({"format": 1, "system_id": rt.keys.secrets.system_id.hex(),
                   "debit_masters": {str(v): k.hex() for v, k in masters.items()}}, fh)
    console.print(f"wrote debit master keys (versions {sorted(masters)}) to {out}")


@app.command("new-signing-key")
def keys_new_signing_key() -> None:
    """Add a new signing key (fare tables) and make it active; old keys stay so what they
    signed still verifies. Give validators the new public key before publishing with it."""
    settings = get_settings()
    current, _ = load_secrets(settings.secrets_file, generate=False)
    rotated = current.with_new_signing_key()
    write_secrets(settings.secrets_file, rotated)
    console.print(f"new active signing key: {rotated.signing_active} "
                  "(`cardsvc transit public-keys` prints the public halves)")


@app.command("rotate-pii")
def keys_rotate_pii() -> None:
    """Add a new personal-data key and make it active; then re-encrypt every row with it."""

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

