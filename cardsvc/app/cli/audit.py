"""`cardsvc audit`: the audit trail, its signed checkpoints and inclusion proofs."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.markup import escape
from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn

from cardsvc.app.cli.common import _fail, _runtime, cli_actor, console
from cardsvc.audit import checkpoints, service
from cardsvc.audit.errors import ChainBroken
from cardsvc.config import get_settings
from cardsvc.db import unit_of_work
from cardsvc.errors import DomainError
from cardsvc.security import signing
from cardsvc.security.secrets import load_secrets

app = typer.Typer(help="The audit trail.", no_args_is_help=True)


@contextmanager
def _walk(label: str, total: int) -> Iterator[Callable[[int], None]]:
    """A progress bar for a walk over `total` rows; yields the callback the walk advances."""
    with Progress(TextColumn(label), BarColumn(), TextColumn("{task.completed}/{task.total}"),
                  TimeElapsedColumn(), console=console, transient=True) as progress:
        task = progress.add_task(label, total=total)
        yield lambda n: progress.advance(task, n)


def _read_json(path: Path, what: str) -> Any:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise _fail(f"cannot read the {what} {path}: {exc.strerror}") from None
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise _fail(f"the {what} {path} is not JSON ({exc})") from None


def _emit(text: str, out: Path | None) -> bool:
    """The document on standard output (False), or written to `out` (True)."""
    if out is None:
        print(text, end="")
        return False
    try:
        out.write_text(text, encoding="utf-8")
    except OSError as exc:
        raise _fail(f"cannot write {out}: {exc.strerror}") from None
    return True


def _read_keys(path: Path) -> dict[str, str]:
    try:
        return checkpoints.parse_public_keys(_read_json(path, "public key file"))
    except checkpoints.Malformed as exc:
        raise _fail(f"{path}: {exc}") from None


def _checkpoint_files(directory: Path) -> list[Path]:
    if not directory.is_dir():
        raise _fail(f"{directory} is not a directory of checkpoints")
    files = sorted(directory.glob(f"{checkpoints.FILE_PREFIX}*.json"))
    if not files:
        raise _fail(f"no checkpoint files ({checkpoints.FILE_PREFIX}*.json) in {directory}")
    return files


def _load_or_none(path: Path) -> Any:
    """A file's JSON, or None when it is unreadable (then refused as not a checkpoint)."""
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError):
        return None


@app.command("verify")
def audit_verify(
    checkpoint_dir: Annotated[Path | None, typer.Option(
        "--checkpoints", help="Then check every checkpoint in this directory against the trail "
        "(audit-checkpoint-*.json)")] = None,
    key: Annotated[Path | None, typer.Option(
        help="Check the checkpoints' signatures with this public key file (`cardsvc audit "
        "public-key`) instead of the secrets file's keys")] = None,
) -> None:
    """Check the audit trail's hash chain and name the first broken row; with --checkpoints,
    name the first day whose signed checkpoint the trail contradicts."""

    keys = _read_keys(key) if key is not None else None
    files = _checkpoint_files(checkpoint_dir) if checkpoint_dir is not None else []
    rt = _runtime().runtime
    sealed = service.seal_all(rt.sessions)
    if sealed:
        console.print(f"sealed {sealed} pending audit rows into the chain")
    with unit_of_work(rt.sessions) as db:
        total = service.count_events(db)
        with _walk("verifying audit chain", total) as advance:
            result = service.verify_chain(db, advance)
    if result.ok:
        console.print(f"[green]audit chain intact:[/] {result.rows_checked} rows")
    else:
        console.print(f"[bold red]audit chain BROKEN at row {result.first_bad_id}:[/] "
                      f"{result.problem} ({result.rows_checked} rows before it are intact)")
    if not files:
        if not result.ok:
            raise typer.Exit(code=2)
        return

    docs = [_load_or_none(f) for f in files]
    keys = keys if keys is not None else signing.public_keys(rt.keys.secrets)
    covered = max((d["rows"] for d in docs if isinstance(d, dict)
                   and isinstance(d.get("rows"), int)), default=0)
    with unit_of_work(rt.sessions) as db, \
            _walk("checking checkpoints", min(covered, total)) as advance:
        report = checkpoints.verify_against(db, docs, keys, advance)
    for check in sorted(report.checks, key=lambda c: (
            c.checkpoint is None, c.checkpoint.order if c.checkpoint else ("", ""))):
        cp, name = check.checkpoint, escape(files[check.index].name)
        if check.verdict.ok and cp is not None:
            console.print(f"  [green]✓[/] {cp.date}  rows 1..{cp.rows} match  ({name})")
        else:
            day = cp.date if cp is not None else "?"
            console.print(f"  [red]✗[/] {day}  {escape(check.verdict.detail or '')}  ({name})")
    first = report.first_contradicted
    if first is None:
        console.print(f"[green]the trail matches all {len(report.checks)} checkpoints[/] "
                      f"({report.rows_read} rows read)")
        if not result.ok:
            raise typer.Exit(code=2)
        return
    day = first.checkpoint.date if first.checkpoint is not None else "(undated)"
    console.print(f"[bold red]the trail CONTRADICTS the checkpoint of {day}[/] "
                  f"({escape(files[first.index].name)}): {escape(first.verdict.detail or '')}")
    raise typer.Exit(code=2)


@app.command("checkpoint")
def audit_checkpoint(
    out: Annotated[Path | None, typer.Option(
        help="Directory to write to (default: CARDSVC_AUDIT_CHECKPOINT_DIR)")] = None,
) -> None:
    """Sign a checkpoint of the trail (rows, the last row's hash, the Merkle root) and write
    it as audit-checkpoint-YYYY-MM-DD.json with a printable .txt beside it."""

    rt = _runtime().runtime
    directory = out if out is not None else rt.settings.audit_checkpoint_dir
    # Sealed in transactions of their own: the checkpoint's walk then holds no chain head.
    service.seal_all(rt.sessions)
    try:
        with unit_of_work(rt.sessions) as db:
            with _walk("hashing the audit trail", service.count_events(db)) as advance:
                written = checkpoints.write(rt.ctx(db, cli_actor()), directory, advance)
    except ChainBroken as exc:
        console.print(f"[bold red]not signed:[/] {escape(exc.detail)}")
        raise typer.Exit(code=2) from None
    except OSError as exc:
        raise _fail(f"cannot write to {exc.filename or directory}: {exc.strerror}") from None
    cp = written.checkpoint
    console.print(f"wrote {escape(str(written.json_path))} and "
                  f"{escape(written.text_path.name)}: rows 1..{cp.rows}, Merkle root "
                  f"{cp.merkle_root}, signed with key {cp.key_id}")


@app.command("public-key")
def audit_public_key(
    out: Annotated[Path | None, typer.Option(help="Write the key file here (else print it)")]
    = None,
) -> None:
    """Every signing key's public half by key id: the file the ethics office keeps, apart from
    the host, to check checkpoints with. Needs the secrets file, not the database."""

    settings = get_settings()
    secrets_, _ = load_secrets(settings.secrets_file, generate=False)
    keys = signing.public_keys(secrets_)
    if not keys:
        raise _fail("the secrets file has no signing key: add one with "
                    "`cardsvc keys new-signing-key`")
    if not _emit(json.dumps(keys, indent=2) + "\n", out):
        return
    console.print(f"wrote {escape(str(out))}:")
    for kid, pub in keys.items():
        active = " (active)" if kid == secrets_.signing_active else ""
        console.print(f"  key {kid}{active}  SHA-256 fingerprint "
                      f"{checkpoints.grouped(checkpoints.fingerprint(pub))}")


@app.command("verify-checkpoint")
def audit_verify_checkpoint(
    file: Annotated[Path, typer.Argument(help="A checkpoint (audit-checkpoint-*.json)")],
    key: Annotated[Path, typer.Option(help="The public key file (`cardsvc audit public-key`)")],
    proof: Annotated[Path | None, typer.Option(
        help="Also check this inclusion proof (`cardsvc audit prove`) against the checkpoint")]
    = None,
) -> None:
    """Check a checkpoint's signature, and optionally a row's inclusion proof, with the public
    key alone: no database, no secrets file, nothing but the files."""

    doc, keys = _read_json(file, "checkpoint"), _read_keys(key)
    proof_doc = _read_json(proof, "proof") if proof is not None else None
    verdict = checkpoints.verify_checkpoint(doc, keys)
    if not verdict.ok:
        console.print(f"[bold red]checkpoint REFUSED:[/] {escape(verdict.detail or '')}")
        raise typer.Exit(code=2)
    cp = checkpoints.Checkpoint.parse(doc)
    console.print(f"[green]checkpoint valid:[/] business day {cp.date}, rows 1..{cp.rows}, "
                  f"Merkle root {cp.merkle_root}, signed with key {cp.key_id} (fingerprint "
                  f"{checkpoints.grouped(checkpoints.fingerprint(keys[cp.key_id]))})")
    if proof_doc is None:
        return
    verdict = checkpoints.verify_proof(proof_doc, doc, keys)
    if not verdict.ok:
        console.print(f"[bold red]proof REFUSED:[/] {escape(verdict.detail or '')}")
        raise typer.Exit(code=2)
    row = proof_doc["row"]
    console.print(f"[green]proof valid:[/] row {row['id']} ({escape(row['action'])} by "
                  f"{escape(row['actor'])} at {row['at']}) is in the trail the checkpoint of "
                  f"{cp.date} signed, with exactly this content")


@app.command("prove")
def audit_prove(
    row_id: Annotated[int, typer.Argument(min=1, help="The audit row's id")],
    checkpoint: Annotated[Path | None, typer.Option(
        help="The checkpoint to prove against (default: the latest in "
        "CARDSVC_AUDIT_CHECKPOINT_DIR that covers the row)")] = None,
    out: Annotated[Path | None, typer.Option(help="Write the proof here (else print it)")]
    = None,
) -> None:
    """An inclusion proof of one audit row: its content and the Merkle audit path to a signed
    checkpoint's root, for `cardsvc audit verify-checkpoint --proof`."""

    rt = _runtime().runtime
    keys = signing.public_keys(rt.keys.secrets)
    if checkpoint is not None:
        doc = _read_json(checkpoint, "checkpoint")
        verdict = checkpoints.verify_checkpoint(doc, keys)
        if not verdict.ok:
            raise _fail(f"{checkpoint}: {verdict.detail}")
    else:
        doc = _latest_covering(rt.settings.audit_checkpoint_dir, row_id, keys)
    cp = checkpoints.Checkpoint.parse(doc)
    try:
        with unit_of_work(rt.sessions) as db:
            with _walk("hashing the audit trail", cp.rows) as advance:
                proof = checkpoints.prove(db, row_id, cp, advance)
            service.record_for(db, cli_actor(), "audit.prove", target_type="audit_event",
                               target_id=row_id, detail={"checkpoint": cp.date,
                                                         "rows": cp.rows})
    except DomainError as exc:
        raise _fail(exc.detail) from None
    if not _emit(json.dumps(proof, indent=2, ensure_ascii=False) + "\n", out):
        return
    console.print(f"wrote {escape(str(out))}: row {row_id} against the checkpoint of {cp.date} "
                  f"({cp.rows} rows); check it with `cardsvc audit verify-checkpoint FILE "
                  f"--key KEYS --proof {escape(str(out))}`")


def _latest_covering(directory: Path, row_id: int, keys: dict[str, str]) -> Any:
    best: tuple[tuple[str, str], Any] | None = None
    for path in sorted(directory.glob(f"{checkpoints.FILE_PREFIX}*.json")):
        doc = _load_or_none(path)
        if not checkpoints.verify_checkpoint(doc, keys).ok:
            continue
        cp = checkpoints.Checkpoint.parse(doc)
        if cp.rows >= row_id and (best is None or cp.order > best[0]):
            best = (cp.order, doc)
    if best is None:
        raise _fail(f"no signed checkpoint in {directory} covers row {row_id} yet: write one "
                    "with `cardsvc audit checkpoint`, or name one with --checkpoint")
    return best[1]
