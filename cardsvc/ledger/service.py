"""Double-entry postings: the only way money moves.

Rules kept here, in one place:
- a transfer's legs are whole NT dollars and sum to zero;
- accounts are locked in primary-key order, so two transfers never deadlock;
- no purse goes below zero and none above the configured maximum through an online operation;
- each transfer is one audit row.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import bindparam, case, func, select, text
from sqlalchemy.exc import IntegrityError

from cardsvc.audit import service as audit
from cardsvc.context import TAIPEI, Ctx
from cardsvc.db import UTCDateTime
from cardsvc.errors import NotFound
from cardsvc.ledger import codes
from cardsvc.ledger.codes import purse_code
from cardsvc.ledger.errors import InsufficientFunds, PurseLimitExceeded
from cardsvc.ledger.models import Account, AccountKind, Posting, Transfer


def open_purse(ctx: Ctx, card_id: int) -> Account:
    acct = Account(kind=AccountKind.CARD_PURSE, code=purse_code(card_id), card_id=card_id,
                   balance=0, created_at=ctx.now)
    ctx.db.add(acct)
    ctx.db.flush()
    return acct


def purse_of(ctx: Ctx, card_id: int) -> Account:
    acct = ctx.db.scalar(select(Account).where(Account.card_id == card_id))
    if acct is None:
        raise NotFound(f"card {card_id} has no purse")
    return acct


def system_account(ctx: Ctx, kind: AccountKind, code: str) -> Account:
    """Get or create a shared account (counter cash, fee income, ...), race-free."""
    acct = ctx.db.scalar(select(Account).where(Account.code == code))
    if acct is not None:
        return acct
    try:
        with ctx.db.begin_nested():
            acct = Account(kind=kind, code=code, balance=0, created_at=ctx.now)
            ctx.db.add(acct)
            ctx.db.flush()
        return acct
    except IntegrityError:
        winner = ctx.db.scalar(select(Account).where(Account.code == code))
        if winner is None:  # pragma: no cover - the winner vanished: a real integrity error
            raise
        return winner


@dataclass(frozen=True)
class Leg:
    account: Account
    amount: int


def post(ctx: Ctx, kind: str, legs: Sequence[Leg], *, card_id: int | None = None,
         memo: str = "", idempotency_key: str | None = None) -> Transfer:
    """Write one balanced transfer. Raises before writing anything if a rule would break."""
    if len(legs) < 2:
        raise ValueError("a transfer needs at least two legs")
    for leg in legs:
        if type(leg.amount) is not int or leg.amount == 0:
            raise ValueError("legs are non-zero whole NT dollars")
    if sum(leg.amount for leg in legs) != 0:
        raise ValueError("a transfer's legs must sum to zero")
    ids = sorted({leg.account.id for leg in legs})
    locked = {
        a.id: a
        for a in ctx.db.scalars(
            select(Account).where(Account.id.in_(ids)).order_by(Account.id)
            .with_for_update().execution_options(populate_existing=True)
        )
    }
    new_balance: dict[int, int] = {i: locked[i].balance for i in ids}
    for leg in legs:
        new_balance[leg.account.id] += leg.amount
    for i in ids:
        acct = locked[i]
        if acct.kind == AccountKind.CARD_PURSE:
            if new_balance[i] < 0:
                needed = acct.balance - new_balance[i]
                raise InsufficientFunds(
                    f"purse balance is NT${acct.balance}; this needs NT${needed}",
                    balance=acct.balance)
            if new_balance[i] > ctx.settings.purse_max_balance and new_balance[i] > acct.balance:
                raise PurseLimitExceeded(
                    f"a purse holds at most NT${ctx.settings.purse_max_balance}; balance is "
                    f"NT${acct.balance}", balance=acct.balance,
                    max_balance=ctx.settings.purse_max_balance)
    amount = sum(leg.amount for leg in legs if leg.amount > 0)
    transfer = Transfer(kind=kind, card_id=card_id, amount=amount,
                        idempotency_key=idempotency_key, actor=ctx.actor.username, memo=memo,
                        created_at=ctx.now)
    ctx.db.add(transfer)
    ctx.db.flush()
    running = {i: locked[i].balance for i in ids}
    for leg in legs:
        running[leg.account.id] += leg.amount
        ctx.db.add(Posting(transfer_id=transfer.id, account_id=leg.account.id,
                           amount=leg.amount, balance_after=running[leg.account.id],
                           created_at=ctx.now))
    for i in ids:
        locked[i].balance = new_balance[i]
    ctx.db.flush()
    audit.record(ctx, f"money.{kind}", target_type="transfer", target_id=transfer.id,
                 detail={"amount": amount, "card_id": card_id,
                         "legs": [[leg.account.code, leg.amount] for leg in legs]})
    return transfer


def post_aggregated(ctx: Ctx, kind: str, legs_sql: str, params: dict[str, Any], *,
                    memo: str = "") -> Transfer | None:
    """Write one balanced transfer whose legs come from a query, set-based: for batch work
    (clearing) whose legs number in the thousands. `legs_sql` selects `account_id, amount`
    with at most one row per account. Returns None when the query yields no legs.

    Unlike `post`, purses may end below zero: the legs are facts the chips already recorded
    offline (clearing flags the card when a chip spent money the backend did not know of).
    """
    db = ctx.db
    # The legs are computed once, into a temporary table the statements below share.
    db.execute(text("CREATE TEMPORARY TABLE IF NOT EXISTS ledger_legs "
                    "(account_id BIGINT PRIMARY KEY, amount BIGINT NOT NULL)"))
    db.execute(text("DELETE FROM ledger_legs"))
    db.execute(text(f"INSERT INTO ledger_legs (account_id, amount) SELECT account_id, amount "
                    f"FROM ({legs_sql}) l WHERE amount <> 0"), params)
    legs = "SELECT account_id, amount FROM ledger_legs"
    if db.get_bind().dialect.name == "postgresql":
        db.execute(text("ANALYZE ledger_legs"))
        # The same lock order as `post`: ascending account id.
        db.execute(text(f"SELECT id FROM accounts WHERE id IN (SELECT account_id FROM ({legs}) l)"
                        " ORDER BY id FOR UPDATE"))
    totals = db.execute(text(f"SELECT COUNT(*), COALESCE(SUM(amount), 0), COALESCE(SUM("
                             f"CASE WHEN amount > 0 THEN amount ELSE 0 END), 0) FROM ({legs}) l"
                             )).one()
    count, total, positive = int(totals[0]), int(totals[1]), int(totals[2])
    if count == 0:
        return None
    if count < 2 or total != 0:
        raise ValueError(f"a {kind} transfer's legs must be two or more and sum to zero "
                         f"(got {count} legs summing to {total})")
    transfer = Transfer(kind=kind, card_id=None, amount=positive, idempotency_key=None,
                        actor=ctx.actor.username, memo=memo, created_at=ctx.now)
    db.add(transfer)
    db.flush()
    db.execute(text(
        "INSERT INTO postings (transfer_id, account_id, amount, balance_after, created_at) "
        f"SELECT :transfer_id, a.id, l.amount, a.balance + l.amount, :now FROM ({legs}) l "
        "JOIN accounts a ON a.id = l.account_id").bindparams(bindparam("now", type_=UTCDateTime)),
        {"transfer_id": transfer.id, "now": ctx.now})
    db.execute(text("UPDATE accounts SET balance = p.balance_after FROM postings p "
                    "WHERE p.transfer_id = :transfer_id AND p.account_id = accounts.id"),
               {"transfer_id": transfer.id})
    db.expire_all()  # account balances changed behind the identity map
    audit.record(ctx, f"money.{kind}", target_type="transfer", target_id=transfer.id,
                 detail={"amount": positive, "legs": count, "memo": memo})
    return transfer




@dataclass(frozen=True)
class Drawer:
    counter: str
    cash_in: int  # top-ups and fees taken in cash
    cash_out: int  # refunds and closings paid out
    moves: int

    @property
    def expected(self) -> int:
        """What the drawer should hold beyond its float."""
        return self.cash_in - self.cash_out


def cash_drawer(ctx: Ctx, counter: str, day: dt.date) -> Drawer:
    """A counter's cash of one business day (Asia/Taipei): its cash account's postings (cash
    taken in is a negative leg there, cash paid out a positive one)."""
    start = dt.datetime.combine(day, dt.time(), TAIPEI).astimezone(dt.UTC)
    end = start + dt.timedelta(days=1)
    cash_in, cash_out, moves = ctx.db.execute(
        select(func.coalesce(func.sum(case((Posting.amount < 0, -Posting.amount), else_=0)), 0),
               func.coalesce(func.sum(case((Posting.amount > 0, Posting.amount), else_=0)), 0),
               func.count(Posting.id))
        .join(Account, Account.id == Posting.account_id)
        .where(Account.code == codes.cash_code(counter), Posting.created_at >= start,
               Posting.created_at < end)).one()
    return Drawer(counter, int(cash_in), int(cash_out), int(moves))
