"""Appending to and verifying the hash-chained audit trail.

Services call `record()`; the rows are written by a `before_commit` hook, so the chain head is
locked only for the last moment of the transaction and a rolled-back transaction leaves no
audit row for work that never happened.

The POS purchase path, which must not queue behind one lock, writes its rows to
`audit_pending` in its own transaction instead; `seal()` chains them (oldest first) and
`Sealer` does that every second in each API process. Readers of the trail seal first.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import logging
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any, cast

from sqlalchemy import Table, delete, event, func, insert, select, text
from sqlalchemy.engine import Engine
from sqlalchemy.orm import Session, sessionmaker

from cardsvc.audit.models import AuditEvent, AuditHead, AuditPending
from cardsvc.context import Actor, Ctx
from cardsvc.db import unit_of_work, utcnow

log = logging.getLogger("cardsvc.audit")

GENESIS = "0" * 64
_PENDING = "audit_pending"


def canonical(detail: dict[str, Any] | None) -> str:
    return json.dumps(detail or {}, sort_keys=True, ensure_ascii=False, separators=(",", ":"))


def row_hash(
    prev_hash: str, id_: int, at: dt.datetime, actor: str, actor_role: str, action: str,
    purpose: str | None, target_type: str | None, target_id: str | None, detail: str,
) -> str:
    material = json.dumps(
        [prev_hash, id_, at.astimezone(dt.UTC).isoformat(timespec="microseconds"), actor,
         actor_role, action, purpose, target_type, target_id, detail],
        ensure_ascii=False, separators=(",", ":"),
    )
    return hashlib.sha256(material.encode("utf-8")).hexdigest()


def event_hash(prev_hash: str, ev: AuditEvent) -> str:
    """A stored row's hash recomputed from its content after `prev_hash`, whatever its own
    hash column says."""
    return row_hash(prev_hash, ev.id, ev.at, ev.actor, ev.actor_role, ev.action, ev.purpose,
                    ev.target_type, ev.target_id, ev.detail)


@dataclass(frozen=True)
class _Pending:
    at: dt.datetime
    actor: Actor
    action: str
    purpose: str | None
    target_type: str | None
    target_id: str | None
    detail: str


def record(
    ctx: Ctx, action: str, *, target_type: str | None = None, target_id: object = None,
    purpose: str | None = None, detail: dict[str, Any] | None = None,
) -> None:
    """Queue an audit row in this unit of work. Never put personal data in `detail`."""
    record_for(ctx.db, ctx.actor, action, target_type=target_type, target_id=target_id,
               purpose=purpose, detail=detail)


def record_for(
    db: Session, actor: Actor, action: str, *, target_type: str | None = None,
    target_id: object = None, purpose: str | None = None, detail: dict[str, Any] | None = None,
) -> None:
    db.info.setdefault(_PENDING, []).append(
        _Pending(utcnow(), actor, action, purpose, target_type,
                 None if target_id is None else str(target_id), canonical(detail))
    )


def record_unchained(
    db: Session, actor: Actor, action: str, *, target_type: str | None = None,
    target_id: object = None, purpose: str | None = None, detail: dict[str, Any] | None = None,
) -> None:
    """An audit row for a high-volume path (a library's SIP2 lookups): written in the
    caller's transaction without waiting for the chain's head, and chained by the sealer
    within a second or so (every reader of the trail seals first)."""
    db.add(AuditPending(at=utcnow(), actor=actor.username, actor_role=actor.role,
                        action=action, purpose=purpose, target_type=target_type,
                        target_id=None if target_id is None else str(target_id),
                        detail=canonical(detail)))


def _lock_head(db: Session, wait: bool = True) -> AuditHead | None:
    """The chain head, locked; None when another transaction holds it and `wait` is False."""
    head = db.execute(
        select(AuditHead).where(AuditHead.id == 1).with_for_update(skip_locked=not wait)
    ).scalar_one_or_none()
    if head is None:
        if not wait and db.get(AuditHead, 1) is not None:
            return None  # busy: someone else is appending
        head = AuditHead(id=1, last_id=0, last_hash=GENESIS)
        db.add(head)
    return head


def append_rows(db: Session, rows: list[_Pending], head: AuditHead | None = None) -> None:
    head = head or _lock_head(db)
    assert head is not None  # noqa: S101 - _lock_head waits by default
    last_id, last_hash = head.last_id, head.last_hash
    values = []
    for p in rows:
        last_id += 1
        h = row_hash(last_hash, last_id, p.at, p.actor.username, p.actor.role, p.action,
                     p.purpose, p.target_type, p.target_id, p.detail)
        values.append({"id": last_id, "at": p.at, "actor": p.actor.username,
                       "actor_role": p.actor.role, "action": p.action, "purpose": p.purpose,
                       "target_type": p.target_type, "target_id": p.target_id,
                       "detail": p.detail, "prev_hash": last_hash, "hash": h})
        last_hash = h
    if len(values) > 1 and db.get_bind().dialect.name == "postgresql":
        # The sealer's thousands: one JSON document is far cheaper to send than a statement
        # per row, and the sealer's CPU is taken from the API process it runs in.
        db.execute(_INSERT_JSON, {"rows": json.dumps(
            [{**v, "at": p.at.astimezone(dt.UTC).isoformat()} for v, p in zip(
                values, rows, strict=True)], ensure_ascii=False)})
    elif values:
        db.execute(insert(_EVENTS), values)
    head.last_id, head.last_hash = last_id, last_hash


_EVENTS = cast(Table, AuditEvent.__table__)
_PENDING_ROWS = cast(Table, AuditPending.__table__)
_INSERT_JSON = text(
    "INSERT INTO audit_events (id, at, actor, actor_role, action, purpose, target_type, "
    "target_id, detail, prev_hash, hash) SELECT * FROM json_to_recordset(CAST(:rows AS json)) "
    "AS x(id bigint, at timestamptz, actor text, actor_role text, action text, purpose text, "
    "target_type text, target_id text, detail text, prev_hash text, hash text)")


SEAL_BATCH = 5_000


def seal(db: Session, *, wait: bool = True, limit: int = SEAL_BATCH) -> int:
    """Chain up to `limit` pending rows, oldest first, in the caller's transaction. Returns how
    many; 0 when nothing is pending or (with `wait=False`) another appender holds the head.

    Holding the head is what makes a row sealed once: rows are claimed and deleted under it,
    and a rival sealer waits for (or skips) the head until this transaction ends."""
    if db.scalar(select(AuditPending.id).limit(1)) is None:
        return 0
    head = _lock_head(db, wait)
    if head is None:
        return 0
    p = _PENDING_ROWS
    oldest = select(p.c.id).order_by(p.c.id).limit(limit).scalar_subquery()
    rows = sorted(db.execute(delete(p).where(p.c.id.in_(oldest)).returning(
        p.c.id, p.c.at, p.c.actor, p.c.actor_role, p.c.action, p.c.purpose, p.c.target_type,
        p.c.target_id, p.c.detail)).all())
    if not rows:
        return 0
    append_rows(db, [_Pending(r.at, Actor(None, r.actor, r.actor_role), r.action, r.purpose,
                              r.target_type, r.target_id, r.detail) for r in rows], head)
    db.flush()
    return len(rows)


def seal_pending(db: Session) -> int:
    """Seal everything pending in the caller's transaction (a reader's, before it reads)."""
    total = n = seal(db)
    while n == SEAL_BATCH:
        n = seal(db)
        total += n
    return total


def seal_aside(db: Session) -> int:
    """Seal what is pending before a long read (a checkpoint's walk, an access review).
    On PostgreSQL in transactions of their own: sealing in the reader's would hold the chain
    head, and with it every audited write, until the read ends. On SQLite in the reader's
    transaction: there is one writer at a time anyway, and another connection would wait
    for this one."""
    bind = db.get_bind()
    if bind.dialect.name != "postgresql":
        return seal_pending(db)
    engine = bind if isinstance(bind, Engine) else bind.engine
    return seal_all(sessionmaker(bind=engine))


def seal_all(sessions: sessionmaker[Session], *, wait: bool = True) -> int:
    """Seal everything pending, a batch per transaction. With `wait=False` it stops at once
    when another appender holds the chain head (the sealer's way)."""
    total = 0
    while True:
        with unit_of_work(sessions) as db:
            n = seal(db, wait=wait)
        total += n
        if n < SEAL_BATCH:
            return total


def pending_count(db: Session) -> int:
    return int(db.scalar(select(func.count()).select_from(AuditPending)) or 0)


class Sealer:
    """Seals pending audit rows every `interval` seconds in a background thread (one per API
    process; rivals skip a busy head instead of queueing behind it)."""

    def __init__(self, sessions: sessionmaker[Session], interval: float = 1.0) -> None:
        self.sessions = sessions
        self.interval = interval
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name="audit-sealer", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.wait(self.interval):
            try:
                seal_all(self.sessions, wait=False)
            except Exception:  # the next round tries again; never let the thread die
                log.exception("sealing the audit trail failed")

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=10)


@event.listens_for(Session, "before_commit")
def _write_pending(db: Session) -> None:
    # The event also fires when a savepoint is released. Writing then would lock the chain
    # head in the middle of the work (and deadlock against transactions that lock ledger
    # accounts first); the rows wait for the real commit.
    if db.in_nested_transaction():
        return
    rows = db.info.pop(_PENDING, None)
    if rows:
        append_rows(db, rows)
        db.flush()


@event.listens_for(Session, "after_rollback")
def _drop_pending(db: Session) -> None:
    if db.in_nested_transaction():
        return  # a savepoint rolled back (a retried insert): the rows recorded before stand
    db.info.pop(_PENDING, None)


# --- verification ------------------------------------------------------------------------


@dataclass(frozen=True)
class VerifyResult:
    ok: bool
    rows_checked: int
    first_bad_id: int | None = None
    problem: str | None = None


def iter_events(db: Session, end: int | None = None, batch: int = 5000) -> Iterator[AuditEvent]:
    last = 0
    while True:
        q = select(AuditEvent).where(AuditEvent.id > last)
        if end is not None:
            q = q.where(AuditEvent.id <= end)
        rows = db.execute(q.order_by(AuditEvent.id).limit(batch)).scalars().all()
        if not rows:
            return
        yield from rows
        last = rows[-1].id
        db.expunge_all()


class ChainBreak(Exception):
    """Where a walk of the chain found the first row that does not fit."""

    def __init__(self, result: VerifyResult) -> None:
        super().__init__(result.problem)
        self.result = result


def walk_chain(db: Session, end: int | None, end_hash: str | None = None,
               progress: Callable[[int], None] | None = None) -> Iterator[AuditEvent]:
    """Rows 1..`end` in id order, each checked against the row before it and its hash
    recomputed from its content; raises ChainBreak at the first row that does not fit, or
    when the rows stop short of `end` (or row `end` lacks `end_hash`)."""
    expected_prev, expected_id = GENESIS, 1
    for ev in iter_events(db, end):
        n = expected_id - 1
        if ev.id != expected_id:
            raise ChainBreak(VerifyResult(False, n, expected_id,
                                          f"row {expected_id} is missing (next row is {ev.id})"))
        if ev.prev_hash != expected_prev:
            raise ChainBreak(VerifyResult(False, n, ev.id,
                                          "prev_hash does not match the row before it"))
        if event_hash(ev.prev_hash, ev) != ev.hash:
            raise ChainBreak(VerifyResult(False, n, ev.id, "row content does not match its hash"))
        yield ev
        expected_prev, expected_id = ev.hash, ev.id + 1
        if progress is not None and ev.id % 1000 == 0:
            progress(1000)
    n = expected_id - 1
    if end is not None and (end != n or (end_hash is not None and end_hash != expected_prev)):
        raise ChainBreak(VerifyResult(False, n, n or None,
                                      f"chain ends at row {n} but the head records row {end}: "
                                      "rows were removed from the end"))


def verify_chain(db: Session, progress: Callable[[int], None] | None = None) -> VerifyResult:
    """Walk the chain from the first row; name the first row that does not fit.

    The head is read first: rows appended while the walk runs lie beyond it and are left for
    the next check, so a busy system is never reported as tampered with."""
    head = db.get(AuditHead, 1, populate_existing=True)
    n = 0
    try:
        for _ in walk_chain(db, head.last_id if head else None,
                            head.last_hash if head else None, progress):
            n += 1
    except ChainBreak as brk:
        return brk.result
    return VerifyResult(True, n)


def count_events(db: Session) -> int:
    return int(db.scalar(select(func.count()).select_from(AuditEvent)) or 0)


def read_events(ctx: Ctx, *, action: str | None = None, actor: str | None = None,
                target_type: str | None = None, target_id: str | None = None,
                before_id: int | None = None, limit: int = 100) -> list[AuditEvent]:
    """The trail, newest first, filtered; reading it is itself recorded."""
    seal_pending(ctx.db)  # the newest rows are readable at once
    q = select(AuditEvent)
    if action:
        q = q.where(AuditEvent.action == action)
    if actor:
        q = q.where(AuditEvent.actor == actor)
    if target_type:
        q = q.where(AuditEvent.target_type == target_type)
    if target_id:
        q = q.where(AuditEvent.target_id == target_id)
    if before_id:
        q = q.where(AuditEvent.id < before_id)
    rows = list(ctx.db.scalars(q.order_by(AuditEvent.id.desc()).limit(limit)))
    record(ctx, "audit.read", detail={"filters": {"action": action, "actor": actor,
                                                  "target_type": target_type,
                                                  "target_id": target_id},
                                      "rows": len(rows)})
    return rows
