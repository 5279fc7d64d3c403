"""The prize check of a period, set-based in the database.

Every prize needs the invoice's last three digits to equal those of a winning number (the
special, grand and first-prize numbers in full, extra sixth prizes alone), so invoices are
joined to the period's numbers on those three digits: a hash join that leaves about one
invoice in a hundred. The candidates get their tier by comparing longer suffixes, the cloud
list is joined on the whole number, and each invoice keeps its one prize, the largest
(regular before cloud at equal amounts). The same tiers as `rules.regular_tier`, held to the
same worked examples by the tests.

One statement per suffix of the period's numbers (so a long check shows its progress), then
the cloud list. Rerunning it replaces the period's winnings with the same rows.
"""

from __future__ import annotations

import json
from collections.abc import Callable

from sqlalchemy import delete, func, select, text

from cardsvc.context import Ctx
from cardsvc.einvoice import rules
from cardsvc.einvoice.models import (
    Invoice,
    InvoiceStatus,
    PrizeCheck,
    PrizeNumber,
    Winning,
    excluded,
)
from cardsvc.einvoice.rules import Exclusion, Tier
from cardsvc.notify.models import NotificationStatus

ELIGIBLE = f"NOT ({excluded('i')})"

# Tier ranks, highest first; the amounts come from the period's draw.
_RANK = {Tier.SPECIAL: 1, Tier.GRAND: 2, Tier.FIRST: 3, Tier.SECOND: 4, Tier.THIRD: 5,
         Tier.FOURTH: 6, Tier.FIFTH: 7, Tier.SIXTH: 8}
_TIER_OF_RANK = " ".join(f"WHEN {rank} THEN '{tier}'" for tier, rank in _RANK.items())
_AMOUNT_OF_RANK = " ".join(f"WHEN {rank} THEN d.{tier.value}_amount"
                           for tier, rank in _RANK.items())
_INCOME_TAX = "CASE WHEN {a} > 5000 THEN {a} * 20 / 100 ELSE 0 END"
_STAMP_DUTY = "CASE WHEN {a} >= {floor} THEN ({a} * 4 + 500) / 1000 ELSE 0 END"

# The regular prizes of the invoices ending in one three-digit suffix (every prize needs
# the last three digits of a winning number: the index on (period, suffix) finds them).
REGULAR = text(f"""
INSERT INTO einvoice_winnings (invoice_id, period, cardholder_id, tier, amount, income_tax,
                               stamp_duty, donated, claim_from, claim_until)
SELECT w.invoice_id, :period, c.cardholder_id, w.tier, w.amount,
       {_INCOME_TAX.format(a="w.amount")}, {_STAMP_DUTY.format(a="w.amount", floor=1000)},
       i.donation_code IS NOT NULL, :claim_from, :claim_until
FROM (
    SELECT r.invoice_id, CASE r.rank {_TIER_OF_RANK} END AS tier,
           CASE r.rank {_AMOUNT_OF_RANK} END AS amount
    FROM (
        SELECT i.id AS invoice_id, MIN(CASE
            WHEN p.kind = 'special' AND i.digits = p.number THEN 1
            WHEN p.kind = 'grand' AND i.digits = p.number THEN 2
            WHEN p.kind = 'first' AND i.digits = p.number THEN 3
            WHEN p.kind = 'first' AND substr(i.digits, 2, 7) = substr(p.number, 2, 7) THEN 4
            WHEN p.kind = 'first' AND substr(i.digits, 3, 6) = substr(p.number, 3, 6) THEN 5
            WHEN p.kind = 'first' AND substr(i.digits, 4, 5) = substr(p.number, 4, 5) THEN 6
            WHEN p.kind = 'first' AND substr(i.digits, 5, 4) = substr(p.number, 5, 4) THEN 7
            WHEN p.kind IN ('first', 'extra_sixth') THEN 8
            END) AS rank
        FROM einvoice_invoices i
        JOIN einvoice_prize_numbers p ON p.period = i.period AND p.suffix = i.suffix
        WHERE i.period = :period AND i.suffix = :suffix AND {ELIGIBLE}
        GROUP BY i.id
    ) r
    JOIN einvoice_draws d ON d.period = :period
    WHERE r.rank IS NOT NULL
) w
JOIN einvoice_invoices i ON i.id = w.invoice_id
JOIN einvoice_carriers c ON c.id = i.carrier_id
""")

# Cloud prizes, on the whole number. An invoice wins one prize: a cloud prize replaces a
# regular one only when it is larger.
CLOUD = text(f"""
INSERT INTO einvoice_winnings (invoice_id, period, cardholder_id, tier, amount, income_tax,
                               stamp_duty, donated, claim_from, claim_until)
SELECT i.id, :period, c.cardholder_id, '{Tier.CLOUD}', cp.amount,
       {_INCOME_TAX.format(a="cp.amount")}, {_STAMP_DUTY.format(a="cp.amount", floor=500)},
       i.donation_code IS NOT NULL, :claim_from, :claim_until
FROM einvoice_cloud_prizes cp
JOIN einvoice_invoices i ON i.period = cp.period AND i.number = cp.number
JOIN einvoice_carriers c ON c.id = i.carrier_id
WHERE cp.period = :period AND {ELIGIBLE}
ON CONFLICT (invoice_id) DO UPDATE SET
    tier = excluded.tier, amount = excluded.amount, income_tax = excluded.income_tax,
    stamp_duty = excluded.stamp_duty
WHERE excluded.amount > einvoice_winnings.amount
""")

EXCLUSIONS = text(f"""
SELECT CASE
         WHEN i.status = '{InvoiceStatus.VOIDED}' THEN '{Exclusion.VOIDED}'
         WHEN i.amount - i.allowances <= 0 THEN '{Exclusion.NOT_POSITIVE}'
         WHEN i.buyer_tax_id <> '{rules.NO_BUYER}' THEN '{Exclusion.BUSINESS_BUYER}'
         WHEN i.after_the_fact THEN '{Exclusion.AFTER_THE_FACT}'
       END AS reason, COUNT(*)
FROM einvoice_invoices i
WHERE i.period = :period AND ({excluded('i')})
GROUP BY 1
""")


_TIER_NAME = " ".join(f"WHEN '{t}' THEN '{rules.TIER_NAMES[t]}'" for t in Tier)

# Winners hear of it once: the notice's key is the win, so a check run again (or after a
# corrected draw that leaves the win as it was) writes nothing new.
NOTICES = text(f"""
INSERT INTO notifications (dedup_key, cardholder_id, kind, text, status, attempts, created_at)
SELECT 'einvoice:' || :period || ':' || w.invoice_id || ':' || w.tier, w.cardholder_id,
       'einvoice.win',
       '縣民卡載具發票 ' || i.number || ' 中' || CASE w.tier {_TIER_NAME} END
       || ' NT$' || w.amount || '（實得 NT$'
       || (w.amount - w.income_tax - w.stamp_duty) || '），請於 ' || :claim_from || ' 至 '
       || :claim_until || ' 領獎。Your card''s invoice ' || i.number || ' won NT$'
       || w.amount || ' (NT$' || (w.amount - w.income_tax - w.stamp_duty)
       || ' after tax); claim it ' || :claim_from || ' to ' || :claim_until || '.',
       '{NotificationStatus.PENDING}', 0, :now
FROM einvoice_winnings w JOIN einvoice_invoices i ON i.id = w.invoice_id
WHERE w.period = :period AND NOT w.donated
ON CONFLICT (dedup_key) DO NOTHING
""")


def notify_winners(ctx: Ctx, period: int) -> int:
    """Queue a notice for each of the period's wins not told before; how many were new."""
    claim_from, claim_until = rules.claim_window(period)
    result = ctx.db.execute(NOTICES, {"period": period, "claim_from": claim_from.isoformat(),
                                      "claim_until": claim_until.isoformat(), "now": ctx.now})
    return int(getattr(result, "rowcount", 0) or 0)


def run(ctx: Ctx, period: int, progress: Callable[[int, int], None] | None = None
        ) -> PrizeCheck:
    """Check every invoice of the period against its draw; replace its winnings."""
    claim_from, claim_until = rules.claim_window(period)
    params = {"period": period, "claim_from": claim_from, "claim_until": claim_until}
    total = int(ctx.db.scalar(select(func.count()).select_from(Invoice)
                              .where(Invoice.period == period)) or 0)
    ctx.db.execute(delete(Winning).where(Winning.period == period))
    suffixes = sorted(set(ctx.db.scalars(select(PrizeNumber.suffix)
                                         .where(PrizeNumber.period == period))))
    for n, suffix in enumerate(suffixes, start=1):
        ctx.db.execute(REGULAR, params | {"suffix": suffix})
        if progress is not None:
            progress(total * n // (len(suffixes) + 1), total)
    ctx.db.execute(CLOUD, params)
    if progress is not None:
        progress(total, total)
    exclusions = {str(reason): int(n) for reason, n in
                  ctx.db.execute(EXCLUSIONS, {"period": period}).all()}
    winners, amount = ctx.db.execute(
        select(func.count(), func.coalesce(func.sum(Winning.amount), 0))
        .where(Winning.period == period)).one()
    found = ctx.db.get(PrizeCheck, period)
    if found is None:
        found = PrizeCheck(period=period)
        ctx.db.add(found)
    found.checked_at, found.checked_by = ctx.now, ctx.actor.username
    found.invoices, found.winners, found.amount = total, int(winners), int(amount)
    found.exclusions = json.dumps(exclusions, sort_keys=True)
    ctx.db.flush()
    return found
