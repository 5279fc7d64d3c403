"""Offline records cleared per second on PostgreSQL.

Setup (not timed): a fresh database, a synthetic population of chip cards with a delivered
load each, merchants with one terminal each, and N offline purchase records uploaded with
valid certificates (settlement.synthetic computes them exactly as the cards do).

Timed: `cardsvc settle run` for the day, in-process: close the window (N entries), verify every
certificate per merchant, de-duplicate, check every card's balance chain, post the ledger,
net per merchant, write statements, exceptions, summary and the pain.001 payout file.

Baseline in the same run, on the same rows: COPY of the records into a plain table, the same
per-merchant netting as one GROUP BY, and CMAC verification of every record in a tight loop
(card keys already diversified). The ratio seconds/baseline is the figure.

Last line: records=N seconds=S records_per_s=R vs_raw=X
"""

from __future__ import annotations

import argparse
import datetime as dt
import io
import os
import tempfile
import time
import uuid
from pathlib import Path

from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url

from cardsvc.app import migrate, synthetic
from cardsvc.app.bootstrap import bootstrap
from cardsvc.app.console import make_console
from cardsvc.config import Settings
from cardsvc.context import TAIPEI
from cardsvc.keystore.service import KeyStore
from cardsvc.runtime import Runtime
from readers import crypto
from readers import protocol as p
from readers.protocol import KeyPurpose
from settlement.clearing import service

console = make_console()


def fresh_database(base: str) -> str:
    url = make_url(base)
    name = f"cardsvc_bench_{uuid.uuid4().hex[:8]}"
    admin = create_engine(url, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f'CREATE DATABASE "{name}"'))
    admin.dispose()
    return url.set(database=name).render_as_string(hide_password=False)


def drop_database(base: str, url: str) -> None:
    admin = create_engine(make_url(base), isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f'DROP DATABASE IF EXISTS "{make_url(url).database}" WITH (FORCE)'))
    admin.dispose()


def raw_baseline(rt: Runtime) -> dict[str, float]:
    """COPY the same rows, net them in one GROUP BY, verify their CMACs in a loop."""
    cols = ", ".join(synthetic.COLUMNS)
    out = {}
    with rt.engine.connect() as conn:
        rows = conn.execute(text(f"SELECT {cols} FROM pos_transactions "
                                 "WHERE kind = 'offline_purchase'")).all()
        cards = {int(r[0]): (r[1], r[2]) for r in conn.execute(text(
            "SELECT id, card_number, chip_uid FROM cards WHERE load_key_version IS NOT NULL"))}
    buf = io.StringIO()
    for r in rows:
        buf.write("\t".join(str(v) for v in r) + "\n")
    data = buf.getvalue()
    with rt.engine.begin() as conn:
        conn.execute(text("CREATE TEMP TABLE raw_records "
                          "(LIKE pos_transactions INCLUDING DEFAULTS)"))
        conn.execute(text("ALTER TABLE raw_records ALTER COLUMN id DROP NOT NULL"))
        raw = conn.connection.dbapi_connection
        t = time.perf_counter()
        with raw.cursor() as cur, cur.copy(  # type: ignore[union-attr]
                f"COPY raw_records ({cols}) FROM STDIN") as copy:
            copy.write(data)
        out["copy"] = time.perf_counter() - t
        t = time.perf_counter()
        conn.execute(text("SELECT merchant_id, COUNT(*), SUM(amount) FROM raw_records "
                          "GROUP BY merchant_id ORDER BY merchant_id")).all()
        out["net"] = time.perf_counter() - t
    with rt.sessions() as db:
        masters = KeyStore(db, rt.keys.secrets.kek, rt.keys.secrets.system_id).masters(
            KeyPurpose.LOAD)
    keys = {cid: crypto.diversify_key(masters[1], bytes.fromhex(uid), p.AID,
                                      rt.keys.secrets.system_id)
            for cid, (_, uid) in cards.items()}
    t = time.perf_counter()
    bad = 0
    for (_k, _s, terminal, _m, cid, number, amount, _r, counter, balance, seq, when, cert,
         _at) in rows:
        mac = crypto.mac8(keys[cid], p.certificate_input(
            number, p.TxType.DEBIT, counter, amount, balance, terminal, seq, when))
        bad += mac.hex() != cert
    out["cmac"] = time.perf_counter() - t
    assert bad == 0
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--records", type=int, default=1_000_000)
    ap.add_argument("--cards", type=int, default=25_000)
    ap.add_argument("--merchants", type=int, default=40)
    ap.add_argument("--database", default=os.environ.get(
        "CARDSVC_BENCH_PG_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/test"))
    ap.add_argument("--keep", action="store_true", help="keep the benchmark database")
    args = ap.parse_args()

    url = fresh_database(args.database)
    tmp = tempfile.mkdtemp(prefix="cardsvc-bench-")
    settings = Settings(database_url=url, secrets_file=Path(tmp) / "secrets.json")
    rt = Runtime.build(settings)
    migrate.upgrade(rt.engine)
    rt.close()
    rt = bootstrap(settings).runtime
    try:
        # Yesterday's uploads, cleared after the cut-off: the production case.
        day = dt.datetime.now(TAIPEI).date() - dt.timedelta(days=1)
        t = time.perf_counter()
        pop = synthetic.population(rt, args.merchants, args.cards)
        columns = (TextColumn("[bold]{task.description}"), BarColumn(), MofNCompleteColumn(),
                   TimeElapsedColumn())
        with Progress(*columns, console=console) as progress:
            task = progress.add_task("records with certificates", total=args.records)
            n = synthetic.records(rt, pop, args.records,
                                  received_at=dt.datetime.combine(day, dt.time(12), TAIPEI),
                                  progress=lambda k: progress.advance(task, k))
        with rt.engine.connect() as conn:
            conn.execute(text("ANALYZE"))
            conn.commit()
        console.print(f"setup: {len(pop.cards):,} chip cards, {args.merchants} merchants, "
                      f"{n:,} offline records in {time.perf_counter() - t:.1f} s (not timed)")

        with Progress(*columns, console=console) as progress:
            task = progress.add_task(f"clearing {day}", total=None)
            t = time.perf_counter()
            window = service.run_in_process(
                rt, day, lambda done, total: progress.update(task, completed=done, total=total))
            seconds = time.perf_counter() - t
        report = service.report(rt, day)
        assert window.status == "settled" and window.records == n, window.status
        assert report.summary["records"]["count"] == n  # type: ignore[index]
        assert not report.exceptions, f"{len(report.exceptions)} exceptions"

        raw = raw_baseline(rt)
        raw_total = sum(raw.values())
        console.print(f"clearing: {seconds:.2f} s for {n:,} records "
                      f"({n / seconds:,.0f} records/s); exceptions 0; summary "
                      f"{window.summary_hash}")
        console.print(f"raw baseline: COPY {raw['copy']:.2f} s + GROUP BY {raw['net']:.2f} s + "
                      f"CMAC loop {raw['cmac']:.2f} s = {raw_total:.2f} s")
        print(f"records={n} seconds={seconds:.2f} records_per_s={n / seconds:.0f} "
              f"vs_raw={seconds / raw_total:.2f}")
    finally:
        rt.close()
        if not args.keep:
            drop_database(args.database, url)


if __name__ == "__main__":
    main()
