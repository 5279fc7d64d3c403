"""Pushing a library's feed to its webhook, against a real HTTP server that misbehaves: every
event arrives, in order, exactly once after the library's own de-duplication by event id."""

from __future__ import annotations

import hashlib
import hmac
import json
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest
from fastapi.testclient import TestClient

from cardsvc.app.http import create_app
from cardsvc.library import webhooks
from cardsvc.library.feed import FeedNotifier, NoNotifier
from tests.support import libraries as lib
from tests.support.api import Api


@dataclass
class Receiver:
    """A library's endpoint: checks the signature, keeps each event id once."""

    secret: str = ""
    script: list[str] = field(default_factory=list)  # per request: ok | fail | slow
    raw: list[int] = field(default_factory=list)  # seqs as they arrived
    bodies: list[bytes] = field(default_factory=list)
    kept: list[dict[str, Any]] = field(default_factory=list)
    bad_signatures: int = 0
    url: str = ""

    def take(self, headers: Any, body: bytes) -> int:
        ts = headers["X-Cardsvc-Timestamp"]
        mac = hmac.new(self.secret.encode(), ts.encode() + b"." + body, hashlib.sha256)
        if headers["X-Cardsvc-Signature"] != "sha256=" + mac.hexdigest():
            self.bad_signatures += 1
            return 401
        event = json.loads(body)
        self.bodies.append(body)
        assert headers["Idempotency-Key"] == event["event_id"]
        action = self.script.pop(0) if self.script else "ok"
        if action == "fail":
            return 503
        self.raw.append(event["seq"])
        if event["event_id"] not in {e["event_id"] for e in self.kept}:
            self.kept.append(event)
        if action == "slow":
            time.sleep(1.0)  # longer than the sender waits: it will send this one again
        return 200


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    state = Receiver()

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers["Content-Length"]))
            status = state.take(self.headers, body)
            try:
                self.send_response(status)
                self.end_headers()
            except OSError:
                pass  # the sender gave up waiting

        def log_message(self, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    state.url = f"http://127.0.0.1:{server.server_address[1]}/hook"
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield state
    server.shutdown()
    server.server_close()


@pytest.fixture
def quick(runtime_factory, tokens) -> Iterator[tuple[Any, Api, Api]]:  # type: ignore[no-untyped-def]
    rt = runtime_factory(library_webhook_timeout_seconds=0.5, library_webhook_backoff_seconds=0,
                         library_webhook_max_failures=4)
    rt.services.bind(FeedNotifier, NoNotifier())  # the test delivers, step by step
    with TestClient(create_app(rt), raise_server_exceptions=False) as client:
        yield rt, Api(client, tokens["admin"]), Api(client, tokens["clerk"])


def deliver(rt: Any, library_id: int) -> webhooks.Outcome:
    return webhooks.deliver(rt.sessions, rt.settings, rt.keys, library_id,
                            webhooks.HttpTransport())


def test_failures_timeouts_and_duplicates_end_with_every_event_once_in_order(  # type: ignore[no-untyped-def]
        quick, receiver) -> None:
    rt, admin, clerk = quick
    county = lib.register(admin, "KMCCL", webhook=receiver.url)
    receiver.secret = county["webhook_secret"]
    holder, card = lib.resident_with_card(clerk)
    lib.link(clerk, holder["id"], county)
    clerk.ok("POST", f"/cards/{card['id']}/suspend", {"reason": "resident lost it"})
    clerk.ok("POST", f"/cards/{card['id']}/reinstate", {"reason": "found it again"})
    lib.replace(clerk, card["id"])
    receiver.script = ["fail", "ok", "slow", "ok", "fail", "ok", "ok"]
    outcomes = []
    for _ in range(10):
        out = deliver(rt, county["id"])
        outcomes.append(out.state)
        if out.state == "idle":
            break
    assert outcomes[-1] == "idle" and "failed" in outcomes
    assert [e["seq"] for e in receiver.kept] == [1, 2, 3, 4]
    assert receiver.raw.count(2) == 2  # the slow answer was sent again
    assert [e["record"]["status"] for e in receiver.kept] == ["valid", "lost", "valid", "valid"]
    assert receiver.bad_signatures == 0
    sent = b"".join(receiver.bodies).decode()
    assert holder["_person_id"] not in sent and card["chip_uid"] not in sent
    state = admin.ok("GET", f"/libraries/{county['id']}")["feed"]
    assert state["delivered_seq"] == state["last_seq"] == 4 and state["failures"] == 0


def test_a_parked_feed_resumes_where_it_stopped(quick, receiver) -> None:  # type: ignore[no-untyped-def]
    rt, admin, clerk = quick
    county = lib.register(admin, "KMCCL", webhook=receiver.url)
    receiver.secret = county["webhook_secret"]
    holder, card = lib.resident_with_card(clerk)
    lib.link(clerk, holder["id"], county)
    assert deliver(rt, county["id"]).state == "delivered"
    clerk.ok("POST", f"/cards/{card['id']}/suspend", {"reason": "resident lost it"})
    receiver.script = ["fail"] * 4
    states = [deliver(rt, county["id"]).state for _ in range(5)]
    assert states == ["failed", "failed", "failed", "parked", "parked"]
    parked = admin.ok("GET", f"/libraries/{county['id']}")["feed"]
    assert parked["parked_at"] and parked["last_error"] == "HTTP 503"
    assert parked["delivered_seq"] == 1 and parked["last_seq"] == 2
    # Changes go on into the feed meanwhile; resuming delivers them all, in order.
    clerk.ok("POST", f"/cards/{card['id']}/reinstate", {"reason": "found it again"})
    admin.ok("POST", f"/libraries/{county['id']}/resume")
    assert deliver(rt, county["id"]).delivered == 2
    assert [e["seq"] for e in receiver.kept] == [1, 2, 3]


def test_a_pulling_library_is_not_pushed(quick) -> None:  # type: ignore[no-untyped-def]
    rt, admin, clerk = quick
    county = lib.register(admin, "KMCCL")
    holder, _ = lib.resident_with_card(clerk)
    lib.link(clerk, holder["id"], county)
    assert county["webhook_secret"] is None
    assert deliver(rt, county["id"]).state == "off"
