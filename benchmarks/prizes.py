"""One period's prize check on PostgreSQL: 5,000,000 carrier invoices on 87,398 cards.

Setup (not timed): a fresh database, the county's October 2018 population of cards
(`cardsvc seed`), a carrier per card, N invoices spread over the carriers as one set-based
INSERT (a few voided, donated, business-buyer, after-the-fact and zero-amount ones among
them), the period's draw (with an extra sixth prize) and a cloud list of 2,000 invoices.

Timed: `cardsvc einvoice check` for the period, in-process: every invoice against the draw and
the cloud list, the winnings with withholding and claim window, exclusions by reason, and a
notice queued for each win.

Raw baseline in the same run: one SQL statement joining the same invoices to the same
numbers and writing what it finds into the same tables: every invoice whose last three
digits match a first-prize or extra sixth-prize number, or whose eight digits equal the
special or grand number, becomes a winning row, and each win a notice (a data-modifying
CTE; rolled back). It skips what the check adds: tiers by the longer suffixes, amounts and
withholding, the cloud list, exclusions, the counts, the audit row. The ratio
seconds/baseline is the figure; the goal is ≤ 2. Also shown: the same join read-only,
counting the candidates through the index on (period, suffix) and writing nothing.

Last line: invoices=N seconds=S invoices_per_s=R vs_raw=X vs_join=Y
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
import uuid
from pathlib import Path

from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from sqlalchemy import Connection, TextClause, create_engine, text
from sqlalchemy.engine import make_url

from cardsvc.app import migrate
from cardsvc.app.bootstrap import build_runtime
from cardsvc.app.console import make_console
from cardsvc.app.seed import run_seed
from cardsvc.config import Settings
from cardsvc.context import Actor
from cardsvc.db import unit_of_work
from cardsvc.einvoice import service

PERIOD = 11410
DRAW = {"invoYm": "11410", "superPrizeNo": "12345678", "spcPrizeNo": "87654321",
        "firstPrizeNo1": "00507588", "firstPrizeNo2": "40912336", "firstPrizeNo3": "91286147",
        "sixthPrizeNo1": "765", "superPrizeAmt": "10000000", "spcPrizeAmt": "02000000",
        "firstPrizeAmt": "00200000", "secondPrizeAmt": "00040000",
        "thirdPrizeAmt": "00010000", "fourthPrizeAmt": "00004000",
        "fifthPrizeAmt": "00001000", "sixthPrizeAmt": "00000200"}

# Invoice n: number AB + n in eight digits (unique), on carrier n mod carriers, dated in the
# period; every 997th voided, 1009th with a buyer, 1013th after the fact, 1019th donated,
# 1021st fully allowed back.
INVOICES = text("""
INSERT INTO einvoice_invoices (number, digits, suffix, period, invoice_date, random_code,
    amount, allowances, buyer_tax_id, seller_tax_id, donation_code, after_the_fact, status,
    carrier_id, merchant_id, pos_transaction_id, created_at)
SELECT 'AB' || d, d, right(d, 3), :period, DATE '2025-09-01' + (n % 61),
       lpad((n % 10000)::text, 4, '0'), 20 + n % 480,
       CASE WHEN n % 1021 = 0 THEN 20 + n % 480 ELSE 0 END,
       CASE WHEN n % 1009 = 0 THEN '04595252' ELSE '00000000' END, '10458575',
       CASE WHEN n % 1019 = 0 THEN '8585' END, n % 1013 = 0,
       CASE WHEN n % 997 = 0 THEN 'voided' ELSE 'issued' END,
       c.id, 1, n, now()
FROM (SELECT n, lpad(n::text, 8, '0') AS d FROM generate_series(1, :count) AS n) g
JOIN (SELECT id, row_number() OVER (ORDER BY id) - 1 AS k FROM einvoice_carriers) c
  ON c.k = g.n % :carriers
""")

BASELINE = text("""
WITH won AS (
    INSERT INTO einvoice_winnings (invoice_id, period, cardholder_id, tier, amount,
                                   income_tax, stamp_duty, donated, claim_from, claim_until)
    SELECT DISTINCT ON (i.id) i.id, i.period, c.cardholder_id, p.kind, 200, 0, 0,
           i.donation_code IS NOT NULL, DATE '2025-12-06', DATE '2026-03-05'
    FROM einvoice_invoices i
    JOIN einvoice_prize_numbers p ON p.period = i.period AND p.suffix = i.suffix
         AND (p.kind IN ('first', 'extra_sixth') OR p.number = i.digits)
    JOIN einvoice_carriers c ON c.id = i.carrier_id
    WHERE i.period = :period
    RETURNING invoice_id, cardholder_id, amount, donated)
INSERT INTO notifications (dedup_key, cardholder_id, kind, text, status, attempts, created_at)
SELECT 'raw:' || invoice_id, cardholder_id, 'einvoice.win',
       'invoice ' || invoice_id || ' won NT$' || amount, 'pending', 0, now()
FROM won WHERE NOT donated
""")

JOIN = text("""
SELECT count(*) FROM einvoice_invoices i
JOIN einvoice_prize_numbers p ON p.period = i.period AND p.suffix = i.suffix
WHERE i.period = :period
""")


def timed(conn: Connection, statement: TextClause) -> tuple[int, float]:
    """The statement's second run (both start with a warm cache), rolled back: how many
    rows it counted or wrote, and its seconds."""
    conn.execute(statement, {"period": PERIOD})
    conn.rollback()
    t0 = time.perf_counter()
    result = conn.execute(statement, {"period": PERIOD})
    n = result.scalar_one() if result.returns_rows else result.rowcount
    seconds = time.perf_counter() - t0
    conn.rollback()
    return int(n), seconds


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--url", default=os.environ.get(
        "CARDSVC_BENCH_PG_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/test"))
    ap.add_argument("--invoices", type=int, default=5_000_000)
    ap.add_argument("--cards", type=int, default=87_398)
    ap.add_argument("--keep", action="store_true", help="keep the benchmark database")
    args = ap.parse_args()
    console = make_console()

    name = f"cardsvc_prizes_{uuid.uuid4().hex[:8]}"
    admin = create_engine(args.url, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f'CREATE DATABASE "{name}"'))
    db_url = make_url(args.url).set(database=name).render_as_string(hide_password=False)
    settings = Settings(database_url=db_url,
                        secrets_file=Path(tempfile.mkdtemp()) / "secrets.json", reader="none")
    rt = build_runtime(settings)
    try:
        migrate.upgrade(rt.engine)
        started = time.perf_counter()
        run_seed(rt, args.cards, 7, console)
        with rt.engine.begin() as conn:
            conn.execute(text(
                "INSERT INTO einvoice_carriers (card_id, cardholder_id, carrier_type, "
                "visible_id, hidden_id, created_at) SELECT id, cardholder_id, '2G0001', "
                "card_number, upper(md5(id::text)), now() FROM cards"))
            carriers = conn.execute(text("SELECT count(*) FROM einvoice_carriers")).scalar_one()
            conn.execute(INVOICES, {"period": PERIOD, "count": args.invoices,
                                    "carriers": carriers})
            conn.execute(text("ANALYZE einvoice_invoices"))
        with unit_of_work(rt.sessions) as db:
            ctx = rt.ctx(db, Actor.system("bench"))
            service.import_draw(ctx, DRAW)
            cloud = "\n".join(f"AB{n:08d},{(500, 800, 2000)[n % 3]}"
                              for n in range(1_234, args.invoices, args.invoices // 2000))
            service.import_cloud(ctx, PERIOD, cloud.encode())
        console.print(f"setup: {carriers:,} carriers, {args.invoices:,} invoices in "
                      f"{time.perf_counter() - started:.1f} s (not timed)")

        with rt.engine.connect() as conn:
            notices, raw = timed(conn, BASELINE)
            candidates, join = timed(conn, JOIN)
        console.print(f"raw baseline: one statement joining the invoices to the numbers and "
                      f"writing the wins and {notices:,} notices in {raw:.2f} s; the join "
                      f"alone ({candidates:,} candidates through the index, nothing written) "
                      f"in {join:.2f} s")

        columns = (TextColumn("[bold]{task.description}"), BarColumn(), MofNCompleteColumn(),
                   TimeElapsedColumn())
        t0 = time.perf_counter()
        with Progress(*columns, console=console) as progress, \
                unit_of_work(rt.sessions) as db:
            task = progress.add_task("checking", total=args.invoices)
            out = service.run_check(rt.ctx(db, Actor.system("bench")), PERIOD,
                                    lambda done, total: progress.update(task, completed=done))
        seconds = time.perf_counter() - t0
        console.print(f"check: {out.invoices:,} invoices, {out.winners:,} winners "
                      f"(NT${out.amount:,}), {out.notified:,} notices; exclusions "
                      f"{out.exclusions}")
        print(f"invoices={out.invoices} seconds={seconds:.2f} "
              f"invoices_per_s={out.invoices / seconds:.0f} vs_raw={seconds / raw:.2f} "
              f"vs_join={seconds / join:.2f}")
    finally:
        rt.close()
        if not args.keep:
            with admin.connect() as conn:
                conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


if __name__ == "__main__":
    main()
