"""Running a request once per Idempotency-Key: same key and request, the stored answer; same key,
another request, 409. The record and the work commit together or not at all."""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from pydantic import BaseModel
from sqlalchemy import update

from cardsvc.context import Ctx
from cardsvc.db_upsert import insert_if_absent
from cardsvc.errors import DomainError, InvalidInput
from cardsvc.idempotency.errors import IdempotencyConflict
from cardsvc.idempotency.models import IdempotencyRecord

IDEMPOTENCY_KEY_PATTERN = r"^[A-Za-z0-9_.:-]{8,100}$"


IDEMPOTENCY_KEY_RE = re.compile(IDEMPOTENCY_KEY_PATTERN)


@dataclass(frozen=True)
class IdempotentResult:
    body: dict[str, Any]
    status_code: int
    replayed: bool


def validate_key(key: str | None) -> str:
    if key is None:
        raise InvalidInput("this request moves money: send an Idempotency-Key header "
                           "(8-100 characters: letters, digits, _ . : -)",
                           field="Idempotency-Key")
    if not IDEMPOTENCY_KEY_RE.fullmatch(key):
        raise InvalidInput("Idempotency-Key must be 8-100 characters of letters, digits, "
                           "_ . : -", field="Idempotency-Key")
    return key


def request_hash(operation: str, request: dict[str, Any]) -> str:
    material = json.dumps({"op": operation, "req": request}, sort_keys=True,
                          separators=(",", ":"), default=str)
    return hashlib.sha256(material.encode()).hexdigest()


def idempotent(ctx: Ctx, key: str | None, operation: str, request: dict[str, Any],
               fn: Callable[[], BaseModel], status_code: int = 200) -> IdempotentResult:
    """Run `fn` once per key. Same key and same request: the stored result. Different
    request: 409. The record and the work commit together or not at all."""
    key = validate_key(key)
    digest = request_hash(operation, request)
    inserted = insert_if_absent(
        ctx.db, IdempotencyRecord,
        {"key": key, "operation": operation, "request_hash": digest,
         "status_code": status_code, "response": "", "actor": ctx.actor.username,
         "created_at": ctx.now},
        [IdempotencyRecord.key], IdempotencyRecord.key)
    if inserted is None:
        existing = ctx.db.get(IdempotencyRecord, key, populate_existing=True)
        if existing is None:  # pragma: no cover - the winner vanished between two statements
            raise IdempotencyConflict("this Idempotency-Key is in use; retry")
        if existing.request_hash != digest:
            raise IdempotencyConflict(
                "this Idempotency-Key was already used for a different request; use a new "
                "key for a new operation")
        return IdempotentResult(json.loads(existing.response), existing.status_code, True)

    def store(status: int, body: dict[str, Any]) -> None:
        ctx.db.execute(update(IdempotencyRecord).where(IdempotencyRecord.key == key).values(
            status_code=status, response=json.dumps(body, ensure_ascii=False)))

    try:
        result = fn()
    except DomainError as exc:
        if exc.keep_writes:
            # A refusal that is itself a fact (a rejected POS record): the answer is kept
            # under the key, so a retry gets the same refusal and no second record.
            store(exc.status, exc.problem())
        raise
    body = json.loads(result.model_dump_json())
    store(status_code, body)
    return IdempotentResult(body, status_code, False)
