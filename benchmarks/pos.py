"""Card-present purchases per second through the signed POS API on PostgreSQL.

A real server (uvicorn, one process per port) on a fresh PostgreSQL database; N client
threads, each a terminal with its own credentials and its own share of the cards (a card is
at one terminal at a time), submit purchases whose certificates are valid (computed with the
card keys, as the cards would). Nothing is warmed up: the run includes each process's first
requests. Every request is signed, checked (signature, clock, nonce, hotlist, expiry, limit,
certificate, replay), booked in the ledger with its audit row and idempotency record. The
clients speak HTTP/1.1 over kept-alive sockets with little code: they share the machine's
cores with the server and the database, and a heavier client would measure itself.

Baseline in the same run: the same ledger writes (transfer, two postings, two balance updates,
the transaction row) as raw SQL from N threads, one statement at a time, without any checks.

Last line: purchases_per_s=N p50_ms=X p99_ms=Y vs_raw=R
"""

from __future__ import annotations

import argparse
import base64
import datetime as dt
import json
import os
import secrets
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from pathlib import Path

import httpx
from sqlalchemy import create_engine, text, update
from sqlalchemy.engine import make_url

from cardsvc.app import migrate
from cardsvc.app.bootstrap import bootstrap
from cardsvc.cards import purse as money
from cardsvc.cards import schemas as cs
from cardsvc.cards import service as cards
from cardsvc.cards.models import Card, Product
from cardsvc.config import Settings
from cardsvc.context import Actor, Ctx
from cardsvc.db import unit_of_work
from cardsvc.holders import schemas as hs
from cardsvc.holders import service as holders
from cardsvc.identifiers import person_id_check_digit
from cardsvc.keystore.service import KeyStore
from merchants.pos import signing
from merchants.registry import schemas as ms
from merchants.registry import service as msvc
from merchants.registry.models import MerchantCategory
from readers import crypto
from readers import protocol as p
from readers.protocol import KeyPurpose


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


class LeanPos:
    """A terminal's signed requests over one kept-alive connection."""

    def __init__(self, port: int, key_id: str, secret_b64: str) -> None:
        self.sock = socket.create_connection(("127.0.0.1", port))
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.key_id = key_id
        self.secret = base64.urlsafe_b64decode(secret_b64 + "=" * (-len(secret_b64) % 4))
        self.buf = b""

    def post(self, path: str, payload: dict[str, object], key: str) -> tuple[int, bytes]:
        body = json.dumps(payload, separators=(",", ":")).encode()
        ts, nonce = str(int(time.time())), secrets.token_urlsafe(18)
        sig = signing.sign(self.secret, "POST", path, ts, nonce, body)
        self.sock.sendall(
            f"POST {path} HTTP/1.1\r\nHost: pos\r\nContent-Type: application/json\r\n"
            f"X-Terminal-Key: {self.key_id}\r\nX-Timestamp: {ts}\r\nX-Nonce: {nonce}\r\n"
            f"X-Signature: {sig}\r\nIdempotency-Key: {key}\r\n"
            f"Content-Length: {len(body)}\r\n\r\n".encode() + body)
        while True:
            end = self.buf.find(b"\r\n\r\n")
            if end >= 0:
                head = self.buf[:end].decode("latin-1").lower()
                length = int(head.split("content-length:")[1].split("\r\n")[0])
                if len(self.buf) >= end + 4 + length:
                    status = int(head[9:12])
                    answer = self.buf[end + 4:end + 4 + length]
                    self.buf = self.buf[end + 4 + length:]
                    return status, answer
            chunk = self.sock.recv(65536)
            if not chunk:
                raise ConnectionError("the server closed the connection")
            self.buf += chunk


def cpu_seconds(pids: list[int]) -> float:
    """User and system CPU time of these processes and their children (Linux /proc)."""
    total, seen, todo = 0.0, set(), list(pids)
    tick = os.sysconf("SC_CLK_TCK")
    while todo:
        pid = todo.pop()
        if pid in seen:
            continue
        seen.add(pid)
        try:
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
            total += (int(fields[11]) + int(fields[12])) / tick
            todo += [int(c) for c in Path(f"/proc/{pid}/task/{pid}/children").read_text()
                     .split()]
        except (OSError, ValueError, IndexError):
            continue
    return total


def postgres_pids() -> list[int]:
    out = []
    for d in Path("/proc").iterdir():
        if d.name.isdigit():
            try:
                if (d / "comm").read_text().strip() == "postgres":
                    out.append(int(d.name))
            except OSError:
                continue
    return out


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--url", default="postgresql+psycopg://postgres@127.0.0.1:5432/test",
                    help="PostgreSQL server (a fresh database is created and dropped)")
    ap.add_argument("--clients", type=int, default=8)
    ap.add_argument("--purchases", type=int, default=4000)
    ap.add_argument("--cards", type=int, default=200)
    ap.add_argument("--workers", type=int, default=2,
                    help="server processes (one uvicorn worker each, on its own port; the "
                         "clients are spread over them in turn, as a load balancer would)")
    args = ap.parse_args()
    if args.cards < args.clients:
        ap.error("--cards must be at least --clients (a card is at one terminal at a time)")
    share = args.cards // args.clients

    def card_of(client: int, step: int) -> int:
        """The card a terminal's purchase uses: its own share of the cards, in turn."""
        return client + args.clients * (step % share)

    name = f"cardsvc_posbench_{uuid.uuid4().hex[:8]}"
    admin = create_engine(args.url, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f'CREATE DATABASE "{name}"'))
    db_url = make_url(args.url).set(database=name).render_as_string(hide_password=False)
    workdir = Path(tempfile.mkdtemp(prefix="posbench-"))
    settings = Settings(database_url=db_url, secrets_file=workdir / "secrets.json",
                        reader="none")
    servers: list[subprocess.Popen[bytes]] = []
    try:
        from cardsvc.runtime import Runtime
        rt0 = Runtime.build(settings)
        migrate.upgrade(rt0.engine)
        rt0.close()
        rt = bootstrap(settings).runtime
        actor = Actor.system("bench")
        print(f"preparing {args.cards} cards and {args.clients} terminals ...", flush=True)
        card_rows = []
        with unit_of_work(rt.sessions) as db:
            ctx = Ctx(db, rt.settings, rt.keys, actor)
            for i in range(args.cards):
                head = f"W1{i:07d}"
                h = holders.register(ctx, hs.CardholderCreate(
                    name="bench", person_id=head + person_id_check_digit(head),
                    birth_date=dt.date(1980, 1, 1), township="金城鎮"))
                card = cards.apply(ctx, cs.CardApplication(cardholder_id=h.id,
                                                           product=Product.GENERAL))
                cards.issue(ctx, card.id, cs.IssueRequest(chip_uid=f"04{i:012X}"))
                cards.simple_transition(ctx, card.id, "activate", "bench")
                money.topup(ctx, card.id, cs.TopUpRequest(amount=10_000))
                card_rows.append((card.id, card.card_number,
                                  bytes.fromhex(card.chip_uid or "")))
            db.execute(update(Card).values(load_key_version=1))  # chips carry our keys
            m = msvc.create_merchant(ctx, ms.MerchantCreate(
                legal_name="bench", tax_id="10458575", category=MerchantCategory.RETAIL, fee_bps=0,
                bank_account="004-00012345678"))
            creds = [msvc.create_terminal(ctx, m.id, ms.TerminalCreate(label=f"T{i}"))
                     for i in range(args.clients)]
            store = KeyStore(db, rt.keys.secrets.kek, rt.keys.secrets.system_id)
            load_keys = {cid: store.card_key(KeyPurpose.LOAD, 1, uid)
                         for cid, _, uid in card_rows}
        rt.close()

        # Purchases with valid certificates, NT$1 each. A card is in one place at a time:
        # each terminal takes its own share of the cards, in turn (the raw baseline too).
        per_client = args.purchases // args.clients
        counters = dict.fromkeys(load_keys, 1)  # the top-up was a chip counter step too
        jobs: list[list[dict[str, object]]] = []
        when = int(time.time())
        for c in range(args.clients):
            batch = []
            for s in range(per_client):
                cid, number, uid = card_rows[card_of(c, s)]
                counters[cid] += 1
                balance = 10_000 - (counters[cid] - 1)
                cert = crypto.mac8(load_keys[cid], p.certificate_input(
                    number, p.TxType.DEBIT, counters[cid], 1, balance, creds[c].id, s + 1,
                    when))
                batch.append({"card_number": number, "chip_uid": uid.hex().upper(),
                              "amount": 1, "card_counter": counters[cid],
                              "balance_after": balance, "terminal_seq": s + 1, "time": when,
                              "certificate": cert.hex()})
            jobs.append(batch)

        # One process per port: a terminal's kept-alive connection stays with one process,
        # and processes sharing one listening socket get uneven shares of the connections.
        ports = [free_port() for _ in range(args.workers)]
        env = {**os.environ, "CARDSVC_DATABASE_URL": db_url,
               "CARDSVC_SECRETS_FILE": str(settings.secrets_file), "CARDSVC_READER": "none",
               "CARDSVC_GENERATE_SECRETS": "false"}
        for port in ports:
            servers.append(subprocess.Popen(  # noqa: S603 - our own app, fixed arguments
                [sys.executable, "-m", "uvicorn", "cardsvc.app.asgi:app", "--host", "127.0.0.1",
                 "--port", str(port), "--no-access-log", "--log-level", "warning"],
                env=env, cwd=workdir))
        for port in ports:
            for _ in range(100):
                try:
                    if httpx.get(f"http://127.0.0.1:{port}/health").status_code == 200:
                        break
                except httpx.TransportError:
                    time.sleep(0.2)

        latencies: list[float] = []
        approved = [0]
        lock = threading.Lock()

        def client(c: int) -> None:
            pos = LeanPos(ports[c % len(ports)], creds[c].key_id, creds[c].secret)
            mine: list[float] = []
            ok = 0
            for i, body in enumerate(jobs[c]):
                t = time.perf_counter()
                code, answer = pos.post("/pos/v1/purchases", body, f"bench-{c:03d}-{i:08d}")
                mine.append((time.perf_counter() - t) * 1000)
                ok += code == 200 and json.loads(answer).get("status") == "accepted"
            with lock:
                latencies.extend(mine)
                approved[0] += ok

        print(f"{args.clients} signed clients, {per_client * args.clients} purchases, "
              f"{args.workers} server workers ...", flush=True)
        threads = [threading.Thread(target=client, args=(c,)) for c in range(args.clients)]
        pids = [srv.pid for srv in servers]
        cpu0 = (cpu_seconds(pids), cpu_seconds(postgres_pids()),
                time.process_time())
        t0 = time.perf_counter()
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        api_s = time.perf_counter() - t0
        cpu = (cpu_seconds(pids) - cpu0[0], cpu_seconds(postgres_pids()) - cpu0[1],
               time.process_time() - cpu0[2])
        for srv in servers:
            srv.terminate()
        for srv in servers:
            srv.wait(timeout=30)
        servers = []

        # Raw baseline: the same rows, plain SQL, same concurrency.
        raw_engine = create_engine(db_url, pool_size=args.clients, max_overflow=0)
        with raw_engine.connect() as conn:
            purses = [(int(r[0]), int(r[1])) for r in conn.execute(text(
                "SELECT id, card_id FROM accounts WHERE kind = 'card_purse' ORDER BY id"))]
            takings = {int(r[1].split(":")[1]): int(r[0]) for r in conn.execute(text(
                "SELECT id, code FROM accounts WHERE kind = 'terminal_takings'"))}
        raw_lat: list[float] = []

        def raw_client(c: int) -> None:
            # What the server writes for a purchase, as plain statements: no checks.
            mine = []
            till, terminal = takings[creds[c].id], creds[c].id
            with raw_engine.connect() as conn:
                for i in range(per_client):
                    purse, card_id = purses[card_of(c, i)]
                    t = time.perf_counter()
                    with conn.begin():
                        tid = conn.execute(text(
                            "INSERT INTO transfers (kind, card_id, amount, actor, memo, "
                            "created_at) VALUES ('raw', :c, 1, 'bench', '', now()) "
                            "RETURNING id"), {"c": card_id}).scalar()
                        for acct, delta in sorted(((purse, -1), (till, 1))):
                            conn.execute(text("UPDATE accounts SET balance = balance + :d "
                                              "WHERE id = :a"), {"d": delta, "a": acct})
                        conn.execute(text(
                            "INSERT INTO postings (transfer_id, account_id, amount, "
                            "balance_after, created_at) VALUES (:t, :a, -1, 0, now()), "
                            "(:t, :b, 1, 0, now())"), {"t": tid, "a": purse, "b": till})
                        conn.execute(text(
                            "INSERT INTO pos_transactions (kind, status, terminal_id, "
                            "merchant_id, card_id, card_number, amount, refunded, "
                            "transfer_id, created_at) SELECT 'raw', 'accepted', t.id, "
                            "t.merchant_id, :c, '0000000000000000', 1, 0, :tr, now() "
                            "FROM terminals t WHERE t.id = :term"),
                            {"c": card_id, "tr": tid, "term": terminal})
                    mine.append((time.perf_counter() - t) * 1000)
            with lock:
                raw_lat.extend(mine)

        threads = [threading.Thread(target=raw_client, args=(c,)) for c in range(args.clients)]
        t0 = time.perf_counter()
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        raw_s = time.perf_counter() - t0
        raw_engine.dispose()
    finally:
        for srv in servers:
            srv.terminate()
        with admin.connect() as conn:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()

    total = per_client * args.clients
    rate, raw_rate = approved[0] / api_s, total / raw_s
    p50, p99 = statistics.median(latencies), percentile(latencies, 0.99)
    print(f"POS API    : {approved[0]}/{total} approved in {api_s:.1f} s = {rate:7.0f}/s   "
          f"p50 {p50:6.2f} ms  p99 {p99:6.2f} ms")
    print(f"CPU per purchase: server {cpu[0] / total * 1000:.2f} ms, database "
          f"{cpu[1] / total * 1000:.2f} ms, clients {cpu[2] / total * 1000:.2f} ms "
          f"({os.cpu_count()} cores)")
    print(f"raw SQL    : {total} ledger writes in {raw_s:.1f} s = {raw_rate:7.0f}/s   "
          f"p50 {statistics.median(raw_lat):6.2f} ms  p99 {percentile(raw_lat, 0.99):6.2f} ms")
    print(f"purchases_per_s={rate:.0f} p50_ms={p50:.2f} p99_ms={p99:.2f} "
          f"vs_raw={rate / raw_rate:.2f}")


if __name__ == "__main__":
    main()
