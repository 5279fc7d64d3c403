from __future__ import annotations

import datetime as dt
import enum

from sqlalchemy import BigInteger, ForeignKey, String
from sqlalchemy.orm import Mapped, mapped_column

from cardsvc.db import Base, BigId, UTCDateTime, utcnow


class AccountKind(enum.StrEnum):
    CARD_PURSE = "card_purse"  # what the county owes a cardholder; never negative online
    COUNTER_CASH = "counter_cash"  # cash taken in (negative) or paid out at a counter
    MERCHANT_PAYABLE = "merchant_payable"
    # A terminal's sales since its last clearing window: credited by each sale, swept into the
    # merchant's payable when the window clears. One account per terminal, so a merchant's
    # terminals never wait for each other's sales.
    TERMINAL_TAKINGS = "terminal_takings"
    BILLER_PAYABLE = "biller_payable"
    FEE_INCOME = "fee_income"
    PAYOUT = "payout"  # paid out to merchants' and billers' banks by the payout file
    SUSPENSE = "suspense"  # money whose owner is not yet known (e.g. disputed records)
    # What a funding programme owes for the concession rides it subsidises (negative: owed);
    # its department settles it from the programme's budget account.
    PROGRAMME_RECEIVABLE = "programme_receivable"


class Account(Base):
    """A ledger account. `balance` is the sum of its postings, kept in the same transaction.

    Sign convention: a transfer moves money *from* accounts with negative legs *to* accounts
    with positive legs. A purse balance is what its holder can spend; a counter's cash
    account goes negative by the cash taken into its drawer.
    """

    __tablename__ = "accounts"

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    kind: Mapped[str] = mapped_column(String(24))
    code: Mapped[str] = mapped_column(String(64), unique=True)
    card_id: Mapped[int | None] = mapped_column(ForeignKey("cards.id"), unique=True,
                                                nullable=True)
    balance: Mapped[int] = mapped_column(BigInteger, default=0)
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)


class Transfer(Base):
    __tablename__ = "transfers"

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    kind: Mapped[str] = mapped_column(String(32), index=True)
    card_id: Mapped[int | None] = mapped_column(ForeignKey("cards.id"), nullable=True,
                                                index=True)
    amount: Mapped[int] = mapped_column(BigInteger)  # sum of the positive legs
    idempotency_key: Mapped[str | None] = mapped_column(String(100), nullable=True)
    actor: Mapped[str] = mapped_column(String(64))
    memo: Mapped[str] = mapped_column(String(200), default="")
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow, index=True)


class Posting(Base):
    """One leg of a transfer. Immutable: database triggers refuse UPDATE and DELETE."""

    __tablename__ = "postings"

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    transfer_id: Mapped[int] = mapped_column(ForeignKey("transfers.id"), index=True)
    account_id: Mapped[int] = mapped_column(ForeignKey("accounts.id"), index=True)
    amount: Mapped[int] = mapped_column(BigInteger)
    balance_after: Mapped[int] = mapped_column(BigInteger)
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)


