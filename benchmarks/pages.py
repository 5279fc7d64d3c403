"""The counter's pages with the county's population: server-side render time per page.

A fresh database (SQLite by default; --database-url for PostgreSQL) seeded with N cardholders
and their cards (the county's 87,398 by default, `cardsvc seed`), the app in this process, a
clerk and a supervisor logged in at a desk. Each page is requested R times through the ASGI
app in-process (no network: the figure is the server's render, template and database work);
p50 and p95 per page next to the raw baseline of the same number of GET /health in the same
run. Goal: every page p95 ≤ 100 ms; resident search by name uses the name index (the plan is
printed).

Last line: pages=K worst_p95_ms=X baseline_p95_ms=Y
"""

from __future__ import annotations

import argparse
import re
import statistics
import sys
import tempfile
import time
import warnings
from pathlib import Path

from rich.console import Console
from rich.table import Table
from sqlalchemy import create_engine, text

from cardsvc.app import migrate
from cardsvc.app.bootstrap import bootstrap
from cardsvc.app.http import create_app
from cardsvc.app.seed import run_seed
from cardsvc.config import Settings
from cardsvc.context import Actor
from cardsvc.db import unit_of_work
from cardsvc.staff import service as staff_service

with warnings.catch_warnings():
    warnings.filterwarnings("ignore", message="Using `httpx` with `starlette.testclient`")
    from fastapi.testclient import TestClient

DESK = "KM-BENCH"
PASSWORD = "bench-Passw0rd-2026"  # noqa: S105 - the benchmark's throw-away accounts


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def timed(fn, n: int) -> list[float]:  # type: ignore[no-untyped-def]
    out = []
    for _ in range(n):
        t = time.perf_counter()
        r = fn()
        out.append((time.perf_counter() - t) * 1000)
        if r.status_code >= 400:
            sys.exit(f"{r.request.method} {r.request.url.path}: {r.status_code}")
    return out


def login(client: TestClient, username: str) -> str:
    page = client.get("/counter/login").text
    token = re.search(r'name="csrf" value="([^"]+)"', page).group(1)  # type: ignore[union-attr]
    r = client.post("/counter/login", data={"username": username, "password": PASSWORD,
                                            "desk": DESK, "csrf": token},
                    follow_redirects=False)
    if r.status_code != 303:
        sys.exit(f"login of {username} failed: {r.status_code}")
    return re.search(r'name="csrf" value="([^"]+)"',  # type: ignore[union-attr]
                     client.get("/counter").text).group(1)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--cards", type=int, default=87_398)
    ap.add_argument("--requests", type=int, default=200)
    ap.add_argument("--database-url", default=None)
    args = ap.parse_args()
    console = Console()
    tmp = Path(tempfile.mkdtemp(prefix="cardsvc-pages-"))
    settings = Settings(database_url=args.database_url or f"sqlite:///{tmp / 'bench.db'}",
                        secrets_file=tmp / "secrets.json", reader="sim",
                        sim_cards_dir=tmp / "cards")
    if args.database_url:  # a server database is migrated by its operator; here, by us
        engine = create_engine(args.database_url)
        migrate.upgrade(engine)
        engine.dispose()
    rt = bootstrap(settings).runtime
    run_seed(rt, args.cards, 2017, console)
    with unit_of_work(rt.sessions) as db:
        staff_service.add_desk(db, Actor.system("bench"), DESK, "benchmark desk")
        for name, role in (("bench.clerk", "clerk"), ("bench.sup", "supervisor"),
                           ("bench.audit", "auditor")):
            staff_service.create_staff(db, Actor.system("bench"), name, role, PASSWORD, name)
        # A common surname, and one resident with cards to open.
        surname, holder_id = db.execute(text(
            "SELECT substr(name, 1, 1), cardholder_id FROM cards JOIN cardholders "
            "ON cardholders.id = cards.cardholder_id ORDER BY cards.id LIMIT 1")).one()
    if rt.engine.dialect.name == "sqlite":
        with rt.engine.connect() as conn:
            plan = conn.execute(text(
                "EXPLAIN QUERY PLAN SELECT id FROM cardholders WHERE name >= :a AND name < :b"),
                {"a": surname, "b": chr(ord(surname) + 1)}).all()
        console.print("search plan: " + " | ".join(str(r[-1]) for r in plan))
    else:
        with rt.engine.connect() as conn:
            plan = conn.execute(text(
                "EXPLAIN SELECT id FROM cardholders WHERE name LIKE :p"),
                {"p": surname + "%"}).all()
        console.print("search plan: " + " | ".join(r[0] for r in plan))

    n = args.requests
    rows: list[tuple[str, list[float]]] = []
    with TestClient(create_app(rt)) as clerk, TestClient(create_app(rt)) as sup, \
            TestClient(create_app(rt)) as auditor:
        csrf = login(clerk, "bench.clerk")
        login(sup, "bench.sup")
        login(auditor, "bench.audit")
        baseline = timed(lambda: clerk.get("/health"), n)
        rows.append(("today (drawer, waiting loads)", timed(lambda: clerk.get("/counter"), n)))
        rows.append(("find a resident (form)", timed(lambda: clerk.get("/counter/residents"),
                                                     n)))
        rows.append(("search by surname", timed(lambda: clerk.post(
            "/counter/residents", data={"purpose": "counter service", "query": surname,
                                        "csrf": csrf}), n)))
        rows.append(("a resident's page", timed(lambda: clerk.post(
            f"/counter/residents/{holder_id}", data={"purpose": "counter service",
                                                     "csrf": csrf}), n)))
        rows.append(("register (form)", timed(lambda: clerk.get("/counter/residents/new"),
                                              n)))
        rows.append(("bills (form)", timed(lambda: clerk.get("/counter/bills"), n)))
        rows.append(("drawers (supervisor)", timed(lambda: sup.get("/counter/drawers"), n)))
        rows.append(("statistics, this month", timed(lambda: sup.get("/counter/statistics"),
                                                     max(20, n // 10))))
        rows.append(("statistics, every card since 2017", timed(lambda: sup.get(
            "/counter/statistics?date_from=2017-01-01"), max(20, n // 10))))
        rows.append(("audit trail with its verdict", timed(lambda: auditor.get(
            "/counter/audit"), max(20, n // 10))))
    table = Table(title=f"counter pages, {args.cards:,} cardholders, "
                        f"{rt.engine.dialect.name} ({n} requests each)")
    for col in ("page", "p50 ms", "p95 ms", "vs baseline p95"):
        table.add_column(col, justify="left" if col == "page" else "right")
    b95 = percentile(baseline, 0.95)
    table.add_row("baseline: GET /health", f"{statistics.median(baseline):.2f}", f"{b95:.2f}",
                  "x1.00")
    worst = 0.0
    for name, times in rows:
        p95 = percentile(times, 0.95)
        worst = max(worst, p95)
        table.add_row(name, f"{statistics.median(times):.2f}", f"{p95:.2f}", f"x{p95 / b95:.1f}")
    console.print(table)
    print(f"pages={len(rows)} worst_p95_ms={worst:.2f} baseline_p95_ms={b95:.2f}")


if __name__ == "__main__":
    main()
