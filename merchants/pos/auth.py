"""Terminals' signed requests: who is asking, checked before anything they sent; each nonce
spent once."""

from __future__ import annotations

import datetime as dt

from sqlalchemy import delete, select

from cardsvc.context import Ctx
from cardsvc.db_upsert import insert_if_absent
from merchants.pos import signing
from merchants.pos.errors import (
    BadSignature,
    NonceReused,
    StaleTimestamp,
    TerminalRevoked,
    UnknownTerminal,
)
from merchants.pos.models import PosNonce
from merchants.registry.models import Terminal, TerminalStatus
from merchants.registry.service import unwrap_secret

UNSIGNED = ("sign every request: X-Terminal-Key, X-Timestamp, X-Nonce and X-Signature "
            "headers")


def authenticate_request(ctx: Ctx, key_id: str | None, timestamp: str | None,
                         nonce: str | None, signature: str | None, method: str, path: str,
                         body: bytes) -> Terminal:
    """Check a POS request's signature, clock and nonce; return its terminal.

    The nonce is stored in the caller's transaction; a request that fails later still
    consumed its nonce only if the transaction commits (failures raise with keep_writes)."""
    if not (key_id and timestamp and nonce and signature):
        raise BadSignature(UNSIGNED)
    t = ctx.db.scalar(select(Terminal).where(Terminal.key_id == key_id))
    if t is None:
        raise UnknownTerminal("unknown terminal key")
    if t.status != TerminalStatus.ACTIVE:
        raise TerminalRevoked(f"terminal {t.id} is {t.status}")
    when = signing.unix_seconds(timestamp)
    if when is None:
        raise StaleTimestamp("X-Timestamp must be Unix seconds")
    skew = abs(int(ctx.now.timestamp()) - when)
    if skew > signing.WINDOW_SECONDS:
        raise StaleTimestamp(f"X-Timestamp is {skew} s away from the server's clock; at most "
                             f"{signing.WINDOW_SECONDS} s allowed")
    if not signing.NONCE_RE.fullmatch(nonce):
        raise BadSignature("X-Nonce must be 16-64 characters of letters, digits, _ and -")
    secret = unwrap_secret(ctx.keys.secrets.kek, t.key_id, t.secret_enc)
    if not signing.verify(secret, signature, method, path, timestamp, nonce, body):
        raise BadSignature("the signature does not match this request")
    if insert_if_absent(ctx.db, PosNonce, {"key_id": key_id, "nonce": nonce, "seen_at": ctx.now},
                        [PosNonce.key_id, PosNonce.nonce], PosNonce.id) is None:
        raise NonceReused("this nonce was already used; every request needs a new one")
    return t


# Slack beyond the exact bound, for clocks and for a purge that runs a little late.
NONCE_MARGIN = dt.timedelta(seconds=60)


def purge_nonces(ctx: Ctx) -> int:
    """A nonce seen at T came with a timestamp within the window of T, and a replay of it
    must carry that timestamp within the window of its own arrival: so after T plus twice the
    window the clock check refuses every replay. Nonces older than that (and a margin) go."""
    cutoff = ctx.now - dt.timedelta(seconds=2 * signing.WINDOW_SECONDS) - NONCE_MARGIN
    result = ctx.db.execute(delete(PosNonce).where(PosNonce.seen_at < cutoff))
    return int(getattr(result, "rowcount", 0) or 0)
