"""A clearing run: verify, de-duplicate, check chains, post, net, write files, pay out.

The steps, each one database transaction (so a run killed anywhere resumes cleanly):

1. `verify_partition(window, merchant)`: every offline certificate of one merchant's records
   is checked against the card's load key (the only per-record Python work: CMAC). Forged or
   unverifiable records become `refused`. Partitions run in parallel (a Celery group).
2. `clear(window)` (the chord's finalizer): set-based SQL over the whole window finds
   duplicates and cloned cards, checks every offline record's balance against the card's chain
   of known transactions (its shadow balance), flags and hotlists cards, posts the offline
   sales to the ledger as one transfer, nets per merchant, charges fees and writes the
   statements, the exceptions report and the summary. The window becomes `cleared`.
3. `settle(window)`: the payout file (ISO 20022 pain.001) and the payout transfer; `settled`.

Outcomes are decided from the window's content alone, in a fixed order, so clearing the same
window again (or on a copy of the database) writes byte-identical files.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from sqlalchemy import select, text

from cardsvc.audit import service as audit
from cardsvc.cards import service as cards
from cardsvc.cards.models import Card, LoadStatus
from cardsvc.context import Ctx
from cardsvc.db import sql_list
from cardsvc.keystore.service import KeyStore, debit_certificate
from cardsvc.ledger import codes
from cardsvc.ledger import service as ledger
from cardsvc.ledger.models import AccountKind
from merchants.pos.models import CHIP_DEBIT_KINDS, TAKINGS_KINDS, PosKind, PosStatus
from merchants.registry.models import Merchant
from readers.protocol import KeyPurpose
from settlement.bills.models import Biller, BillerRemittance, PaymentChannel
from settlement.clearing import files
from settlement.clearing.errors import WindowNotReady
from settlement.clearing.models import (
    ClearingException,
    ClearingFile,
    ClearingPartition,
    ClearingRun,
    ClearingWindow,
    MerchantStatement,
    Outcome,
    WindowStatus,
)
from settlement.subsidies import service as subsidies

PAYOUT_CODE = "payout:bank"
# Record kinds that are a merchant's own sales (a bill paid at its terminal is the biller's).
# What this module's SQL names, from the constants' homes (PosKind, PosStatus, Outcome, ...).
SALES = f"({sql_list(*TAKINGS_KINDS, PosKind.OFFLINE_PURCHASE)})"
CHIP_DEBITS = sql_list(*CHIP_DEBIT_KINDS)
DEBITED = sql_list(PosStatus.ACCEPTED, PosStatus.VOIDED)  # the chip paid (a void refunds later)
OFFLINE, REFUND = PosKind.OFFLINE_PURCHASE, PosKind.REFUND
PAID, REFUSED = Outcome.PAID, Outcome.REFUSED
PAID_OR_HELD = sql_list(Outcome.PAID, Outcome.HELD)
REFUSED_OR_HELD = sql_list(Outcome.REFUSED, Outcome.HELD)
DONE_WINDOWS = sql_list(WindowStatus.CLEARED, WindowStatus.SETTLED)
CHUNK = 5_000


def merchant_code(merchant_id: int) -> str:
    return codes.merchant_code(merchant_id)


# --- 1. verification, per merchant ---------------------------------------------------------


class _Verifier:
    """Certificate checks with each card's key diversified once per process."""

    def __init__(self, ctx: Ctx, cards: dict[int, tuple[str, str | None, int | None]]) -> None:
        secrets_ = ctx.keys.secrets
        self.masters = KeyStore(ctx.db, secrets_.kek, secrets_.system_id).masters(
            KeyPurpose.LOAD)
        self.system_id = secrets_.system_id
        self.cards = cards

    def reason(self, row: tuple[Any, ...]) -> str | None:
        _tid, card_id, counter, amount, balance, terminal, seq, when, cert = row
        number, uid, version = self.cards.get(card_id, ("", None, None))
        if uid is None or version is None:
            return "unknown_card"
        master = self.masters.get(version)
        if master is None:
            return "unknown_key_version"
        expected = debit_certificate(master, self.system_id, uid, number, counter, amount,
                                     balance, terminal, seq, when)
        if cert is None or expected.hex() != cert:
            return "bad_certificate"
        return None


# The window holds what clearing needs: no join with the records table on the hot path.
OFFLINE_ROWS = f"""
    SELECT transaction_id, card_id, card_counter, amount, balance_after, terminal_id,
           terminal_seq, card_time, certificate
    FROM clearing_entries
    WHERE window_id = {{window_id}} AND merchant_id = {{merchant_id}}
      AND kind = '{OFFLINE}'
    ORDER BY transaction_id
"""
PARTITION_CARDS = f"""
    SELECT id, card_number, chip_uid, load_key_version FROM cards WHERE id IN (
        SELECT DISTINCT card_id FROM clearing_entries
        WHERE window_id = :window_id AND merchant_id = :merchant_id
          AND kind = '{OFFLINE}')
"""


def verify_partition(ctx: Ctx, window_id: int, merchant_id: int) -> int:
    """Verify one merchant's offline certificates in a window. Idempotent: a partition that
    is done is not done again. Returns the number of refused records."""
    part = ctx.db.scalar(select(ClearingPartition).where(
        ClearingPartition.window_id == window_id, ClearingPartition.merchant_id == merchant_id)
        .with_for_update())
    if part is None:
        raise WindowNotReady(f"window {window_id} has no partition for merchant {merchant_id}")
    if part.status == "done":
        return part.refused
    ids = {"window_id": int(window_id), "merchant_id": int(merchant_id)}
    cards = {int(r[0]): (r[1], r[2], r[3])
             for r in ctx.db.execute(text(PARTITION_CARDS), ids)}
    verifier = _Verifier(ctx, cards)
    refused: list[dict[str, object]] = []
    # The driver's own cursor: plain tuples, no per-row result objects on the hot path.
    result = ctx.db.connection().exec_driver_sql(OFFLINE_ROWS.format(**ids))
    while rows := result.cursor.fetchmany(CHUNK):
        for row in rows:
            reason = verifier.reason(row)
            if reason is not None:
                refused.append({"tid": row[0], "reason": reason})
    if refused:
        ctx.db.execute(text(f"UPDATE clearing_entries SET outcome = '{REFUSED}', reason = :reason "
                            "WHERE transaction_id = :tid"), refused)
    part.status, part.refused, part.done_at = "done", len(refused), ctx.now
    return len(refused)


# --- 2. clearing the window ----------------------------------------------------------------


def _set_outcome(ctx: Ctx, ids: list[int], outcome: Outcome, reason: str) -> None:
    for i in range(0, len(ids), CHUNK):
        ctx.db.execute(update_outcome, [{"tid": t, "outcome": outcome.value, "reason": reason}
                                        for t in ids[i:i + CHUNK]])


update_outcome = text("UPDATE clearing_entries SET outcome = :outcome, reason = :reason "
                      "WHERE transaction_id = :tid")

# Chip transactions already settled before this window: online purchases (accepted, or voided
# afterwards: the chip was debited all the same) and offline records cleared windows paid or
# held (a held clone uploaded again stays held).
SETTLED_BEFORE = f"""
    SELECT t.card_id, t.card_counter, t.certificate, '{PAID}' AS outcome FROM pos_transactions t
    WHERE t.kind IN ({CHIP_DEBITS}) AND t.status IN ({DEBITED})
    UNION ALL
    SELECT e.card_id, e.card_counter, e.certificate, e.outcome FROM clearing_entries e
    JOIN clearing_windows w ON w.id = e.window_id
    WHERE e.kind = '{OFFLINE}' AND e.outcome IN ({PAID_OR_HELD}) AND e.window_id <> :w
      AND w.status IN ({DONE_WINDOWS})
"""

# This window's offline records still to be paid.
CANDIDATES = f"""
    SELECT e.transaction_id, e.card_id, e.card_counter, e.certificate
    FROM clearing_entries e
    WHERE e.window_id = :w AND e.kind = '{OFFLINE}' AND e.outcome = '{PAID}'
"""


def _deduplicate(ctx: Ctx, window_id: int) -> set[int]:
    """Duplicates are ignored; two different records with one counter are a cloned card:
    all of that counter's records in the window are held. Returns the cloned cards."""
    w = {"w": window_id}
    # Against what was settled before: the same certificate is a duplicate, another one a
    # clone (the earlier record was paid; this one is held).
    rows = ctx.db.execute(text(f"""
        SELECT c.transaction_id, c.card_id,
               MAX(CASE WHEN s.certificate = c.certificate THEN 1 ELSE 0 END),
               MAX(CASE WHEN s.certificate = c.certificate AND s.outcome = '{Outcome.HELD}'
                        THEN 1 ELSE 0 END)
        FROM ({CANDIDATES}) c JOIN ({SETTLED_BEFORE}) s
          ON s.card_id = c.card_id AND s.card_counter = c.card_counter
        GROUP BY c.transaction_id, c.card_id"""), w).all()
    dup = [int(r[0]) for r in rows if r[2] and not r[3]]
    dup_of_held = [int(r[0]) for r in rows if r[3]]
    clone_held = [int(r[0]) for r in rows if not r[2]]
    cloned = {int(r[1]) for r in rows if not r[2]}
    _set_outcome(ctx, dup, Outcome.DUPLICATE, "already_paid")
    _set_outcome(ctx, dup_of_held, Outcome.DUPLICATE, "already_held")
    _set_outcome(ctx, clone_held, Outcome.HELD, "cloned_card")
    # Within the window: the counters that occur more than once (a hash aggregate, no sort of
    # the whole window), then their records. Different certificates are a clone (all its
    # records held); the same record uploaded twice is paid once (the first).
    rows = ctx.db.execute(text(f"""
        SELECT c.transaction_id, c.card_id, c.card_counter, c.certificate
        FROM ({CANDIDATES}) c
        JOIN (SELECT card_id, card_counter FROM ({CANDIDATES}) x
              GROUP BY card_id, card_counter HAVING COUNT(*) > 1) g
          ON g.card_id = c.card_id AND g.card_counter = c.card_counter
        ORDER BY c.card_id, c.card_counter, c.transaction_id"""), w).all()
    groups: dict[tuple[int, int], list[tuple[int, str]]] = {}
    for tid, card_id, counter, cert in rows:
        groups.setdefault((int(card_id), int(counter)), []).append((int(tid), cert))
    held, dup = [], []
    for (card_id, _), members in groups.items():
        if len({cert for _, cert in members}) > 1:
            held += [tid for tid, _ in members]
            cloned.add(card_id)
        else:
            dup += [tid for tid, _ in members[1:]]
    _set_outcome(ctx, held, Outcome.HELD, "cloned_card")
    _set_outcome(ctx, dup, Outcome.DUPLICATE, "duplicate_record")
    return cloned


# Every chip transaction the backend knows for the window's cards, in counter order, with the
# previous one's counter and balance: the card's shadow balance chain. Counter 0 balance 0 is
# the personalised chip.
CHAIN = f"""
    WITH cards_in AS (
        SELECT DISTINCT card_id FROM clearing_entries
        WHERE window_id = :w AND kind = '{OFFLINE}' AND outcome = '{PAID}'
    ), ev AS (
        SELECT l.card_id, l.card_counter AS counter, l.card_balance AS balance,
               l.amount AS delta, CAST(NULL AS BIGINT) AS tid
        FROM card_loads l JOIN cards_in ci ON ci.card_id = l.card_id
        WHERE l.status = '{LoadStatus.DELIVERED}' AND l.card_counter IS NOT NULL
        UNION ALL
        SELECT t.card_id, t.card_counter, t.balance_after, -t.amount, NULL
        FROM pos_transactions t JOIN cards_in ci ON ci.card_id = t.card_id
        WHERE t.kind IN ({CHIP_DEBITS}) AND t.status IN ({DEBITED})
        UNION ALL
        SELECT e.card_id, e.card_counter, e.balance_after, -e.amount, e.transaction_id
        FROM clearing_entries e
        WHERE e.window_id = :w AND e.kind = '{OFFLINE}' AND e.outcome = '{PAID}'
        UNION ALL
        SELECT e.card_id, e.card_counter, e.balance_after, -e.amount, NULL
        FROM clearing_entries e JOIN cards_in ci ON ci.card_id = e.card_id
        JOIN clearing_windows cw ON cw.id = e.window_id
        WHERE e.window_id <> :w AND e.kind = '{OFFLINE}' AND e.outcome = '{PAID}'
          AND cw.status IN ({DONE_WINDOWS})
    ), chained AS (
        SELECT card_id, counter, balance, delta, tid,
               LAG(counter) OVER (PARTITION BY card_id ORDER BY counter) AS prev_counter,
               LAG(balance) OVER (PARTITION BY card_id ORDER BY counter) AS prev_balance
        FROM ev
    )
    SELECT tid, card_id, counter, balance, delta,
           COALESCE(prev_counter, 0), COALESCE(prev_balance, 0)
    FROM chained
    WHERE tid IS NOT NULL AND (
        COALESCE(prev_counter, 0) < counter - 1
        OR (COALESCE(prev_counter, 0) = counter - 1
            AND COALESCE(prev_balance, 0) + delta <> balance))
    ORDER BY card_id, counter
"""


@dataclass
class _Finding:
    reason: str
    tid: int
    card_id: int
    counter: int
    detail: str
    paid: bool


def _check_chains(ctx: Ctx, window_id: int) -> list[_Finding]:
    out = []
    for tid, card_id, counter, balance, delta, prev_counter, prev_balance in ctx.db.execute(
            text(CHAIN), {"w": window_id}):
        if prev_counter < counter - 1:
            out.append(_Finding("counter_gap", tid, card_id, counter,
                                f"counters {prev_counter + 1}..{counter - 1} not received",
                                True))
        else:
            out.append(_Finding("balance_mismatch", tid, card_id, counter,
                                f"the card reports NT${balance}; its chain gives "
                                f"NT${prev_balance + delta}", True))
    return out


def _flag(ctx: Ctx, card_ids: set[int], why: str) -> list[int]:
    """Block the cards (which puts them on the hotlist); cards already refused by terminals
    stay as they are."""
    flagged = []
    for card in ctx.db.scalars(select(Card).where(Card.id.in_(card_ids)).order_by(Card.id)
                               .with_for_update()):
        if card.status not in ("active", "suspended"):
            continue  # already refused by terminals (blocked, replaced, closed, expired)
        cards.transition(ctx, card, "block", f"clearing: {why}")
        flagged.append(card.id)
    return flagged


OFFLINE_LEGS = f"""
    SELECT a.id AS account_id, -SUM(e.amount) AS amount
    FROM clearing_entries e JOIN accounts a ON a.card_id = e.card_id
    WHERE e.window_id = :w AND e.kind = '{OFFLINE}' AND e.outcome = '{PAID}'
    GROUP BY a.id
    UNION ALL
    SELECT a.id, m.total FROM (
        SELECT merchant_id, SUM(amount) AS total FROM clearing_entries
        WHERE window_id = :w AND kind = '{OFFLINE}' AND outcome = '{PAID}'
        GROUP BY merchant_id) m
    JOIN accounts a ON a.code = '{codes.MERCHANT}' || m.merchant_id
"""


# Online sales were credited to their terminals' takings when accepted (voided ones too: the
# void debited the merchant's payable). Clearing moves what the window's sales credited there
# to the merchants' payables, from which statements pay out. The ledger's own postings give the
# amounts, so sales booked before takings existed (credited to the payable directly) move
# nothing.
TAKINGS_LEGS = f"""
    WITH swept AS (
        SELECT e.merchant_id, p.account_id, p.amount
        FROM clearing_entries e
        JOIN pos_transactions t ON t.id = e.transaction_id
        JOIN postings p ON p.transfer_id = t.transfer_id
        JOIN accounts a ON a.id = p.account_id AND a.kind = '{AccountKind.TERMINAL_TAKINGS}'
        WHERE e.window_id = :w AND e.kind IN ({sql_list(*TAKINGS_KINDS)}))
    SELECT account_id, -SUM(amount) AS amount FROM swept GROUP BY account_id
    UNION ALL
    SELECT m.id, s.total
    FROM (SELECT merchant_id, SUM(amount) AS total FROM swept GROUP BY merchant_id) s
    JOIN accounts m ON m.code = '{codes.MERCHANT}' || s.merchant_id
"""


def _net(ctx: Ctx, window: ClearingWindow,
         subsidies: dict[int, int]) -> list[MerchantStatement]:
    totals = {int(r[0]): r[1:] for r in ctx.db.execute(text(f"""
        SELECT merchant_id,
               SUM(CASE WHEN kind IN {SALES} AND outcome = '{PAID}' THEN 1 ELSE 0 END),
               COALESCE(SUM(CASE WHEN kind IN {SALES} AND outcome = '{PAID}'
                                 THEN amount ELSE 0 END), 0),
               SUM(CASE WHEN kind = '{REFUND}' AND outcome = '{PAID}' THEN 1 ELSE 0 END),
               COALESCE(SUM(CASE WHEN kind = '{REFUND}' AND outcome = '{PAID}'
                                 THEN amount ELSE 0 END), 0)
        FROM clearing_entries WHERE window_id = :w GROUP BY merchant_id"""),
        {"w": window.id})}
    # A negative net carried from a merchant's latest earlier statement.
    carried = {int(r[0]): int(r[1]) for r in ctx.db.execute(text("""
        SELECT s.merchant_id, s.carried FROM merchant_statements s
        JOIN clearing_windows w ON w.id = s.window_id
        WHERE w.business_date < :d AND w.business_date = (
            SELECT MAX(w2.business_date) FROM merchant_statements s2
            JOIN clearing_windows w2 ON w2.id = s2.window_id
            WHERE s2.merchant_id = s.merchant_id AND w2.business_date < :d)
          AND s.carried <> 0"""), {"d": window.business_date})}
    collections = {int(r[0]): int(r[1]) for r in ctx.db.execute(text(f"""
        SELECT merchant_id, SUM(amount) FROM bill_payments
        WHERE window_id = :w AND channel = '{PaymentChannel.STORE_CASH}' GROUP BY merchant_id"""),
        {"w": window.id})}
    out = []
    for mid in sorted(set(totals) | set(carried) | set(collections) | set(subsidies)):
        merchant = ctx.db.get(Merchant, mid)
        assert merchant is not None  # noqa: S101 - entries reference merchants
        sales_n, gross, refunds_n, refunds = (int(x) for x in totals.get(mid, (0, 0, 0, 0)))
        base = max(gross - refunds, 0)
        fees = (base * merchant.fee_bps + 5_000) // 10_000  # half up, whole dollars
        bf, cash = carried.get(mid, 0), collections.get(mid, 0)
        subsidy = subsidies.get(mid, 0)  # concession rides, paid by their programmes
        net = gross - refunds - fees - cash + bf + subsidy
        out.append(MerchantStatement(
            window_id=window.id, merchant_id=mid, sales_count=sales_n, gross=gross,
            refunds_count=refunds_n, refunds=refunds, fee_bps=merchant.fee_bps, fees=fees,
            brought_forward=bf, collections=cash, subsidies=subsidy, net=net,
            payout=max(net, 0), carried=min(net, 0),
            csv_sha256="", json_sha256=""))
    return out


def _payable_accounts(ctx: Ctx, merchant_ids: set[int]) -> None:
    for mid in sorted(merchant_ids):
        ledger.system_account(ctx, AccountKind.MERCHANT_PAYABLE, merchant_code(mid))


def _to_one_account(debits: list[tuple[str, int]],
                    credit: str) -> tuple[str, dict[str, object]]:
    """Legs moving each (account code, amount) of `debits` to the account `credit`."""
    parts: list[str] = []
    params: dict[str, object] = {"credit_code": credit,
                                 "total": sum(amount for _, amount in debits)}
    for i, (code, amount) in enumerate(debits):
        parts.append(f"SELECT a.id AS account_id, -:a{i} AS amount FROM accounts a "
                     f"WHERE a.code = :c{i}")
        params[f"a{i}"], params[f"c{i}"] = amount, code
    parts.append("SELECT a.id, :total FROM accounts a WHERE a.code = :credit_code")
    return " UNION ALL ".join(parts), params


def _store_file(ctx: Ctx, window_id: int, f: files.File) -> None:
    content = f.content
    if f.personal:
        content = ctx.keys.pii.encrypt("clearing_file", content)
    ctx.db.add(ClearingFile(window_id=window_id, name=f.name, media_type=f.media_type,
                            encrypted=f.personal, content=content, sha256=f.sha256))


def clear(ctx: Ctx, window_id: int) -> bool:
    """Clear a closed window whose partitions are all verified. Returns False when there was
    nothing to do (already cleared). One transaction: all of it or none of it."""
    window = ctx.db.get(ClearingWindow, window_id, with_for_update=True,
                        populate_existing=True)
    if window is None:
        raise WindowNotReady(f"no clearing window {window_id}")
    if window.status in (WindowStatus.CLEARED, WindowStatus.SETTLED):
        return False
    if window.status != WindowStatus.CLOSED:
        raise WindowNotReady(f"the window of {window.business_date} is {window.status}")
    pending = ctx.db.scalar(select(ClearingPartition.merchant_id).where(
        ClearingPartition.window_id == window.id, ClearingPartition.status != "done").limit(1))
    if pending is not None:
        raise WindowNotReady(f"merchant {pending}'s records of {window.business_date} are not "
                             "verified yet")
    earlier = ctx.db.scalar(select(ClearingWindow.business_date).where(
        ClearingWindow.business_date < window.business_date,
        ClearingWindow.status == WindowStatus.CLOSED).limit(1))
    if earlier is not None:
        raise WindowNotReady(f"clear the window of {earlier} first")
    w = {"w": window.id}
    if ctx.db.get_bind().dialect.name == "postgresql":
        # A batch job over a day's records: let its sorts and hashes stay in memory.
        ctx.db.execute(text("SET LOCAL work_mem = '256MB'"))
    cloned = _deduplicate(ctx, window.id)
    findings = _check_chains(ctx, window.id)
    mismatched = {f.card_id for f in findings if f.reason == "balance_mismatch"}
    blocked = _flag(ctx, cloned, "cloned card (two records with one counter)")
    blocked += _flag(ctx, mismatched - cloned, "balance mismatch with the backend")
    # The exceptions report: refused and held records, then the chain findings.
    ctx.db.execute(text(f"""
        INSERT INTO clearing_exceptions
            (window_id, reason, transaction_id, merchant_id, card_id, card_counter, amount,
             paid, detail)
        SELECT window_id, reason, transaction_id, merchant_id, card_id, card_counter, amount,
               false, CASE WHEN kind = '{OFFLINE}' THEN 'offline record'
                           ELSE 'refused online' END
        FROM clearing_entries WHERE window_id = :w AND outcome IN ({REFUSED_OR_HELD})
        ORDER BY transaction_id"""), w)
    for finding in findings:
        ctx.db.add(ClearingException(
            window_id=window.id, reason=finding.reason, transaction_id=finding.tid,
            card_id=finding.card_id, card_counter=finding.counter, amount=0,
            paid=finding.paid, detail=finding.detail))
    # Concession rides: claims on their programmes, or exceptions (settlement.subsidies).
    statements = _net(ctx, window, subsidies.assess(ctx, window))
    _payable_accounts(ctx, {s.merchant_id for s in statements})
    ledger.system_account(ctx, AccountKind.FEE_INCOME, codes.FEE_INCOME)
    ledger.post_aggregated(ctx, "offline_clearing", OFFLINE_LEGS, w,
                           memo=f"offline records of {window.business_date}")
    ledger.post_aggregated(ctx, "takings_sweep", TAKINGS_LEGS, w,
                           memo=f"terminal takings of {window.business_date}")
    fees = [(merchant_code(s.merchant_id), s.fees) for s in statements if s.fees]
    if fees:
        legs, params = _to_one_account(fees, codes.FEE_INCOME)
        ledger.post_aggregated(ctx, "clearing_fees", legs, params,
                               memo=f"fees of {window.business_date}")
    ctx.db.flush()
    remitted = files.remittances(ctx, window)
    for r in remitted:
        ctx.db.add(BillerRemittance(window_id=window.id, biller_id=r.biller_id, bills=r.bills,
                                    amount=r.amount, csv_sha256=r.files[0].sha256))
        for f in r.files:
            _store_file(ctx, window.id, f)
    produced = files.window_files(ctx, window, statements, remitted)
    for s in statements:
        s.csv_sha256 = produced.statement_hashes[s.merchant_id][0]
        s.json_sha256 = produced.statement_hashes[s.merchant_id][1]
        ctx.db.add(s)
    for f in produced.files:
        _store_file(ctx, window.id, f)
    window.status = WindowStatus.CLEARED
    window.cleared_at = ctx.now
    window.summary_hash = produced.summary_sha256
    audit.record(ctx, "clearing.clear", target_type="clearing_window",
                 target_id=window.business_date,
                 detail={"records": window.records, "merchants": len(statements),
                         "gross": sum(s.gross for s in statements),
                         "net": sum(s.net for s in statements),
                         "exceptions": produced.exceptions, "cards_blocked": blocked})
    return True


# --- 3. settling ---------------------------------------------------------------------------


def settle(ctx: Ctx, window_id: int) -> bool:
    """Write the payout file and post the payouts. False when already settled."""
    window = ctx.db.get(ClearingWindow, window_id, with_for_update=True,
                        populate_existing=True)
    if window is None:
        raise WindowNotReady(f"no clearing window {window_id}")
    if window.status == WindowStatus.SETTLED:
        return False
    if window.status != WindowStatus.CLEARED:
        raise WindowNotReady(f"the window of {window.business_date} is {window.status}; "
                             "clear it first")
    statements = list(ctx.db.scalars(select(MerchantStatement).where(
        MerchantStatement.window_id == window.id).order_by(MerchantStatement.merchant_id)))
    billers = [(r.biller_id, int(m), r.amount) for r, m in ctx.db.execute(
        select(BillerRemittance, Biller.merchant_id).join(
            Biller, Biller.id == BillerRemittance.biller_id).where(
            BillerRemittance.window_id == window.id).order_by(BillerRemittance.biller_id))]
    payout = files.payout_file(ctx, window, statements, billers)
    if payout is not None:
        _store_file(ctx, window.id, payout)
        audit.record(ctx, "pii.read", target_type="clearing_window",
                     target_id=window.business_date, purpose="payout file",
                     detail={"bank_accounts": sum(1 for s in statements if s.payout > 0)
                             + sum(1 for b in billers if b[2] > 0)})
    ledger.system_account(ctx, AccountKind.PAYOUT, PAYOUT_CODE)
    payouts = [(merchant_code(s.merchant_id), s.payout) for s in statements if s.payout]
    payouts += [(codes.biller_code(biller_id), amount)
                for biller_id, _, amount in billers if amount]
    if payouts:
        legs, params = _to_one_account(payouts, PAYOUT_CODE)
        ledger.post_aggregated(ctx, "payout", legs, params,
                               memo=f"payouts of {window.business_date}")
    window.status = WindowStatus.SETTLED
    window.settled_at = ctx.now
    run = ctx.db.scalar(select(ClearingRun).where(ClearingRun.window_id == window.id))
    if run is not None:
        run.status, run.finished_at = "finished", ctx.now
    audit.record(ctx, "clearing.settle", target_type="clearing_window",
                 target_id=window.business_date,
                 detail={"payouts": sum(1 for s in statements if s.payout) + len(billers),
                         "amount": sum(s.payout for s in statements)
                         + sum(b[2] for b in billers)})
    return True

