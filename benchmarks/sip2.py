"""SIP2 patron-information exchanges (63/64) against the county SIP2 server on PostgreSQL.

A real server process (`cardsvc sip2 serve`) on a fresh database with N residents linked to
a library; C client connections (threads), each logged in, each sending 63 for the residents'
card numbers in turn and waiting for its 64. Every exchange is a real lookup (card, link,
holder, record) with its audit row.

Two runs: paced at --rate exchanges/s in all (the goal: p99 ≤ 10 ms at 200/s), then as fast
as the clients go (exchanges/s). Baseline in the same run: a bare asyncio server answering
the same frames with the same database work as raw SQL (the lookup's join and the audit
row, autocommitted, one connection per client) and a fixed 64, same clients, same pacing.

Then, with a Celery worker on Redis and a webhook receiver: the time from a card reported
lost (its commit) to the library's webhook receiving the event (the goal: ≤ 5 s).

Last line: exchanges_per_s=N p50_ms=X p99_ms=Y vs_raw=R lost_to_webhook_s=S
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, ClassVar

from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url

from cardsvc.app import migrate
from cardsvc.app.bootstrap import build_runtime
from cardsvc.cards import schemas as cs
from cardsvc.cards import service as cards
from cardsvc.cards.models import Product
from cardsvc.config import Settings
from cardsvc.context import Actor
from cardsvc.db import unit_of_work, utcnow
from cardsvc.holders import schemas as hs
from cardsvc.holders import service as holders
from cardsvc.identifiers import person_id_check_digit
from cardsvc.library import schemas as ls
from cardsvc.library import service as library
from cardsvc.library.models import Ils
from cardsvc.library.sip2 import codec
from cardsvc.library.sip2.server import sip_date

CATEGORIES = {"general": "AD", "senior": "SR", "student": "ST", "default": "AD"}
PASSWORD = "bench-Passw0rd"  # noqa: S105 - a throw-away benchmark account


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_port(port: int, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            return
        except OSError:
            time.sleep(0.1)
    raise RuntimeError(f"nothing listens on {port}")


class Client:
    def __init__(self, port: int) -> None:
        self.sock = socket.create_connection(("127.0.0.1", port))
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.buf = b""
        self.seq = 0

    def ask(self, body: str) -> bytes:
        self.seq = (self.seq + 1) % 10
        data = f"{body}AY{self.seq}AZ".encode()
        self.sock.sendall(data + codec.checksum(data).encode() + b"\r")
        while b"\r" not in self.buf:
            chunk = self.sock.recv(4096)
            if not chunk:
                raise ConnectionError("the server closed the connection")
            self.buf += chunk
        frame, _, self.buf = self.buf.partition(b"\r")
        return frame


def load(port: int, numbers: list[str], clients: int, total: int, rate: float | None
         ) -> tuple[float, list[float]]:
    """`total` exchanges from `clients` connections; paced at `rate` per second in all, or
    as fast as they go. Returns (seconds, latencies in ms)."""
    conns = [Client(port) for _ in range(clients)]
    for c in conns:
        if not c.ask(f"9300CNbench-kiosk|CO{PASSWORD}|").startswith(b"941"):
            raise RuntimeError("SIP2 login refused")
    latencies: list[list[float]] = [[] for _ in conns]
    per = total // clients
    barrier = threading.Barrier(clients + 1)

    def run(i: int) -> None:
        c = conns[i]
        barrier.wait()
        start = time.perf_counter()
        for k in range(per):
            if rate:
                due = start + (k * clients + i) / rate
                delay = due - time.perf_counter()
                if delay > 0:
                    time.sleep(delay)
            number = numbers[(k * clients + i) % len(numbers)]
            t0 = time.perf_counter()
            out = c.ask(f"63000{sip_date(utcnow())}{' ' * 10}AOBENCH|AA{number}|")
            latencies[i].append((time.perf_counter() - t0) * 1000)
            if not out.startswith(b"64"):
                raise RuntimeError(out[:60])

    threads = [threading.Thread(target=run, args=(i,)) for i in range(clients)]
    for t in threads:
        t.start()
    barrier.wait()
    started = time.perf_counter()
    for t in threads:
        t.join()
    seconds = time.perf_counter() - started
    for c in conns:
        c.sock.close()
    return seconds, [x for part in latencies for x in part]


BARE = r'''
import asyncio, sys
import psycopg

def checksum(data): return f"{(-sum(data)) & 0xFFFF:04X}".encode()

LOOKUP = ("SELECT c.status, c.expires_on, l.patron_id, h.name FROM cards c "
          "JOIN library_links l ON l.live_holder_id = c.cardholder_id AND l.library_id = %s "
          "JOIN cardholders h ON h.id = c.cardholder_id WHERE c.card_number = %s")
AUDIT = ("INSERT INTO audit_pending (at, actor, actor_role, action, purpose, target_type, "
         "target_id, detail) VALUES (now(), 'raw', 'library', 'library.sip_lookup', 'raw', "
         "'library', %s, %s)")

async def handle(reader, writer):
    # The same database work as the real server, as raw SQL on a connection of its own,
    # without the protocol's tolerance, the ORM or the domain's rules.
    conn = await psycopg.AsyncConnection.connect(sys.argv[2], autocommit=True)
    try:
        while True:
            try:
                line = await reader.readuntil(b"\r")
            except asyncio.IncompleteReadError:
                return
            if line.startswith(b"93"):
                out = b"941AY0AZ"
            else:
                number = line.split(b"|AA", 1)[1].split(b"|", 1)[0].decode()
                row = await (await conn.execute(LOOKUP, (int(sys.argv[3]), number))).fetchone()
                await conn.execute(AUDIT, (sys.argv[3], '{"raw":1}'))
                name = row[3].encode() if row else b""
                out = (b"64" + b" " * 14 + b"000" + b"20261205    101010" + b" " * 24
                       + b"AOBENCH|AA" + number.encode() + b"|AE" + name
                       + b"|BLY|PA20361231    235959|AY0AZ")
            writer.write(out + checksum(out) + b"\r")
            await writer.drain()
    finally:
        await conn.close()
        writer.close()

async def main():
    server = await asyncio.start_server(handle, "127.0.0.1", int(sys.argv[1]))
    async with server:
        await server.serve_forever()
asyncio.run(main())
'''


def report(label: str, seconds: float, lat: list[float]) -> tuple[float, float, float]:
    rate = len(lat) / seconds
    p50, p99 = statistics.median(lat), percentile(lat, 0.99)
    print(f"{label:<28}: {len(lat):5d} exchanges in {seconds:5.2f} s = {rate:7.0f}/s   "
          f"p50 {p50:6.2f} ms  p99 {p99:6.2f} ms")
    return rate, p50, p99


class Receiver(BaseHTTPRequestHandler):
    arrived: ClassVar[dict[str, float]] = {}

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers["Content-Length"]))
        event = json.loads(body)
        Receiver.arrived.setdefault(event["record"]["card_number"] + event["record"]["status"],
                                    time.perf_counter())
        self.send_response(200)
        self.end_headers()

    def log_message(self, *args: Any) -> None:
        pass


def lost_to_webhook(settings: Settings, env: dict[str, str], broker: str, tries: int
                    ) -> list[float]:
    """Seconds from a lost report's commit to the webhook's receipt, through a worker."""
    hook = ThreadingHTTPServer(("127.0.0.1", 0), Receiver)
    threading.Thread(target=hook.serve_forever, daemon=True).start()
    worker_env = dict(env, CARDSVC_BROKER_URL=broker)
    worker = subprocess.Popen(
        [sys.executable, "-m", "celery", "-A", "cardsvc.app.worker", "worker", "--pool=solo",
         "--loglevel=WARNING", "--without-gossip", "--without-mingle"],
        env=worker_env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    rt = build_runtime(settings.model_copy(update={"broker_url": broker}))
    actor = Actor.system("bench")
    try:
        with unit_of_work(rt.sessions) as db:
            ctx = rt.ctx(db, actor)
            lib = library.create_library(ctx, ls.LibraryCreate(
                code="HOOK", name="hook", ils=Ils.KOHA, categories=CATEGORIES,
                home_branch="HOOK", webhook_url=f"http://127.0.0.1:{hook.server_address[1]}/"))
            ids = []
            for i in range(tries):
                card_id, holder_id = resident(ctx, 900_000 + i)
                library.link(ctx, holder_id, ls.LinkCreate(library_id=lib.id))
                ids.append(card_id)
        time.sleep(3)  # the worker starts; the links' first events go out
        out = []
        for card_id in ids:
            with unit_of_work(rt.sessions) as db:
                card = cards.simple_transition(rt.ctx(db, actor), card_id, "suspend", "lost")
                key = card.card_number + "lost"
            committed = time.perf_counter()
            deadline = committed + 30
            while key not in Receiver.arrived and time.perf_counter() < deadline:
                time.sleep(0.005)
            out.append(Receiver.arrived.get(key, float("inf")) - committed)
        return out
    finally:
        worker.send_signal(signal.SIGTERM)
        worker.wait(30)
        hook.shutdown()
        rt.close()


def resident(ctx: Any, i: int) -> tuple[int, int]:
    head = f"W1{i:07d}"
    h = holders.register(ctx, hs.CardholderCreate(
        name="讀者", person_id=head + person_id_check_digit(head),
        birth_date=dt.date(1980, 1, 1), township="金城鎮"))
    card = cards.apply(ctx, cs.CardApplication(cardholder_id=h.id, product=Product.GENERAL))
    cards.issue(ctx, card.id, cs.IssueRequest(chip_uid=f"04{i:012X}"))
    cards.simple_transition(ctx, card.id, "activate", "bench")
    return card.id, h.id


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--url", default="postgresql+psycopg://postgres@127.0.0.1:5432/test")
    ap.add_argument("--broker", default="redis://127.0.0.1:6379/14")
    ap.add_argument("--clients", type=int, default=20)
    ap.add_argument("--residents", type=int, default=500)
    ap.add_argument("--rate", type=float, default=200.0)
    ap.add_argument("--exchanges", type=int, default=4000)
    ap.add_argument("--webhook-tries", type=int, default=10)
    args = ap.parse_args()

    name = f"cardsvc_sip2bench_{uuid.uuid4().hex[:8]}"
    admin = create_engine(args.url, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f'CREATE DATABASE "{name}"'))
    db_url = make_url(args.url).set(database=name).render_as_string(hide_password=False)
    workdir = Path(tempfile.mkdtemp(prefix="sip2bench-"))
    settings = Settings(database_url=db_url, secrets_file=workdir / "secrets.json",
                        reader="none")
    env = dict(os.environ, CARDSVC_DATABASE_URL=db_url,
               CARDSVC_SECRETS_FILE=str(workdir / "secrets.json"), CARDSVC_READER="none")
    env.pop("CARDSVC_BROKER_URL", None)
    procs: list[subprocess.Popen[bytes]] = []
    try:
        rt = build_runtime(settings)
        migrate.upgrade(rt.engine)
        numbers = []
        with unit_of_work(rt.sessions) as db:
            ctx = rt.ctx(db, Actor.system("bench"))
            lib = library.create_library(ctx, ls.LibraryCreate(
                code="BENCH", name="bench", ils=Ils.KOHA, categories=CATEGORIES,
                home_branch="BENCH", optional_fields=["name"]))
            library.add_sip_login(ctx, lib.id, ls.SipLoginCreate(username="bench-kiosk",
                                                                 password=PASSWORD))
            for i in range(args.residents):
                card_id, holder_id = resident(ctx, i)
                library.link(ctx, holder_id, ls.LinkCreate(library_id=lib.id,
                                                           shared_fields=["name"]))
                numbers.append(cards.get(ctx, card_id).card_number)
            library_id = lib.id
        rt.close()
        raw_dsn = make_url(db_url).set(drivername="postgresql").render_as_string(
            hide_password=False)

        port, bare_port = free_port(), free_port()
        procs.append(subprocess.Popen(  # noqa: S603 - our own server, fixed arguments
            [sys.executable, "-m", "cardsvc.app.cli", "sip2", "serve", "--port", str(port)],
            env=env, stdout=subprocess.DEVNULL))
        procs.append(subprocess.Popen(  # noqa: S603 - the baseline above, fixed arguments
            [sys.executable, "-c", BARE, str(bare_port), raw_dsn, str(library_id)]))
        wait_port(port)
        wait_port(bare_port)
        paced = args.rate * 10  # ten seconds at the paced rate
        print(f"{args.clients} connections, {args.residents} linked residents, PostgreSQL")
        _, _, bare_p99 = report(f"raw, paced {args.rate:.0f}/s",
                                       *load(bare_port, numbers, args.clients, int(paced),
                                             args.rate))
        _, p50, p99 = report(f"sip2, paced {args.rate:.0f}/s",
                             *load(port, numbers, args.clients, int(paced), args.rate))
        bare_rate, _, _ = report("raw, as fast as it goes",
                                 *load(bare_port, numbers, args.clients, args.exchanges, None))
        rate, _, _ = report("sip2, as fast as it goes",
                            *load(port, numbers, args.clients, args.exchanges, None))
        print(f"paced p99 vs raw: {p99 / bare_p99:.2f}x; throughput vs raw: "
              f"{bare_rate / rate:.2f}x slower")
        times = lost_to_webhook(settings, env, args.broker, args.webhook_tries)
        print(f"lost → webhook through a worker: p50 {statistics.median(times):.2f} s, "
              f"max {max(times):.2f} s ({len(times)} cards)")
        print(f"exchanges_per_s={rate:.0f} p50_ms={p50:.2f} p99_ms={p99:.2f} "
              f"vs_raw={p99 / bare_p99:.2f} lost_to_webhook_s={max(times):.2f}")
    finally:
        for p in procs:
            p.terminate()
            p.wait(10)
        with admin.connect() as conn:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


if __name__ == "__main__":
    main()
