"""Reports as tables people read: the council's issuance statistics, a day's clearing, a
period's e-invoice prizes."""

from __future__ import annotations

from rich.console import Console
from rich.table import Table

from cardsvc.config import TOWNSHIPS
from cardsvc.einvoice.schemas import PeriodReport
from cardsvc.stats.service import OUTSIDE, IssuanceReport
from settlement.clearing.service import Report
from settlement.subsidies.schemas import StatementOut


def issuance_table(report: IssuanceReport) -> Table:
    """Cards issued by product and township, the council's table."""

    towns = [t for t in (*TOWNSHIPS, OUTSIDE) if t in report.by_township]
    table = Table(title=f"Cards issued {report.date_from} – {report.date_to}",
                  show_footer=True)
    table.add_column("product", footer="total")
    for t in towns:
        table.add_column(t, justify="right", footer=f"{report.by_township[t]:,}")
    table.add_column("total", justify="right", footer=f"{report.total:,}")
    cells: dict[tuple[str, str], int] = {}
    for r in report.rows:
        cells[(r.product, r.township)] = cells.get((r.product, r.township), 0) + r.cards
    for product, n in report.by_product.items():
        table.add_row(product, *[f"{cells.get((product, t), 0):,}" for t in towns], f"{n:,}")
    table.caption = "by status: " + ", ".join(
        f"{status} {n:,}" for status, n in sorted(report.by_status.items()))
    return table


def print_clearing(r: Report, console: Console) -> None:
    """A window's statements, exceptions and remittances, as tables."""
    w = r.window
    table = Table(title=f"Clearing {w.business_date} ({w.status}, {w.records:,} records, "
                  "NT$)", show_footer=True)
    # Each row adds up: net = gross - refunds - fees - collected + subsidy + b/f (brought
    # forward): "collected" is bill money the merchant took in cash for a biller; "subsidy"
    # what funding programmes owe a transit operator for its concession rides.
    cols = ("sales", "gross", "refunds", "fees", "collected", "subsidy", "b/f", "net",
            "payout")
    table.add_column("merchant", footer="total", overflow="fold")  # names wrap, never cut
    sums = dict.fromkeys(cols, 0)
    rows = []
    for s, name in r.statements:
        values = {"sales": s.sales_count, "gross": s.gross, "refunds": s.refunds,
                  "fees": s.fees, "collected": s.collections, "subsidy": s.subsidies,
                  "b/f": s.brought_forward,
                  "net": s.net, "payout": s.payout}
        for k in cols:
            sums[k] += values[k]
        rows.append((f"{name} (#{s.merchant_id})", values))
    for k in cols:
        table.add_column(k, justify="right", footer=f"{sums[k]:,}")
    for label, values in rows:
        table.add_row(label, *[f"{values[k]:,}" for k in cols])
    by_reason: dict[str, int] = {}
    for x in r.exceptions:
        by_reason[x.reason] = by_reason.get(x.reason, 0) + 1
    reasons = ", ".join(f"{k} {v}" for k, v in sorted(by_reason.items())) or "none"
    table.caption = (f"b/f: brought forward · exceptions: {reasons} · summary sha256 "
                     f"{(w.summary_hash or '')[:16]}…")
    console.print(table)
    if r.remittances:
        billers = Table(title="Remitted to billers (NT$)")
        for col in ("biller", "bills", "amount"):
            billers.add_column(col, justify="left" if col == "biller" else "right")
        for rem, name in r.remittances:
            billers.add_row(f"{name} (biller #{rem.biller_id})", f"{rem.bills:,}",
                            f"{rem.amount:,}")
        console.print(billers)


def prizes_table(out: PeriodReport) -> Table:
    """A period's check: winners and amounts by tier, exclusions by reason."""
    table = Table("tier", "", "winners", "NT$", "donated",
                  title=f"{out.label} ({out.period}): {out.invoices:,} invoices checked")
    for line in out.tiers:
        table.add_row(line.tier, line.tier_name, f"{line.winners:,}", f"{line.amount:,}",
                      f"{line.donated:,}")
    table.add_section()
    table.add_row("total", "", f"{out.winners:,}", f"{out.amount:,}", "")
    if out.exclusions:
        table.caption = "excluded: " + ", ".join(
            f"{k} {v:,}" for k, v in sorted(out.exclusions.items()))
    return table


def subsidy_table(st: StatementOut) -> Table:
    """A month's concession ride subsidies by programme and operator."""
    table = Table(title=f"Concession ride subsidies {st.month} (NT$)", show_footer=True)
    table.add_column("programme", footer="total", overflow="fold")
    table.add_column("budget account")
    table.add_column("operator", overflow="fold")
    cols = ("rides", "riders", "full_fares", "fares_charged", "claimed")
    for c in cols:
        table.add_column(c.replace("_", " "), justify="right",
                         footer=f"{sum(getattr(r, c) for r in st.rows):,}"
                         if c != "riders" else "")
    for r in st.rows:
        table.add_row(r.programme_name, r.budget_account, r.operator,
                      *[f"{getattr(r, c):,}" for c in cols])
    return table
