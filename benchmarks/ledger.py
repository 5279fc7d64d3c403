"""Counter top-ups per second through the service layer vs the same ledger writes as raw SQL.

The service path takes the card and account row locks, writes the transfer, two postings, the
balances, the idempotency record and the audit row (hash chain) in one transaction per top-up.
The raw baseline writes the same transfer, postings and balance updates with plain SQL in one
transaction per top-up, with no checks. Prints one summary line at the end:
    topups_per_s=N raw_per_s=M vs_raw=R
"""

from __future__ import annotations

import argparse
import datetime as dt
import tempfile
import time
import uuid
from functools import partial
from pathlib import Path

from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url

from cardsvc.app import migrate
from cardsvc.cards import purse as money
from cardsvc.cards import schemas as s
from cardsvc.cards import service as cards
from cardsvc.cards.models import Product
from cardsvc.config import Settings
from cardsvc.context import Actor, Ctx
from cardsvc.db import unit_of_work
from cardsvc.holders import schemas as hs
from cardsvc.holders import service as holders
from cardsvc.idempotency.service import idempotent
from cardsvc.identifiers import person_id_check_digit
from cardsvc.runtime import Runtime


def fresh_database(url: str) -> tuple[str, str | None]:
    if not url.startswith("postgresql"):
        return f"sqlite:///{Path(tempfile.mkdtemp()) / 'bench.db'}", None
    name = f"cardsvc_bench_{uuid.uuid4().hex[:8]}"
    admin = create_engine(url, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f'CREATE DATABASE "{name}"'))
    admin.dispose()
    return make_url(url).set(database=name).render_as_string(hide_password=False), name


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--url", default="sqlite", help="PostgreSQL server URL, or 'sqlite'")
    ap.add_argument("--n", type=int, default=1000, help="top-ups per run")
    args = ap.parse_args()
    db_url, pg_name = fresh_database(args.url)
    secrets = Path(tempfile.mkdtemp()) / "secrets.json"
    rt = Runtime.build(Settings(database_url=db_url, secrets_file=secrets))
    migrate.upgrade(rt.engine)
    actor = Actor(None, "bench", "clerk")
    card_ids = []
    with unit_of_work(rt.sessions) as db:
        ctx = Ctx(db, rt.settings, rt.keys, actor)
        for i in range(50):
            head = f"W1{i:07d}"
            h = holders.register(ctx, hs.CardholderCreate(
                name="bench", person_id=head + person_id_check_digit(head),
                birth_date=dt.date(1980, 1, 1), township="金城鎮"))
            c = cards.apply(ctx, s.CardApplication(cardholder_id=h.id, product=Product.GENERAL))
            cards.issue(ctx, c.id, s.IssueRequest(chip_uid=f"04{i:012X}"))
            cards.simple_transition(ctx, c.id, "activate", "bench")
            card_ids.append(c.id)

    started = time.perf_counter()
    for i in range(args.n):
        card = card_ids[i % len(card_ids)]
        with unit_of_work(rt.sessions) as db:
            ctx = Ctx(db, rt.settings, rt.keys, actor)
            body = s.TopUpRequest(amount=1)
            idempotent(ctx, f"bench-{i:08d}", "purse.topup", {"card_id": card, "amount": 1},
                       partial(money.topup, ctx, card, body))
    service_s = time.perf_counter() - started

    with rt.engine.connect() as conn:
        cash = conn.execute(text("SELECT id FROM accounts WHERE code = 'cash:KM-HQ'")).scalar()
        purses = [r[0] for r in conn.execute(text(
            "SELECT id FROM accounts WHERE kind = 'card_purse' ORDER BY id"))]
    now = dt.datetime.now(dt.UTC)
    started = time.perf_counter()
    for i in range(args.n):
        purse = purses[i % len(purses)]
        with rt.engine.begin() as conn:
            tid = conn.execute(text(
                "INSERT INTO transfers (kind, amount, actor, memo, created_at) "
                "VALUES ('raw', 1, 'bench', '', :now) RETURNING id"), {"now": now}).scalar()
            conn.execute(text(
                "INSERT INTO postings (transfer_id, account_id, amount, balance_after, created_at)"
                " VALUES (:t, :cash, -1, 0, :now), (:t, :purse, 1, 0, :now)"),
                {"t": tid, "cash": cash, "purse": purse, "now": now})
            conn.execute(text("UPDATE accounts SET balance = balance - 1 WHERE id = :a"),
                         {"a": cash})
            conn.execute(text("UPDATE accounts SET balance = balance + 1 WHERE id = :a"),
                         {"a": purse})
    raw_s = time.perf_counter() - started
    rt.close()
    if pg_name:
        admin = create_engine(args.url, isolation_level="AUTOCOMMIT")
        with admin.connect() as conn:
            conn.execute(text(f'DROP DATABASE "{pg_name}" WITH (FORCE)'))
        admin.dispose()
    svc, raw = args.n / service_s, args.n / raw_s
    print(f"{rt.engine.dialect.name}: {args.n} top-ups, one transaction each")
    print(f"  service layer: {svc:8.0f}/s  ({service_s * 1000 / args.n:.2f} ms each)")
    print(f"  raw SQL:       {raw:8.0f}/s  ({raw_s * 1000 / args.n:.2f} ms each)")
    print(f"topups_per_s={svc:.0f} raw_per_s={raw:.0f} vs_raw={svc / raw:.2f}")


if __name__ == "__main__":
    main()
