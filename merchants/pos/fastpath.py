"""The card-present purchase on PostgreSQL, booked in one database call.

A busy POS network sends mostly purchases that are fine. This path books those: it checks
in this process what needs no database (the clock, the request signature with the terminal's
secret, the card's certificate with its load key, the per-purchase limit), then calls the
database function `pos_fast_purchase` (fast_purchases.sql), which re-checks everything
that can change (the terminal still active with this key, the card still this chip and key
version, not hotlisted, not expired, the chip transaction not booked before, not a retry, the
purse balance) and writes the whole purchase in one transaction: the nonce, the transfer and
its two postings, both balances, the POS record, the idempotency record with its answer and
the audit row (chained into the trail by the sealer, `cardsvc.audit.service.seal`).

Whenever anything is not plainly fine, the function writes nothing and this path answers
None: the general path (`merchants.pos.service.purchase`, in a worker thread) then decides
with every rule, records refusals with their reasons and replays retries. So a refusal, a
stale cache entry or a concurrent retry is never decided here, and the two paths cannot
disagree about one: an accepted purchase is written with the same rows either way (tests
compare them).

The caches (terminal secrets, card chip data, account ids, master keys) are per process; the
function's checks make a stale entry harmless, and a call that fell through drops the entries
it used.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import json
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import NamedTuple, TypeVar

import psycopg
from pydantic import TypeAdapter
from sqlalchemy.engine import make_url

from cardsvc.cards.service import HOTLISTED
from cardsvc.config import Settings
from cardsvc.context import TAIPEI
from cardsvc.idempotency.service import IDEMPOTENCY_KEY_RE, request_hash
from cardsvc.keystore.service import debit_certificate, unwrap_master
from cardsvc.ledger import codes
from cardsvc.security.crypto import Keyring
from merchants.pos import schemas as ps
from merchants.pos import signing
from merchants.pos.service import PURCHASE_OPERATION
from merchants.registry.models import TerminalStatus
from merchants.registry.service import unwrap_secret
from readers.protocol import PURPOSE_NAMES, KeyPurpose

log = logging.getLogger("merchants.fastpath")

CALL = "SELECT pos_fast_purchases(%s, %s, %s, %s, %s)"
# The database functions' current definition (migrations keep snapshots of it).
SQL_FILE = Path(__file__).with_name("fast_purchases.sql")


class FastRecord(NamedTuple):
    """One purchase as the database function reads it: json_to_recordset's columns in
    fast_purchases.sql, the same names in the same order (a test holds them to each other)."""

    t: int  # terminal id
    k: str  # its key id
    n: str  # the request's nonce
    ik: str  # idempotency key as stored: scoped to the terminal
    rh: str  # hash of the request
    ir: str  # idempotency key as the terminal sent it
    c: int  # card id
    cn: str  # card number
    u: str  # chip UID
    v: int  # load key version the certificate was checked with
    a: int  # amount
    cc: int  # the chip's counter
    b: int  # the chip's balance after
    s: int  # terminal sequence number
    ct: int  # the chip's time
    cert: str  # the transaction certificate
    pa: int  # the purse's account id
    ta: int  # the terminal's takings account id
# Errors that undo a batch because of one purchase in it, or of its timing: the others are
# booked one by one, and the one that fails alone goes the general way.
_ONE_FAILED = (psycopg.errors.UniqueViolation, psycopg.errors.DeadlockDetected,
               psycopg.errors.SerializationFailure)
_CACHE_MAX = 200_000
_created_at = TypeAdapter(dt.datetime)
V = TypeVar("V")


def call_args(items: list[dict[str, object]], hotlisted: str) -> tuple[object, ...]:
    """The arguments of CALL for these purchases (the items as `FastPurchases` builds them),
    booked now."""
    now = dt.datetime.now(dt.UTC)
    return (json.dumps(items), now, _created_at.dump_python(now, mode="json"),
            now.astimezone(TAIPEI).date(), hotlisted)


@dataclass(frozen=True)
class _Terminal:
    id: int
    secret: bytes
    takings: int  # its takings account


@dataclass(frozen=True)
class _Card:
    id: int
    chip_uid: str
    key_version: int
    purse: int  # its purse account


class _Pool:
    """A few autocommit connections for one event loop (uvicorn runs one per worker)."""

    def __init__(self, conninfo: str, size: int) -> None:
        self.conninfo = conninfo
        self.idle: list[psycopg.AsyncConnection[tuple[object, ...]]] = []
        self.slots = asyncio.Semaphore(size)

    async def acquire(self) -> psycopg.AsyncConnection[tuple[object, ...]]:
        await self.slots.acquire()
        try:
            while self.idle:
                conn = self.idle.pop()
                if not conn.closed:
                    return conn
            return await psycopg.AsyncConnection.connect(self.conninfo, autocommit=True)
        except BaseException:
            self.slots.release()
            raise

    async def release(self, conn: psycopg.AsyncConnection[tuple[object, ...]],
                      healthy: bool) -> None:
        if healthy and not conn.closed:
            self.idle.append(conn)
        else:
            await conn.close()
        self.slots.release()

    async def close(self) -> None:
        while self.idle:
            await self.idle.pop().close()


class _Batcher:
    """Group commit: purchases that arrive while the database is busy go together in the
    next call, one transaction and one disk flush for all of them. At most `calls` run at
    once; an idle system sends each purchase alone, at once."""

    def __init__(self, owner: FastPurchases, calls: int, most: int = 32) -> None:
        self.owner = owner
        self.calls = calls
        self.most = most
        self.running = 0
        self.waiting: list[tuple[dict[str, object], asyncio.Future[str | None]]] = []

    async def submit(self, item: dict[str, object]) -> str | None:
        future: asyncio.Future[str | None] = asyncio.get_running_loop().create_future()
        self.waiting.append((item, future))
        if self.running < self.calls:
            self.running += 1
            asyncio.get_running_loop().create_task(self._drain())
        return await future

    async def _drain(self) -> None:
        try:
            while self.waiting:
                batch = self.waiting[:self.most]
                del self.waiting[:self.most]
                try:
                    answers = await self.owner.book([item for item, _ in batch])
                except Exception:
                    log.warning("fast purchase batch failed; the general path decides",
                                exc_info=True)
                    answers = [None] * len(batch)
                for (_, future), answer in zip(batch, answers, strict=True):
                    if not future.done():
                        future.set_result(answer)
        finally:
            self.running -= 1


class FastPurchases:
    """Books plainly fine card-present purchases; None means "let the general path decide"."""

    def __init__(self, settings: Settings, keys: Keyring) -> None:
        url = make_url(settings.database_url).set(drivername="postgresql")
        self.conninfo = url.render_as_string(hide_password=False)
        self.settings = settings
        self.kek = keys.secrets.kek
        self.system_id = keys.secrets.system_id
        self._pool: _Pool | None = None
        self._batcher: _Batcher | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._terminals: dict[str, _Terminal] = {}
        self._cards: dict[str, _Card] = {}
        self._masters: dict[int, bytes] = {}
        self.hotlisted = ",".join(sorted(str(getattr(x, "value", x)) for x in HOTLISTED))
        self.booked = 0  # purchases booked here (the rest went the general way)

    def _for_loop(self) -> tuple[_Pool, _Batcher]:
        loop = asyncio.get_running_loop()
        if self._pool is None or self._batcher is None or self._loop is not loop:
            # A new event loop (a test client's) cannot use the old loop's connections.
            self._pool, self._loop = _Pool(self.conninfo, self.settings.pos_fast_pool_size), loop
            self._batcher = _Batcher(self, self.settings.pos_fast_batches)
        return self._pool, self._batcher

    async def close(self) -> None:
        if self._pool is not None:
            await self._pool.close()

    async def purchase(self, method: str, path: str, raw: bytes, signed: signing.SignedHeaders,
                       body: ps.CardPurchase, idempotency_key: str | None) -> str | None:
        """The answer (JSON) of a purchase booked here, or None."""
        now = dt.datetime.now(dt.UTC)
        key_id, stamp, nonce, signature = signed
        when = signing.unix_seconds(stamp) if stamp else None
        if not (key_id and stamp and nonce and signature and when is not None
                and abs(int(now.timestamp()) - when) <= signing.WINDOW_SECONDS
                and signing.NONCE_RE.fullmatch(nonce)
                and idempotency_key and IDEMPOTENCY_KEY_RE.fullmatch(idempotency_key)
                and body.amount <= self.settings.pos_purchase_limit):
            return None
        pool, batcher = self._for_loop()
        uid = body.chip_uid.upper()
        terminal = self._terminals.get(key_id)
        card = self._cards.get(body.card_number)
        master = self._masters.get(card.key_version) if card else None
        if terminal is None or card is None or master is None:
            conn = await pool.acquire()
            healthy = True
            try:
                terminal = terminal or await self._load_terminal(conn, key_id)
                card = card or await self._load_card(conn, body)
                if card is not None:
                    master = self._masters.get(card.key_version) or await self._load_master(
                        conn, card.key_version)
            except psycopg.Error:
                healthy = False
                log.warning("fast purchase path could not read its caches", exc_info=True)
                return None
            finally:
                await pool.release(conn, healthy)
        if terminal is None or not signing.verify(terminal.secret, signature, method, path,
                                                  stamp, nonce, raw):
            self._terminals.pop(key_id, None)
            return None
        if card is None or card.chip_uid != uid or master is None or debit_certificate(
                master, self.system_id, uid, body.card_number, body.card_counter, body.amount,
                body.balance_after, terminal.id, body.terminal_seq, body.time
        ).hex() != body.certificate.lower():
            # Forged, or the card was re-keyed since: the next purchase reads it afresh.
            self._cards.pop(body.card_number, None)
            return None
        answer = await batcher.submit(FastRecord(
            t=terminal.id, k=key_id, n=nonce, ik=f"t{terminal.id}:{idempotency_key}",
            rh=request_hash(PURCHASE_OPERATION, body.model_dump()), ir=idempotency_key,
            c=card.id, cn=body.card_number, u=uid, v=card.key_version, a=body.amount,
            cc=body.card_counter, b=body.balance_after, s=body.terminal_seq, ct=body.time,
            cert=body.certificate.lower(), pa=card.purse, ta=terminal.takings)._asdict())
        if answer is None:
            # Something changed or needs the full rules: forget what this call relied on.
            self._terminals.pop(key_id, None)
            self._cards.pop(body.card_number, None)
            return None
        self.booked += 1
        return answer

    async def book(self, items: list[dict[str, object]]) -> list[str | None]:
        """Book these purchases in one transaction; if that fails, each on its own."""
        pool, _ = self._for_loop()
        conn = await pool.acquire()
        healthy = True
        try:
            try:
                return await self._call(conn, items)
            except _ONE_FAILED:
                if len(items) == 1:
                    return [None]  # e.g. a concurrent retry: the general path replays it
            out: list[str | None] = []
            for item in items:
                try:
                    out += await self._call(conn, [item])
                except _ONE_FAILED:
                    out.append(None)
            return out
        except psycopg.Error:
            healthy = not conn.closed and conn.info.transaction_status == \
                psycopg.pq.TransactionStatus.IDLE
            raise
        finally:
            await pool.release(conn, healthy)

    async def _call(self, conn: psycopg.AsyncConnection[tuple[object, ...]],
                    items: list[dict[str, object]]) -> list[str | None]:
        cur = await conn.execute(CALL, call_args(items, self.hotlisted))
        row = await cur.fetchone()
        answers = list(row[0]) if row and row[0] is not None else []  # type: ignore[call-overload]
        if len(answers) != len(items):
            raise psycopg.DataError("pos_fast_purchases answered for a different number of "
                                    "purchases")
        return [a if isinstance(a, str) else None for a in answers]

    async def _load_terminal(self, conn: psycopg.AsyncConnection[tuple[object, ...]],
                             key_id: str) -> _Terminal | None:
        cur = await conn.execute(
            "SELECT t.id, t.secret_enc, t.status, a.id FROM terminals t "
            "JOIN accounts a ON a.code = %s || t.id WHERE t.key_id = %s",
            (codes.TERMINAL, key_id))
        row = await cur.fetchone()
        if row is None or row[2] != TerminalStatus.ACTIVE:
            return None  # (no takings account yet: the general path opens it)
        try:
            secret = unwrap_secret(self.kek, key_id, str(row[1]))
        except Exception:  # unreadable credentials: the general path reports it
            return None
        self._remember(self._terminals, key_id,
                       _Terminal(int(str(row[0])), secret, int(str(row[3]))))
        return self._terminals[key_id]

    async def _load_card(self, conn: psycopg.AsyncConnection[tuple[object, ...]],
                         body: ps.CardPurchase) -> _Card | None:
        cur = await conn.execute(
            "SELECT c.id, c.chip_uid, c.load_key_version, a.id FROM cards c "
            "JOIN accounts a ON a.card_id = c.id WHERE c.card_number = %s", (body.card_number,))
        row = await cur.fetchone()
        if row is None or row[1] is None or row[2] is None:
            return None
        card = _Card(int(str(row[0])), str(row[1]), int(str(row[2])), int(str(row[3])))
        self._remember(self._cards, body.card_number, card)
        return card

    async def _load_master(self, conn: psycopg.AsyncConnection[tuple[object, ...]],
                           version: int) -> bytes | None:
        purpose = PURPOSE_NAMES[KeyPurpose.LOAD]
        cur = await conn.execute("SELECT wrapped FROM card_master_keys WHERE purpose = %s "
                                 "AND version = %s", (purpose, version))
        row = await cur.fetchone()
        if row is None:
            return None
        # Versions are never changed once made: the key is good for the life of the process.
        self._masters[version] = unwrap_master(self.kek, purpose, version, str(row[0]))
        return self._masters[version]

    @staticmethod
    def _remember(cache: dict[str, V], key: str, value: V) -> None:
        if len(cache) >= _CACHE_MAX:
            cache.clear()
        cache[key] = value

