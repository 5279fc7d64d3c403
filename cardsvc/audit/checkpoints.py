"""Signed checkpoints of the audit trail, and inclusion proofs against them, that an auditor
checks with the public key alone.

The hash chain finds any row altered inside the database, unless whoever alters it rewrites
every later row and the head too: with full rights to the database, that is a script. A
checkpoint closes the gap from outside. It states how many rows the trail held (`rows` = N),
the hash of row N and the RFC 6962 Merkle root over rows 1..N (each row's leaf data is its
chained hash, `audit_events.hash`), and is signed with the secrets file's Ed25519 signing key.
Once a copy has left the host, a rewritten row contradicts every checkpoint written after it,
and no one without the private key can sign new ones.

* `make` signs one of the trail as chained now; `write` also saves it as
  `audit-checkpoint-YYYY-MM-DD.json` (the business day, Asia/Taipei) beside a printable
  `.txt`, and audits that (`audit.checkpoint`). A second checkpoint on the same day never
  replaces the first: it is saved with the time of day in its name (`...-2026-03-01-153012`),
  so every copy the office took stays a file the host still has.
* `verify_checkpoint` (no database): is it signed by one of these keys, and unaltered?
* `verify_against`: one pass over the trail in id order, the root recomputed at each
  checkpoint's N; names the first checkpoint (by its day) the database contradicts.
* `prove` / `verify_proof`: the audit path of one row to a checkpoint's root; the proof carries
  the row's content, so its checker recomputes the row's hash itself.

Before the walk, `make` seals pending rows aside (`service.seal_aside`: on PostgreSQL in
transactions of their own), so the walk holds no lock on the chain head and audited writes go
on meanwhile; the rows they add fall to the next checkpoint.
"""

from __future__ import annotations

import base64
import binascii
import datetime as dt
import hashlib
import json
import re
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, replace
from enum import StrEnum
from pathlib import Path
from typing import Any

from sqlalchemy.orm import Session

from cardsvc.audit import merkle, service
from cardsvc.audit.errors import ChainBroken, CheckpointContradicted, RowNotCovered, RowNotFound
from cardsvc.audit.models import AuditEvent, AuditHead
from cardsvc.context import TAIPEI, Ctx
from cardsvc.security import signing

FORMAT = 1
KIND = "cardsvc.audit.checkpoint"
PROOF_KIND = "cardsvc.audit.inclusion-proof"
FILE_PREFIX = "audit-checkpoint-"
PROGRESS_STEP = 1000

Progress = Callable[[int], None]

_HEX64 = re.compile(r"[0-9a-f]{64}")
_KEY_ID = re.compile(r"[A-Za-z0-9_.-]{1,32}")
_FIELDS = frozenset({"kind", "format", "date", "written_at", "rows", "head_hash",
                     "merkle_root", "key_id", "signature"})
_ROW_FIELDS = ("id", "at", "actor", "actor_role", "action", "purpose", "target_type",
               "target_id", "detail", "prev_hash", "hash")


class Problem(StrEnum):
    """Why a checkpoint or a proof is refused (stable, for scripts reading the verdict)."""

    MALFORMED = "malformed"
    UNKNOWN_KEY = "unknown_key"
    BAD_SIGNATURE = "bad_signature"
    FEWER_ROWS = "fewer_rows"
    ROOT_DIFFERS = "root_differs"
    HEAD_DIFFERS = "head_differs"
    OTHER_CHECKPOINT = "other_checkpoint"
    ROW_ALTERED = "row_altered"
    NOT_IN_TREE = "not_in_tree"


@dataclass(frozen=True)
class Verdict:
    ok: bool
    problem: Problem | None = None
    detail: str | None = None

    @classmethod
    def refuse(cls, problem: Problem, detail: str) -> Verdict:
        return cls(False, problem, detail)


VALID = Verdict(True)


class Malformed(ValueError):
    """A file that is not what it claims to be."""


def canonical(fields: Mapping[str, Any]) -> bytes:
    """The bytes a checkpoint's signature covers: its fields but the signature, as JSON with
    sorted keys and no spaces (UTF-8)."""
    return service.canonical(dict(fields)).encode("utf-8")


@dataclass(frozen=True)
class Checkpoint:
    date: str  # the business day it is for, YYYY-MM-DD (Asia/Taipei)
    written_at: str  # ISO 8601, UTC
    rows: int
    head_hash: str  # hash of row `rows` (the genesis value for an empty trail)
    merkle_root: str
    key_id: str
    signature: str  # base64 Ed25519 over `canonical(signed_fields())`

    def signed_fields(self) -> dict[str, Any]:
        return {"kind": KIND, "format": FORMAT, "date": self.date,
                "written_at": self.written_at, "rows": self.rows,
                "head_hash": self.head_hash, "merkle_root": self.merkle_root,
                "key_id": self.key_id}

    def document(self) -> dict[str, Any]:
        return {**self.signed_fields(), "signature": self.signature}

    @property
    def order(self) -> tuple[str, str]:
        """Sorts checkpoints by the day they are for, then the time written."""
        return self.date, self.written_at

    @classmethod
    def parse(cls, doc: Any) -> Checkpoint:
        """The checkpoint a document holds, its fields checked (not its signature)."""
        if not isinstance(doc, dict):
            raise Malformed("not a JSON object")
        if doc.get("kind") != KIND:
            raise Malformed(f"not an audit checkpoint (kind is {doc.get('kind')!r})")
        if doc.get("format") != FORMAT:
            raise Malformed(f"unknown checkpoint format {doc.get('format')!r}")
        missing, extra = _FIELDS - set(doc), set(doc) - _FIELDS
        if missing:
            raise Malformed(f"missing field(s): {', '.join(sorted(missing))}")
        if extra:  # an unsigned field would be read as if the key vouched for it
            raise Malformed(f"unsigned field(s): {', '.join(sorted(extra))}")
        date, written_at, rows = doc["date"], doc["written_at"], doc["rows"]
        try:
            if not isinstance(date, str) or dt.date.fromisoformat(date).isoformat() != date:
                raise ValueError
            if not isinstance(written_at, str) or \
                    dt.datetime.fromisoformat(written_at).tzinfo is None:
                raise ValueError
        except ValueError:
            raise Malformed("date must be YYYY-MM-DD and written_at an ISO 8601 time with "
                            "its zone") from None
        if type(rows) is not int or rows < 0:
            raise Malformed("rows must be a whole number, 0 or more")
        for name in ("head_hash", "merkle_root"):
            if not isinstance(doc[name], str) or not _HEX64.fullmatch(doc[name]):
                raise Malformed(f"{name} must be 64 lower-case hex digits")
        if not isinstance(doc["key_id"], str) or not _KEY_ID.fullmatch(doc["key_id"]):
            raise Malformed("key_id must be a short key name")
        if not isinstance(doc["signature"], str):
            raise Malformed("signature must be base64 text")
        return cls(date, written_at, rows, doc["head_hash"], doc["merkle_root"],
                   doc["key_id"], doc["signature"])


# --- keys ------------------------------------------------------------------------------------


def fingerprint(public_key: str) -> str:
    """SHA-256 of a public key's 32 raw bytes, in hex: what the printed checkpoint shows and
    anyone recomputes (`base64 -d | sha256sum`) from the key file the office keeps."""
    return hashlib.sha256(base64.b64decode(public_key)).hexdigest()


def grouped(hex_text: str) -> str:
    """Hex in groups of four, to read aloud or compare on paper."""
    return " ".join(hex_text[i:i + 4] for i in range(0, len(hex_text), 4))


def parse_public_keys(doc: Any) -> dict[str, str]:
    """The key file `cardsvc audit public-key` writes: base64 raw Ed25519 public keys by key
    id (the same shape as `cardsvc transit public-keys`)."""
    if not isinstance(doc, dict) or not doc:
        raise Malformed("a public key file is a JSON object of base64 keys by key id")
    for kid, key in doc.items():
        try:
            raw = base64.b64decode(key, validate=True) if isinstance(key, str) else b""
        except binascii.Error:
            raw = b""
        if len(raw) != 32:
            raise Malformed(f"key {kid!r} is not a base64 Ed25519 public key (32 bytes)")
    return dict(doc)


# --- offline checks --------------------------------------------------------------------------


def verify_checkpoint(doc: Any, public_keys: Mapping[str, str]) -> Verdict:
    """Whether `doc` is a checkpoint signed, unaltered, by one of `public_keys` (base64 raw
    Ed25519 keys by key id). No database: the office's copy and the key file suffice."""
    try:
        cp = Checkpoint.parse(doc)
    except Malformed as exc:
        return Verdict.refuse(Problem.MALFORMED, f"not a valid checkpoint: {exc}")
    pub = public_keys.get(cp.key_id)
    if pub is None:
        known = ", ".join(sorted(public_keys)) or "none"
        return Verdict.refuse(Problem.UNKNOWN_KEY, f"signed with key {cp.key_id}, which is not "
                              f"among the public keys given ({known})")
    try:
        signature = base64.b64decode(cp.signature, validate=True)
    except (ValueError, binascii.Error):
        signature = b""
    if not signing.verifies(pub, signature, canonical(cp.signed_fields())):
        return Verdict.refuse(Problem.BAD_SIGNATURE, f"the signature does not verify with key "
                              f"{cp.key_id}: the checkpoint was altered or not signed by it")
    return VALID


def verify_proof(proof: Any, checkpoint_doc: Any, public_keys: Mapping[str, str]) -> Verdict:
    """Whether `proof` shows its row, with exactly the content it carries, to be row N of the
    trail that `checkpoint_doc` signed. No database."""
    verdict = verify_checkpoint(checkpoint_doc, public_keys)
    if not verdict.ok:
        return verdict
    cp = Checkpoint.parse(checkpoint_doc)
    try:
        row, index, size, path, against = _parse_proof(proof)
    except Malformed as exc:
        return Verdict.refuse(Problem.MALFORMED, f"not a valid proof: {exc}")
    if size != cp.rows or against.get("merkle_root") != cp.merkle_root:
        return Verdict.refuse(Problem.OTHER_CHECKPOINT, (
            f"the proof is against the checkpoint of {against.get('date')} "
            f"({against.get('rows')} rows), not this one of {cp.date} ({cp.rows} rows)"))
    try:
        recomputed = service.row_hash(
            row["prev_hash"], row["id"], dt.datetime.fromisoformat(row["at"]), row["actor"],
            row["actor_role"], row["action"], row["purpose"], row["target_type"],
            row["target_id"], row["detail"])
    except (TypeError, ValueError):
        return Verdict.refuse(Problem.MALFORMED, "not a valid proof: the row's fields")
    if recomputed != row["hash"]:
        return Verdict.refuse(Problem.ROW_ALTERED, f"row {row['id']}'s content does not hash "
                              "to the hash it carries: the row was altered")
    got = merkle.root_from_path(merkle.leaf_hash(bytes.fromhex(row["hash"])), index, size, path)
    if got is None or got.hex() != cp.merkle_root:
        return Verdict.refuse(Problem.NOT_IN_TREE, (
            f"row {row['id']} with this content is not row {index + 1} of the {size} rows "
            f"the checkpoint of {cp.date} signed: the row or its path was altered"))
    return VALID


def _parse_proof(proof: Any) -> tuple[dict[str, Any], int, int, list[bytes], dict[str, Any]]:
    if not isinstance(proof, dict) or proof.get("kind") != PROOF_KIND:
        raise Malformed("not an inclusion proof")
    if proof.get("format") != FORMAT:
        raise Malformed(f"unknown proof format {proof.get('format')!r}")
    row, index, size = proof.get("row"), proof.get("leaf_index"), proof.get("tree_size")
    path, against = proof.get("audit_path"), proof.get("checkpoint")
    if not isinstance(row, dict) or set(row) != set(_ROW_FIELDS):
        raise Malformed(f"row must have exactly the fields {', '.join(_ROW_FIELDS)}")
    if type(row["id"]) is not int or not all(
            isinstance(row[k], str) for k in ("at", "actor", "actor_role", "action", "detail",
                                               "prev_hash", "hash")):
        raise Malformed("the row's fields have the wrong types")
    if not _HEX64.fullmatch(row["hash"]):
        raise Malformed("the row's hash must be 64 lower-case hex digits")
    if type(index) is not int or type(size) is not int or index != row["id"] - 1:
        raise Malformed("leaf_index must be the row's id - 1 and tree_size a whole number")
    if not isinstance(path, list) or not all(isinstance(p, str) and _HEX64.fullmatch(p)
                                             for p in path):
        raise Malformed("audit_path must be a list of 64-digit hex hashes")
    if not isinstance(against, dict):
        raise Malformed("the checkpoint the proof is against is missing")
    return row, index, size, [bytes.fromhex(p) for p in path], against


# --- the trail, walked -----------------------------------------------------------------------


def _chained_leaves(db: Session, end: int, progress: Progress | None = None
                    ) -> Iterator[bytes]:
    """The leaf data (chained hash) of rows 1..`end` in id order, each recomputed from the
    row's content and checked against what is stored. A break raises ChainBroken: a checkpoint
    or a proof over a broken chain would vouch for the damage."""
    try:
        for ev in service.walk_chain(db, end, progress=progress):
            yield bytes.fromhex(ev.hash)
    except service.ChainBreak as brk:
        raise ChainBroken(f"the audit chain is broken: {brk.result.problem}; `cardsvc audit "
                          "verify` tells more",
                          # the rows before it fit: a row cut from the end is named too
                          first_bad_id=brk.result.rows_checked + 1) from None


def make(ctx: Ctx, progress: Progress | None = None) -> Checkpoint:
    """Seal what is pending, then sign a checkpoint of the whole trail as chained now, for
    the business day of `ctx.now`. Refused (ChainBroken) when the chain does not verify."""
    service.seal_aside(ctx.db)
    head = ctx.db.get(AuditHead, 1, populate_existing=True)
    rows, head_hash = (head.last_id, head.last_hash) if head else (0, service.GENESIS)
    tree = merkle.Frontier()
    for leaf in _chained_leaves(ctx.db, rows, progress):
        tree.add(leaf)
    unsigned = Checkpoint(
        date=ctx.today.isoformat(),
        written_at=ctx.now.astimezone(dt.UTC).isoformat(timespec="seconds"),
        rows=rows, head_hash=head_hash, merkle_root=tree.root().hex(),
        key_id=ctx.keys.secrets.signing_key[0], signature="")
    _, signature = signing.sign(ctx.keys.secrets, canonical(unsigned.signed_fields()))
    return replace(unsigned, signature=signature)


@dataclass(frozen=True)
class Written:
    checkpoint: Checkpoint
    json_path: Path
    text_path: Path


def write(ctx: Ctx, directory: Path, progress: Progress | None = None) -> Written:
    """Sign a checkpoint and save it (JSON and printable text) in `directory`; audited."""
    cp = make(ctx, progress)
    public_key = signing.public_keys(ctx.keys.secrets)[cp.key_id]
    directory.mkdir(parents=True, exist_ok=True)
    body = json.dumps(cp.document(), indent=2) + "\n"
    for stem in _stems(cp):
        json_path, text_path = directory / f"{stem}.json", directory / f"{stem}.txt"
        if text_path.exists():
            continue
        try:
            with json_path.open("x", encoding="utf-8") as fh:  # never replaces a copy
                fh.write(body)
        except FileExistsError:
            continue
        text_path.write_text(render_text(cp, public_key, json_path.name), encoding="utf-8")
        _audit(ctx, cp, json_path.name)
        return Written(cp, json_path, text_path)
    raise AssertionError("unreachable: _stems never ends")  # pragma: no cover


def _stems(cp: Checkpoint) -> Iterator[str]:
    base = f"{FILE_PREFIX}{cp.date}"
    yield base
    local = dt.datetime.fromisoformat(cp.written_at).astimezone(TAIPEI)
    timed = f"{base}-{local:%H%M%S}"
    yield timed
    n = 2
    while True:
        yield f"{timed}-{n}"
        n += 1


def _audit(ctx: Ctx, cp: Checkpoint, file_name: str | None) -> None:
    service.record(ctx, "audit.checkpoint", target_type="audit_checkpoint",
                   target_id=cp.date, detail={"rows": cp.rows, "merkle_root": cp.merkle_root,
                                              "key_id": cp.key_id, "file": file_name})


def render_text(cp: Checkpoint, public_key: str, file_name: str) -> str:
    """The printable rendering for the council and the ethics office: the same fields, the
    key's fingerprint, and how to check the file."""
    local = dt.datetime.fromisoformat(cp.written_at).astimezone(TAIPEI)
    lines = [
        "金門縣民卡 稽核軌跡檢查點 — Kinmen resident card: audit trail checkpoint",
        "=" * 72,
        f"營業日 Business day (Asia/Taipei) : {cp.date}",
        f"寫入 Written (UTC)                : {cp.written_at}  ({local:%Y-%m-%d %H:%M:%S} "
        "Asia/Taipei)",
        f"筆數 Rows covered                 : 1 .. {cp.rows}  ({cp.rows} rows)",
        f"末筆雜湊 Hash of row {cp.rows}",
        f"    {grouped(cp.head_hash)}",
        "Merkle 樹根 Merkle root (RFC 6962, SHA-256, over the rows' chained hashes)",
        f"    {grouped(cp.merkle_root)}",
        f"簽章金鑰 Signing key id           : {cp.key_id}",
        "公鑰指紋 Public key fingerprint (SHA-256 of the 32-byte Ed25519 public key)",
        f"    {grouped(fingerprint(public_key))}",
        "簽章 Ed25519 signature (base64)",
        f"    {cp.signature}",
        "",
        "查核方式 How to check it",
        "  The signature covers every field above but itself: the file's JSON fields",
        "  except `signature`, as JSON with sorted keys and no spaces (UTF-8).",
        "  1. Keep the public key file (`cardsvc audit public-key --out FILE`) apart from the",
        "     host; its key's SHA-256 must be the fingerprint printed above.",
        f"  2. cardsvc audit verify-checkpoint {file_name} --key FILE",
        "     needs no database and no secrets file: the two files suffice.",
        f"  3. cardsvc audit verify --checkpoints DIR (on the host) checks that rows 1..{cp.rows}",
        "     still hash to this root; a row rewritten since fails it, naming this day.",
        "  4. A single row: `cardsvc audit prove ROW_ID --checkpoint FILE --out PROOF`,",
        f"     then `cardsvc audit verify-checkpoint {file_name} --key FILE --proof PROOF`.",
        "",
    ]
    return "\n".join(lines)


# --- checks against the database ---------------------------------------------------------------


@dataclass(frozen=True)
class Check:
    index: int  # position in the list given
    checkpoint: Checkpoint | None  # None when the document is not one
    verdict: Verdict


@dataclass(frozen=True)
class TrailReport:
    checks: list[Check]
    rows_read: int

    @property
    def ok(self) -> bool:
        return all(c.verdict.ok for c in self.checks)

    @property
    def first_contradicted(self) -> Check | None:
        """The refused checkpoint of the earliest day (documents that are no checkpoint at
        all come after every dated one)."""
        bad = [c for c in self.checks if not c.verdict.ok]
        return min(bad, key=lambda c: (c.checkpoint is None,
                                       c.checkpoint.order if c.checkpoint else ("", "")),
                   default=None)


def verify_against(db: Session, checkpoints: Sequence[Any], public_keys: Mapping[str, str],
                   progress: Progress | None = None) -> TrailReport:
    """Check checkpoint documents against the trail in the database: each one's signature,
    then, in ONE pass over the rows in id order, the Merkle root recomputed at each one's N
    and the hash of row N. Each row's hash is recomputed from its content and the hashes
    before it, so what is compared is the rows' content, whatever their hash columns say."""
    checks: dict[int, Check] = {}
    waiting: list[tuple[int, Checkpoint]] = []
    for i, doc in enumerate(checkpoints):
        verdict = verify_checkpoint(doc, public_keys)
        if verdict.ok:
            waiting.append((i, Checkpoint.parse(doc)))
        else:
            parsed = None
            if verdict.problem is not Problem.MALFORMED:
                parsed = Checkpoint.parse(doc)
            checks[i] = Check(i, parsed, verdict)
    waiting.sort(key=lambda w: w[1].rows)
    end = waiting[-1][1].rows if waiting else 0
    tree, head, missing = merkle.Frontier(), service.GENESIS, None

    def settle_reached() -> None:
        while waiting and waiting[0][1].rows == tree.size:
            i, cp = waiting.pop(0)
            checks[i] = Check(i, cp, _compare(cp, tree.root().hex(), head, missing))

    settle_reached()
    for ev in service.iter_events(db, end):
        if missing is None and ev.id != tree.size + 1:
            missing = tree.size + 1
        head = service.event_hash(head, ev)
        tree.add(bytes.fromhex(head))
        settle_reached()
        if progress is not None and tree.size % PROGRESS_STEP == 0:
            progress(PROGRESS_STEP)
    for i, cp in waiting:
        why = (f"row {missing} is missing" if missing is not None
               else f"the trail holds only {tree.size} rows")
        checks[i] = Check(i, cp, Verdict.refuse(Problem.FEWER_ROWS, (
            f"the checkpoint covers {cp.rows} rows but {why}: rows were removed")))
    return TrailReport([checks[i] for i in sorted(checks)], tree.size)


def _compare(cp: Checkpoint, root: str, head: str, missing: int | None) -> Verdict:
    if root == cp.merkle_root and head == cp.head_hash:
        return VALID
    if missing is not None:
        return Verdict.refuse(Problem.ROOT_DIFFERS, f"row {missing} is missing: rows 1..{cp.rows} "
                              "no longer hash to the signed root")
    if root != cp.merkle_root:
        return Verdict.refuse(Problem.ROOT_DIFFERS, (
            f"rows 1..{cp.rows} no longer hash to the signed root: at least one of them was "
            "altered or rewritten since"))
    return Verdict.refuse(Problem.HEAD_DIFFERS, f"row {cp.rows} no longer has the signed hash")


def prove(db: Session, row_id: int, checkpoint: Checkpoint,
          progress: Progress | None = None) -> dict[str, Any]:
    """An inclusion proof of row `row_id` in the trail `checkpoint` signed: the row's content,
    its place, and the audit path to the checkpoint's root. Refused when the checkpoint does
    not cover the row, or when the trail no longer matches the checkpoint."""
    if not 1 <= row_id <= checkpoint.rows:
        raise RowNotCovered(f"the checkpoint of {checkpoint.date} covers rows 1..{checkpoint.rows}"
                            f", not row {row_id}: prove it against a later checkpoint")
    ev = db.get(AuditEvent, row_id)
    if ev is None:
        raise RowNotFound(f"there is no audit row {row_id}")
    row = row_document(ev)
    path, root = merkle.inclusion_proof(_chained_leaves(db, checkpoint.rows, progress),
                                        row_id - 1, checkpoint.rows)
    if root.hex() != checkpoint.merkle_root:
        raise CheckpointContradicted(
            f"rows 1..{checkpoint.rows} no longer hash to the root the checkpoint of "
            f"{checkpoint.date} signed: `cardsvc audit verify --checkpoints DIR` names the "
            "first checkpoint the trail contradicts")
    return {"kind": PROOF_KIND, "format": FORMAT, "row": row, "leaf_index": row_id - 1,
            "tree_size": checkpoint.rows, "audit_path": [p.hex() for p in path],
            "checkpoint": checkpoint.document()}


def row_document(ev: AuditEvent) -> dict[str, Any]:
    """A row as a proof carries it: exactly what its hash covers, and the hashes."""
    return {"id": ev.id, "at": ev.at.astimezone(dt.UTC).isoformat(timespec="microseconds"),
            "actor": ev.actor, "actor_role": ev.actor_role, "action": ev.action,
            "purpose": ev.purpose, "target_type": ev.target_type, "target_id": ev.target_id,
            "detail": ev.detail, "prev_hash": ev.prev_hash, "hash": ev.hash}
