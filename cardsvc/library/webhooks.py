"""Pushing a library's feed to its webhook: signed, one event per request, in order, at least
once (the event id is the idempotency key), with backoff; parked after too many failures.

The signature is HMAC-SHA256 with the library's webhook secret over
`<timestamp>.<body>`, sent as `X-Cardsvc-Signature: sha256=<hex>` with
`X-Cardsvc-Timestamp: <unix seconds>`; a library checks it and refuses old timestamps.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import hmac
import json
import uuid
from dataclasses import dataclass
from typing import Protocol

import httpx
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from cardsvc.audit import service as audit
from cardsvc.config import Settings
from cardsvc.context import Actor
from cardsvc.db import unit_of_work, utcnow
from cardsvc.library.models import Library, LibraryEvent, LibraryFeed
from cardsvc.security.crypto import Keyring

ACTOR = Actor.system("library-webhooks")
CLAIM_SECONDS = 120
BATCH = 100


def signature(secret: str, timestamp: int, body: bytes) -> str:
    mac = hmac.new(secret.encode(), str(timestamp).encode() + b"." + body, hashlib.sha256)
    return "sha256=" + mac.hexdigest()


def body_of(library: Library, ev: LibraryEvent) -> bytes:
    return json.dumps({"library": library.code, "seq": ev.seq, "event_id": ev.event_id,
                       "kind": ev.kind, "patron_id": ev.patron_id,
                       "record": json.loads(ev.record),
                       "created_at": ev.created_at.isoformat()},
                      ensure_ascii=False, sort_keys=True).encode()


class WebhookTransport(Protocol):
    """Sends one request; returns the status code, or raises OSError / httpx.HTTPError when
    no answer came."""

    def post(self, url: str, body: bytes, headers: dict[str, str], timeout: float) -> int: ...


class HttpTransport:
    def post(self, url: str, body: bytes, headers: dict[str, str], timeout: float) -> int:
        # No redirects: a library's endpoint answers itself, and a redirect could carry the
        # patron records elsewhere.
        r = httpx.post(url, content=body, headers=headers, timeout=timeout,
                       follow_redirects=False)
        return r.status_code


@dataclass(frozen=True)
class Outcome:
    delivered: int  # events delivered in this call
    state: str  # idle | delivered | failed | parked | waiting | busy | off
    retry_in: float | None = None  # seconds until the next try, after a failure


def backoff(settings: Settings, failures: int) -> float:
    return float(min(settings.library_webhook_backoff_seconds * 2 ** max(failures - 1, 0),
                     settings.library_webhook_backoff_max_seconds))


def _claim(sessions: sessionmaker[Session], library_id: int, token: str, now: dt.datetime
           ) -> tuple[str, Library | None]:
    with unit_of_work(sessions) as db:
        library = db.get(Library, library_id)
        feed = db.get(LibraryFeed, library_id, with_for_update=True)
        if library is None or feed is None or not library.active or not library.webhook_url:
            return "off", None
        if feed.parked_at is not None:
            return "parked", None
        if feed.next_attempt_at is not None and feed.next_attempt_at > now:
            return "waiting", None
        if feed.claimed_until is not None and feed.claimed_until > now:
            return "busy", None
        if feed.delivered_seq >= feed.last_seq:
            return "idle", None
        feed.claim = token
        feed.claimed_until = now + dt.timedelta(seconds=CLAIM_SECONDS)
        db.expunge(library)
        return "claimed", library


def _still_ours(db: Session, library_id: int, token: str) -> LibraryFeed | None:
    feed = db.get(LibraryFeed, library_id, with_for_update=True, populate_existing=True)
    return feed if feed is not None and feed.claim == token else None


def deliver(sessions: sessionmaker[Session], settings: Settings, keys: Keyring,
            library_id: int, transport: WebhookTransport) -> Outcome:
    """Deliver the library's undelivered events in order until one fails or none is left."""
    token = str(uuid.uuid4())
    state, library = _claim(sessions, library_id, token, utcnow())
    if library is None:
        return Outcome(0, state)
    assert library.webhook_url is not None and library.webhook_secret_enc is not None  # noqa: S101
    secret = keys.pii.decrypt("library_webhook", library.webhook_secret_enc)
    delivered = 0
    try:
        while True:
            with sessions() as db:
                feed = db.get(LibraryFeed, library_id)
                assert feed is not None  # noqa: S101 - claimed above
                events = list(db.scalars(select(LibraryEvent).where(
                    LibraryEvent.library_id == library_id,
                    LibraryEvent.seq > feed.delivered_seq)
                    .order_by(LibraryEvent.seq).limit(BATCH)))
                db.expunge_all()
            if not events:
                return Outcome(delivered, "delivered" if delivered else "idle")
            for ev in events:
                error = _send(library, ev, secret, settings, transport)
                with unit_of_work(sessions) as db:
                    feed = _still_ours(db, library_id, token)
                    if feed is None:
                        return Outcome(delivered, "busy")  # our claim ran out; another goes on
                    if error is None:
                        feed.delivered_seq = max(feed.delivered_seq, ev.seq)
                        feed.failures = 0
                        feed.last_error = None
                        feed.next_attempt_at = None
                        feed.claimed_until = utcnow() + dt.timedelta(seconds=CLAIM_SECONDS)
                        audit.record_for(db, ACTOR, "library.disclose", target_type="library",
                                         target_id=library_id, purpose="library feed (webhook)",
                                         detail={"library": library.code, "seq": ev.seq,
                                                 "patron_id": ev.patron_id})
                        delivered += 1
                        continue
                    feed.failures += 1
                    feed.last_error = error[:500]
                    if feed.failures >= settings.library_webhook_max_failures:
                        feed.parked_at = utcnow()
                        audit.record_for(db, ACTOR, "library.feed_parked",
                                         target_type="library", target_id=library_id,
                                         detail={"library": library.code, "seq": ev.seq,
                                                 "failures": feed.failures, "error": error[:200]})
                        return Outcome(delivered, "parked")
                    wait = backoff(settings, feed.failures)
                    feed.next_attempt_at = utcnow() + dt.timedelta(seconds=wait)
                    return Outcome(delivered, "failed", wait)
    finally:
        with unit_of_work(sessions) as db:
            feed = _still_ours(db, library_id, token)
            if feed is not None:
                feed.claim = None
                feed.claimed_until = None


def _send(library: Library, ev: LibraryEvent, secret: str, settings: Settings,
          transport: WebhookTransport) -> str | None:
    """None when the library took the event; otherwise why not."""
    body = body_of(library, ev)
    ts = int(utcnow().timestamp())
    headers = {"Content-Type": "application/json; charset=utf-8",
               "Idempotency-Key": ev.event_id, "X-Cardsvc-Event-Id": ev.event_id,
               "X-Cardsvc-Library": library.code, "X-Cardsvc-Seq": str(ev.seq),
               "X-Cardsvc-Timestamp": str(ts),
               "X-Cardsvc-Signature": signature(secret, ts, body)}
    assert library.webhook_url is not None  # noqa: S101
    try:
        status = transport.post(library.webhook_url, body, headers,
                                settings.library_webhook_timeout_seconds)
    except (OSError, httpx.HTTPError) as exc:
        return f"{type(exc).__name__}: {exc}"
    if 200 <= status < 300:
        return None
    return f"HTTP {status}"


def due(db: Session, now: dt.datetime) -> list[int]:
    """Libraries with events to push and nothing holding them back."""
    rows = db.execute(select(LibraryFeed.library_id).join(
        Library, Library.id == LibraryFeed.library_id).where(
        Library.active.is_(True), Library.webhook_url.is_not(None),
        LibraryFeed.delivered_seq < LibraryFeed.last_seq, LibraryFeed.parked_at.is_(None),
        (LibraryFeed.next_attempt_at.is_(None)) | (LibraryFeed.next_attempt_at <= now),
        (LibraryFeed.claimed_until.is_(None)) | (LibraryFeed.claimed_until <= now))
        .order_by(LibraryFeed.library_id))
    return [int(r[0]) for r in rows]
