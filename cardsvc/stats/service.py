"""Cards issued by product, status and township between two business days (Asia/Taipei)."""

from __future__ import annotations

import csv
import datetime as dt
import io
from collections import Counter, defaultdict

from pydantic import BaseModel
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from cardsvc import charts
from cardsvc.audit import service as audit
from cardsvc.cards.models import Card, Product
from cardsvc.config import TOWNSHIPS
from cardsvc.context import TAIPEI, Ctx
from cardsvc.errors import InvalidInput
from cardsvc.holders.models import Cardholder
from cardsvc.stats.counts import fold
from cardsvc.stats.models import IssuanceCount

OUTSIDE = "(outside the county)"


class IssuanceRow(BaseModel):
    product: str
    status: str
    township: str
    cards: int


class IssuanceReport(BaseModel):
    date_from: dt.date
    date_to: dt.date
    rows: list[IssuanceRow]
    by_product: dict[str, int]
    by_township: dict[str, int]
    by_status: dict[str, int]
    total: int


def taipei_day_bounds(first: dt.date, last: dt.date) -> tuple[dt.datetime, dt.datetime]:
    """A report's business days as UTC instants, [start, end)."""
    if last < first:
        raise InvalidInput("date_to is before date_from")
    if first.year < 1900 or last.year > 2999:
        raise InvalidInput("dates must lie between 1900-01-01 and 2999-12-31")
    start = dt.datetime.combine(first, dt.time(0), TAIPEI).astimezone(dt.UTC)
    end = dt.datetime.combine(last + dt.timedelta(days=1), dt.time(0), TAIPEI).astimezone(dt.UTC)
    return start, end


Bucket = tuple[str, str, str]  # product, status, township ('' outside the county)


def live_counts(db: Session, first: dt.date, last: dt.date) -> Counter[Bucket]:
    """Cards issued on these business days, counted from the cards themselves."""
    start, end = taipei_day_bounds(first, last)
    return Counter({(p, st, t or ""): int(n) for p, st, t, n in db.execute(
        select(Card.product, Card.status, Cardholder.township, func.count())
        .join(Cardholder, Cardholder.id == Card.cardholder_id)
        .where(Card.issued_at >= start, Card.issued_at < end)
        .group_by(Card.product, Card.status, Cardholder.township))})


def month_counts(db: Session, first_month: dt.date, end_month: dt.date) -> Counter[Bucket]:
    """Cards issued in the months [first_month, end_month), from the kept monthly counts
    (with the changes not yet folded into them folded first)."""
    fold(db)
    c = IssuanceCount
    return Counter({(p, st, t): int(n) for p, st, t, n in db.execute(
        select(c.product, c.status, c.township, func.sum(c.cards))
        .where(c.month >= first_month, c.month < end_month)
        .group_by(c.product, c.status, c.township)) if n})


def _next_month(day: dt.date) -> dt.date:
    return (day.replace(day=28) + dt.timedelta(days=4)).replace(day=1)


def counts(db: Session, first: dt.date, last: dt.date) -> Counter[Bucket]:
    """The whole months inside the period from the monthly counts, the days at either end
    from the cards: a report over years reads a few thousand rows, not every card."""
    taipei_day_bounds(first, last)  # the same refusals for a bad period
    whole_from = first if first.day == 1 else _next_month(first)
    whole_to = (last + dt.timedelta(days=1)).replace(day=1)  # months before it are whole
    if whole_from >= whole_to:
        return live_counts(db, first, last)
    found = month_counts(db, whole_from, whole_to)
    if first < whole_from:
        found += live_counts(db, first, whole_from - dt.timedelta(days=1))
    if whole_to <= last:
        found += live_counts(db, whole_to, last)
    return found


def issuance(ctx: Ctx, date_from: dt.date, date_to: dt.date) -> IssuanceReport:
    found = counts(ctx.db, date_from, date_to)
    product_order = {p.value: i for i, p in enumerate(Product)}
    town_order = {t: i for i, t in enumerate(TOWNSHIPS)}
    out = sorted(
        (IssuanceRow(product=p, status=st, township=t or OUTSIDE, cards=n)
         for (p, st, t), n in found.items() if n > 0),
        key=lambda r: (product_order.get(r.product, 99), town_order.get(r.township, 99),
                       r.status),
    )
    by_product: dict[str, int] = defaultdict(int)
    by_township: dict[str, int] = defaultdict(int)
    by_status: dict[str, int] = defaultdict(int)
    for r in out:
        by_product[r.product] += r.cards
        by_township[r.township] += r.cards
        by_status[r.status] += r.cards
    audit.record(ctx, "report.issuance", target_type="report",
                 detail={"from": date_from.isoformat(), "to": date_to.isoformat()})
    return IssuanceReport(date_from=date_from, date_to=date_to, rows=out,
                          by_product=dict(by_product), by_township=dict(by_township),
                          by_status=dict(by_status), total=sum(r.cards for r in out))


CSV_FIELDS = ("product", "status", "township", "cards")


def to_csv(report: IssuanceReport) -> str:
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(CSV_FIELDS)
    for r in report.rows:
        w.writerow([r.product, r.status, r.township, r.cards])
    return buf.getvalue()


def to_svg(report: IssuanceReport) -> str:
    """Cards issued by product and by township, as a bar chart."""
    bars: list[tuple[str, int | str]] = [(p, n) for p, n in report.by_product.items()]
    bars += [(t, n) for t, n in report.by_township.items()]
    return charts.bar_chart(f"縣民卡發卡 Cards issued, {report.date_from} – {report.date_to}",
                            bars)
