"""Money on a card's purse at the counter: cash top-ups (with the load that carries them to a
chip), county fees paid from an account-held purse, the purse and its movements."""

from __future__ import annotations

from sqlalchemy import select

from cardsvc.cards import schemas as s
from cardsvc.cards.errors import (
    ChipPurse,
)
from cardsvc.cards.models import (
    Card,
)
from cardsvc.cards.service import get, queue_chip_load, usable_for_money
from cardsvc.context import Ctx
from cardsvc.errors import InvalidInput
from cardsvc.ledger import codes
from cardsvc.ledger import service as ledger
from cardsvc.ledger.models import AccountKind, Posting, Transfer
from cardsvc.staff import service as staff_service


def topup(ctx: Ctx, card_id: int, data: s.TopUpRequest) -> s.MoneyResult:
    card = get(ctx, card_id, for_update=True)
    usable_for_money(ctx, card)
    if data.amount > ctx.settings.topup_max_amount:
        raise InvalidInput(f"a single top-up is at most NT${ctx.settings.topup_max_amount}")
    counter = staff_service.desk_for(ctx, data.counter)
    cash = ledger.system_account(ctx, AccountKind.COUNTER_CASH, codes.cash_code(counter))
    purse = ledger.purse_of(ctx, card.id)
    t = ledger.post(ctx, "topup", [ledger.Leg(cash, -data.amount),
                                   ledger.Leg(purse, data.amount)],
                    card_id=card.id, memo=f"cash top-up at {counter}")
    load_id = queue_chip_load(ctx, card, t.id, data.amount)
    return s.MoneyResult(transfer_id=t.id, card_id=card.id, card_number=card.card_number,
                         amount=data.amount, balance=purse.balance, card_load_id=load_id)




def charge(ctx: Ctx, card_id: int, data: s.ChargeRequest) -> s.MoneyResult:
    """A county fee paid from an account-held purse at the counter (online debit). A chip
    purse holds its value on the card: it pays at a terminal, which debits the chip."""
    card = get(ctx, card_id, for_update=True)
    usable_for_money(ctx, card)
    if card.load_key_version is not None:
        raise ChipPurse(f"card {card.card_number} keeps its value on the chip: pay with the "
                        "card at a terminal")
    return debit_purse(ctx, card, data.amount, data.description)


def debit_purse(ctx: Ctx, card: Card, amount: int, memo: str) -> s.MoneyResult:
    purse = ledger.purse_of(ctx, card.id)
    income = ledger.system_account(ctx, AccountKind.FEE_INCOME, codes.FEE_INCOME)
    t = ledger.post(ctx, "charge", [ledger.Leg(purse, -amount), ledger.Leg(income, amount)],
                    card_id=card.id, memo=memo)
    return s.MoneyResult(transfer_id=t.id, card_id=card.id, card_number=card.card_number,
                         amount=amount, balance=purse.balance)


def purse(ctx: Ctx, card_id: int, limit: int = 20) -> s.PurseOut:
    card = get(ctx, card_id)
    acct = ledger.purse_of(ctx, card.id)
    rows = ctx.db.execute(
        select(Posting, Transfer).join(Transfer, Transfer.id == Posting.transfer_id)
        .where(Posting.account_id == acct.id).order_by(Posting.id.desc()).limit(limit)
    ).all()
    return s.PurseOut(
        card_id=card.id, card_number=card.card_number, balance=acct.balance,
        max_balance=ctx.settings.purse_max_balance,
        recent=[s.PostingOut(transfer_id=p.transfer_id, kind=t.kind, amount=p.amount,
                             balance_after=p.balance_after, at=p.created_at, memo=t.memo)
                for p, t in rows])
