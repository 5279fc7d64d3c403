"""The prize check of a period, set-based in the database.

Every prize needs the invoice's last three digits to equal those of a winning number (the
special, grand and first-prize numbers in full, extra sixth prizes alone), so invoices are
joined to the period's numbers on those three digits through the index on (period, suffix):
only about one invoice in a hundred is read. The candidates get their tier by comparing
longer suffixes, the cloud list is joined on the whole number, and each invoice keeps its one
prize, the largest (regular before cloud at equal amounts). The same tiers as
`rules.regular_tier`, held to the same worked examples by the tests.

The wins are worked out in a scratch table (one statement for the regular prizes, one for the
cloud list), then written as the period's winnings and as notices for the winners. What the
check went through (the period's invoices, and the excluded ones by reason) comes from the
tallies the triggers keep, not from reading every invoice. Rerunning it replaces the period's
winnings with the same rows and tells nobody twice.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass

from sqlalchemy import delete, func, select, text

from cardsvc.context import Ctx
from cardsvc.einvoice import rules
from cardsvc.einvoice.models import (
    InvoiceTally,
    PrizeCheck,
    Winning,
    exclusion_reason,
)
from cardsvc.einvoice.rules import Tier
from cardsvc.folding import FoldedCount
from cardsvc.notify.models import NotificationStatus

TALLIES = FoldedCount(totals="einvoice_tallies", changes="einvoice_tally_changes",
                      keys=("period", "reason"), total="invoices")

ELIGIBLE = f"{exclusion_reason('i')} = ''"

# Tier ranks, highest first; the amounts come from the period's draw.
_RANK = {Tier.SPECIAL: 1, Tier.GRAND: 2, Tier.FIRST: 3, Tier.SECOND: 4, Tier.THIRD: 5,
         Tier.FOURTH: 6, Tier.FIFTH: 7, Tier.SIXTH: 8}
_TIER_OF_RANK = " ".join(f"WHEN {rank} THEN '{tier}'" for tier, rank in _RANK.items())
_AMOUNT_OF_RANK = " ".join(f"WHEN {rank} THEN d.{tier.value}_amount"
                           for tier, rank in _RANK.items())
_INCOME_TAX = "CASE WHEN {a} > 5000 THEN {a} * 20 / 100 ELSE 0 END"
_STAMP_DUTY = "CASE WHEN {a} >= {floor} THEN ({a} * 4 + 500) / 1000 ELSE 0 END"

# The period's wins while the check works them out: dropped before it ends (and with its
# transaction if it fails).
SCRATCH = text("""
CREATE TEMPORARY TABLE einvoice_check_wins (
    invoice_id BIGINT PRIMARY KEY, number VARCHAR(10) NOT NULL,
    cardholder_id BIGINT NOT NULL, donated BOOLEAN NOT NULL, tier VARCHAR(12) NOT NULL,
    amount INTEGER NOT NULL, income_tax INTEGER NOT NULL, stamp_duty INTEGER NOT NULL)
""")
DROP_SCRATCH = text("DROP TABLE einvoice_check_wins")

# The regular prizes: every invoice ending in the last three digits of a winning number,
# with the best rank any of the numbers gives it.
REGULAR = text(f"""
INSERT INTO einvoice_check_wins (invoice_id, number, cardholder_id, donated, tier, amount,
                                 income_tax, stamp_duty)
SELECT w.id, w.number, w.cardholder_id, w.donated, w.tier, w.amount,
       {_INCOME_TAX.format(a="w.amount")}, {_STAMP_DUTY.format(a="w.amount", floor=1000)}
FROM (
    SELECT r.id, r.number, c.cardholder_id, r.donation_code IS NOT NULL AS donated,
           CASE r.rank {_TIER_OF_RANK} END AS tier, CASE r.rank {_AMOUNT_OF_RANK} END AS amount
    FROM (
        SELECT i.id, i.number, i.carrier_id, i.donation_code, MIN(CASE
            WHEN p.kind = 'special' AND i.digits = p.number THEN 1
            WHEN p.kind = 'grand' AND i.digits = p.number THEN 2
            WHEN p.kind = 'first' AND i.digits = p.number THEN 3
            WHEN p.kind = 'first' AND substr(i.digits, 2, 7) = substr(p.number, 2, 7) THEN 4
            WHEN p.kind = 'first' AND substr(i.digits, 3, 6) = substr(p.number, 3, 6) THEN 5
            WHEN p.kind = 'first' AND substr(i.digits, 4, 5) = substr(p.number, 4, 5) THEN 6
            WHEN p.kind = 'first' AND substr(i.digits, 5, 4) = substr(p.number, 5, 4) THEN 7
            WHEN p.kind IN ('first', 'extra_sixth') THEN 8
            END) AS rank
        FROM einvoice_prize_numbers p
        JOIN einvoice_invoices i ON i.period = p.period AND i.suffix = p.suffix
        WHERE p.period = :period AND {ELIGIBLE}
        GROUP BY i.id, i.number, i.carrier_id, i.donation_code
    ) r
    JOIN einvoice_draws d ON d.period = :period
    JOIN einvoice_carriers c ON c.id = r.carrier_id
    WHERE r.rank IS NOT NULL
) w
""")

# Cloud prizes, on the whole number. An invoice wins one prize: a cloud prize replaces a
# regular one only when it is larger.
CLOUD = text(f"""
INSERT INTO einvoice_check_wins (invoice_id, number, cardholder_id, donated, tier, amount,
                                 income_tax, stamp_duty)
SELECT i.id, i.number, c.cardholder_id, i.donation_code IS NOT NULL, '{Tier.CLOUD}', cp.amount,
       {_INCOME_TAX.format(a="cp.amount")}, {_STAMP_DUTY.format(a="cp.amount", floor=500)}
FROM einvoice_cloud_prizes cp
JOIN einvoice_invoices i ON i.period = cp.period AND i.number = cp.number
JOIN einvoice_carriers c ON c.id = i.carrier_id
WHERE cp.period = :period AND {ELIGIBLE}
ON CONFLICT (invoice_id) DO UPDATE SET
    tier = excluded.tier, amount = excluded.amount, income_tax = excluded.income_tax,
    stamp_duty = excluded.stamp_duty
WHERE excluded.amount > einvoice_check_wins.amount
""")

WINNINGS = text("""
INSERT INTO einvoice_winnings (invoice_id, period, cardholder_id, tier, amount, income_tax,
                               stamp_duty, donated, claim_from, claim_until)
SELECT invoice_id, :period, cardholder_id, tier, amount, income_tax, stamp_duty, donated,
       :claim_from, :claim_until
FROM einvoice_check_wins
""")

_TIER_NAME = " ".join(f"WHEN '{t}' THEN '{rules.TIER_NAMES[t]}'" for t in Tier)

# Winners hear of it once: the notice's key is the win, so a check run again (or after a
# corrected draw that leaves the win as it was) writes nothing new. A donated win is the
# charity's, not the resident's to hear of.
NOTICES = text(f"""
INSERT INTO notifications (dedup_key, cardholder_id, kind, text, status, attempts, created_at)
SELECT 'einvoice:' || :period || ':' || w.invoice_id || ':' || w.tier, w.cardholder_id,
       'einvoice.win',
       '縣民卡載具發票 ' || w.number || ' 中' || CASE w.tier {_TIER_NAME} END
       || ' NT$' || w.amount || '（實得 NT$'
       || (w.amount - w.income_tax - w.stamp_duty) || '），請於 ' || :claim_from || ' 至 '
       || :claim_until || ' 領獎。Your card''s invoice ' || w.number || ' won NT$'
       || w.amount || ' (NT$' || (w.amount - w.income_tax - w.stamp_duty)
       || ' after tax); claim it ' || :claim_from || ' to ' || :claim_until || '.',
       '{NotificationStatus.PENDING}', 0, :now
FROM einvoice_check_wins w
WHERE NOT w.donated
ON CONFLICT (dedup_key) DO NOTHING
""")

# The same counts as the tallies, from every invoice of the period: what the triggers must
# agree with (the tests hold them to it).
RECOUNT = text(f"""
SELECT {exclusion_reason('i')} AS reason, COUNT(*) FROM einvoice_invoices i
WHERE i.period = :period GROUP BY 1
""")


@dataclass(frozen=True)
class CheckRun:
    found: PrizeCheck
    notified: int  # notices queued by this run (wins not told before)


def tallies(ctx: Ctx, period: int) -> dict[str, int]:
    """The period's invoices by why they cannot win ('' for those that can), exact: the
    pending changes are folded first."""
    TALLIES.fold(ctx.db)
    return {str(reason): int(n) for reason, n in ctx.db.execute(
        select(InvoiceTally.reason, InvoiceTally.invoices)
        .where(InvoiceTally.period == period, InvoiceTally.invoices != 0))}


def recount(ctx: Ctx, period: int) -> dict[str, int]:
    """The tallies counted again from every invoice of the period."""
    return {str(reason): int(n) for reason, n in
            ctx.db.execute(RECOUNT, {"period": period}).all()}


def run(ctx: Ctx, period: int, progress: Callable[[int, int], None] | None = None
        ) -> CheckRun:
    """Check every invoice of the period against its draw; replace its winnings and queue a
    notice for each win not told before."""
    claim_from, claim_until = rules.claim_window(period)
    params = {"period": period, "claim_from": claim_from, "claim_until": claim_until}
    counts = tallies(ctx, period)
    total = sum(counts.values())

    def done(fraction: float) -> None:
        if progress is not None:
            progress(int(total * fraction), total)

    ctx.db.execute(delete(Winning).where(Winning.period == period))
    ctx.db.execute(SCRATCH)
    ctx.db.execute(REGULAR, params)
    done(0.5)
    ctx.db.execute(CLOUD, params)
    ctx.db.execute(WINNINGS, params)
    done(0.75)
    notified = ctx.db.execute(NOTICES, {
        "period": period, "claim_from": claim_from.isoformat(),
        "claim_until": claim_until.isoformat(), "now": ctx.now})
    ctx.db.execute(DROP_SCRATCH)
    done(1.0)
    winners, amount = ctx.db.execute(
        select(func.count(), func.coalesce(func.sum(Winning.amount), 0))
        .where(Winning.period == period)).one()
    found = ctx.db.get(PrizeCheck, period)
    if found is None:
        found = PrizeCheck(period=period)
        ctx.db.add(found)
    found.checked_at, found.checked_by = ctx.now, ctx.actor.username
    found.invoices, found.winners, found.amount = total, int(winners), int(amount)
    found.exclusions = json.dumps({r: n for r, n in counts.items() if r}, sort_keys=True)
    ctx.db.flush()
    return CheckRun(found, int(getattr(notified, "rowcount", 0) or 0))
