"""Subsidy claims, decided when a clearing window clears, and the monthly statements the
funding departments approve.

For each ride the window pays: the card certified its product, concession and full fare; the
backend checks that concession against its own view on the ride's day
(`cardsvc.cards.eligibility.concession_problem`). A valid concession ride that charged less
than the full fare is a claim on the programme funding that concession; an invalid one is an
exception (the operator keeps the fare it took, nobody pays the difference). The claims of a
window are one ledger transfer: each programme's receivable to each operator's payable, so
the payout file pays them with the operator's takings.
"""

from __future__ import annotations

import calendar
import csv
import datetime as dt
import io

from sqlalchemy import func, select

from cardsvc import charts
from cardsvc.cards import eligibility
from cardsvc.cards.models import Card
from cardsvc.context import Ctx
from cardsvc.errors import InvalidInput
from cardsvc.ledger import codes
from cardsvc.ledger import service as ledger
from cardsvc.ledger.models import AccountKind
from cardsvc.spreadsheet import cell
from merchants.registry.models import Merchant
from merchants.transit.models import Ride
from settlement.clearing.models import ClearingEntry, ClearingException, ClearingWindow, Outcome
from settlement.subsidies import rules
from settlement.subsidies import schemas as s
from settlement.subsidies.models import SubsidyClaim


def assess(ctx: Ctx, window: ClearingWindow) -> dict[int, int]:
    """Claims, concession exceptions and misuse signals of the window's paid rides; the
    claims posted to the ledger. Returns each operator's claimed total."""
    rides = ctx.db.execute(
        select(Ride.transaction_id, Ride.card_id, Ride.terminal_id, Ride.merchant_id,
               Ride.product, Ride.concession, Ride.full_fare, Ride.fare, Ride.ride_date,
               ClearingEntry.card_time)
        .join(ClearingEntry, ClearingEntry.transaction_id == Ride.transaction_id)
        .where(ClearingEntry.window_id == window.id, ClearingEntry.outcome == Outcome.PAID)
        .order_by(Ride.transaction_id)).all()
    if not rides:
        return {}
    programmes = ctx.settings.subsidy_programmes
    cards = {c.id: c for c in ctx.db.scalars(select(Card).where(
        Card.id.in_({int(r.card_id) for r in rides})))}
    claims: list[SubsidyClaim] = []
    for r in rides:
        discount = int(r.full_fare) - int(r.fare)
        if discount <= 0:
            continue  # paid the full fare: nothing to claim, whatever the card carries
        problem = eligibility.concession_problem(ctx, cards[r.card_id], r.product,
                                                 r.concession, r.ride_date)
        programme = rules.programme_for(programmes, r.concession)
        if problem is None and programme is None:
            problem = "no_programme"
        if problem is not None:
            ctx.db.add(ClearingException(
                window_id=window.id, reason=problem, transaction_id=r.transaction_id,
                merchant_id=r.merchant_id, card_id=r.card_id, amount=discount, paid=True,
                detail=f"{r.concession} ride on {r.ride_date}: no subsidy"))
            continue
        assert programme is not None  # noqa: S101 - narrowed above
        claims.append(SubsidyClaim(
            window_id=window.id, transaction_id=r.transaction_id, merchant_id=r.merchant_id,
            programme=programme, card_id=r.card_id, concession=r.concession,
            ride_date=r.ride_date, full_fare=r.full_fare, fare=r.fare, claim=discount))
    facts = [rules.RideFact(int(r.transaction_id), int(r.card_id), int(r.terminal_id),
                            int(r.card_time), r.concession) for r in rides]
    signals = (rules.repeated_rides(facts, ctx.settings.ride_min_interval_seconds)
               + rules.lone_companions(facts, ctx.settings.companion_tolerance_seconds))
    merchant_of = {int(r.transaction_id): int(r.merchant_id) for r in rides}
    fare_of = {int(r.transaction_id): int(r.fare) for r in rides}
    for sig in signals:
        ctx.db.add(ClearingException(
            window_id=window.id, reason=sig.reason, transaction_id=sig.transaction_id,
            merchant_id=merchant_of[sig.transaction_id], card_id=sig.card_id,
            amount=fare_of[sig.transaction_id], paid=True, detail=sig.detail))
    ctx.db.add_all(claims)
    by_programme: dict[str, int] = {}
    by_merchant: dict[int, int] = {}
    for c in claims:
        by_programme[c.programme] = by_programme.get(c.programme, 0) + c.claim
        by_merchant[c.merchant_id] = by_merchant.get(c.merchant_id, 0) + c.claim
    if claims:
        legs = [ledger.Leg(ledger.system_account(ctx, AccountKind.PROGRAMME_RECEIVABLE,
                                                 codes.programme_code(p)), -amount)
                for p, amount in sorted(by_programme.items())]
        legs += [ledger.Leg(ledger.system_account(ctx, AccountKind.MERCHANT_PAYABLE,
                                                  codes.merchant_code(m)), amount)
                 for m, amount in sorted(by_merchant.items())]
        ledger.post(ctx, "subsidy_claims", legs,
                    memo=f"concession ride subsidies of {window.business_date}")
    ctx.db.flush()
    return by_merchant


# --- the monthly statement -----------------------------------------------------------------


def month_bounds(month: str) -> tuple[dt.date, dt.date]:
    try:
        year, mon = (int(x) for x in month.split("-"))
        first = dt.date(year, mon, 1)
    except ValueError:
        raise InvalidInput(f"month {month!r}: give it as YYYY-MM", field="month") from None
    return first, first.replace(day=calendar.monthrange(year, mon)[1])


def statement(ctx: Ctx, month: str, programme: str | None = None) -> s.StatementOut:
    first, last = month_bounds(month)
    programmes = ctx.settings.subsidy_programmes
    if programme is not None and programme not in programmes:
        raise InvalidInput(f"no programme {programme!r}; the programmes are "
                           f"{', '.join(sorted(programmes))}", field="programme")
    q = (select(SubsidyClaim.programme, SubsidyClaim.merchant_id, Merchant.legal_name,
                func.count(), func.count(func.distinct(SubsidyClaim.card_id)),
                func.sum(SubsidyClaim.full_fare), func.sum(SubsidyClaim.fare),
                func.sum(SubsidyClaim.claim))
         .join(Merchant, Merchant.id == SubsidyClaim.merchant_id)
         .where(SubsidyClaim.ride_date >= first, SubsidyClaim.ride_date <= last)
         .group_by(SubsidyClaim.programme, SubsidyClaim.merchant_id, Merchant.legal_name)
         .order_by(SubsidyClaim.programme, SubsidyClaim.merchant_id))
    if programme is not None:
        q = q.where(SubsidyClaim.programme == programme)
    rows = []
    for code, mid, name, n, riders, full, fare, claim in ctx.db.execute(q):
        p = programmes.get(code)
        rows.append(s.StatementRowOut(
            programme=code, programme_name=p.name if p else code,
            budget_account=p.budget_account if p else "", operator_id=int(mid),
            operator=name, rides=int(n), riders=int(riders), full_fares=int(full),
            fares_charged=int(fare), claimed=int(claim)))
    return s.StatementOut(month=month, rows=rows, claimed=sum(r.claimed for r in rows))


CSV_FIELDS = ("programme", "programme_name", "budget_account", "operator_id", "operator",
              "rides", "riders", "full_fares", "fares_charged", "claimed")


def to_csv(st: s.StatementOut) -> str:
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(CSV_FIELDS)
    for r in st.rows:
        w.writerow([r.programme, cell(r.programme_name), r.budget_account, r.operator_id,
                    cell(r.operator), r.rides, r.riders, r.full_fares, r.fares_charged,
                    r.claimed])
    return buf.getvalue()


def to_svg(st: s.StatementOut) -> str:
    """Claimed amounts by programme and operator, as a bar chart."""
    return charts.bar_chart(
        f"乘車補助 Concession ride subsidies claimed, {st.month} (NT$)",
        [(f"{r.programme} · {r.operator}", r.claimed) for r in st.rows])
