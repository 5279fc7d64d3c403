"""Clearing windows, their runs, the records each window holds, and what clearing wrote.

A window is one business day (Asia/Taipei). Closing it takes in every POS record received
before its boundary that no earlier window holds (`clearing_entries`, one row per record, the
transaction id unique across all windows), so a record that arrives after a close belongs to
the next window. After the close nothing is added to a window; clearing only decides each
entry's outcome and writes the window's files.
"""

from __future__ import annotations

import datetime as dt
import enum

from sqlalchemy import (
    BigInteger,
    Date,
    ForeignKey,
    Index,
    Integer,
    String,
    Text,
    UniqueConstraint,
)
from sqlalchemy.orm import Mapped, mapped_column

from cardsvc.db import Base, BigId, UTCDateTime, utcnow


class WindowStatus(enum.StrEnum):
    OPEN = "open"
    CLOSED = "closed"  # its records are fixed; clearing has not finished
    CLEARED = "cleared"  # outcomes decided, ledger posted, statements written
    SETTLED = "settled"  # payout file written and the payout posted


class Outcome(enum.StrEnum):
    PAID = "paid"  # counts towards the merchant's statement
    DUPLICATE = "duplicate"  # the same certificate was paid already: ignored
    REFUSED = "refused"  # forged, unverifiable or refused online: never paid
    HELD = "held"  # a cloned card's records: not paid, held for investigation
    VOIDED = "voided"  # a purchase voided before the close


class ClearingWindow(Base):
    __tablename__ = "clearing_windows"

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    business_date: Mapped[dt.date] = mapped_column(Date, unique=True)
    status: Mapped[str] = mapped_column(String(16), default=WindowStatus.OPEN)
    cutoff_at: Mapped[dt.datetime] = mapped_column(UTCDateTime)
    # Records received before `boundary_at` belong to this window (unless an earlier window
    # took them). It is the cut-off, or the moment of an early close.
    boundary_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime, nullable=True)
    closed_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime, nullable=True)
    cleared_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime, nullable=True)
    settled_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime, nullable=True)
    records: Mapped[int] = mapped_column(Integer, default=0)
    summary_hash: Mapped[str | None] = mapped_column(String(64), nullable=True)


class ClearingRun(Base):
    """One clearing run per window: the unique window id stops a second concurrent run."""

    __tablename__ = "clearing_runs"

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    window_id: Mapped[int] = mapped_column(ForeignKey("clearing_windows.id"), unique=True)
    status: Mapped[str] = mapped_column(String(16), default="running")  # running | finished
    started_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)
    dispatched_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)
    finished_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime, nullable=True)
    dispatches: Mapped[int] = mapped_column(Integer, default=1)


class ClearingPartition(Base):
    """One merchant's share of a window's verification work: a task, done once."""

    __tablename__ = "clearing_partitions"
    __table_args__ = (UniqueConstraint("window_id", "merchant_id"),)

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    window_id: Mapped[int] = mapped_column(ForeignKey("clearing_windows.id"))
    merchant_id: Mapped[int] = mapped_column(ForeignKey("merchants.id"))
    status: Mapped[str] = mapped_column(String(16), default="pending")  # pending | done
    records: Mapped[int] = mapped_column(Integer, default=0)
    refused: Mapped[int] = mapped_column(Integer, default=0)
    done_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime, nullable=True)


class ClearingEntry(Base):
    """A POS record as a window holds it. The columns clearing needs are copied from the
    record at the close, so the window's content stays as it was closed.

    The busiest table of clearing (a row per record per day): only the close writes it, from
    the records themselves, so it carries no foreign keys to check row by row.
    """

    __tablename__ = "clearing_entries"
    __table_args__ = (
        Index("ix_clearing_entries_window_merchant", "window_id", "merchant_id"),
        # Finds a counter's earlier records (duplicates and clones across windows).
        Index("ix_clearing_entries_card_counter", "card_id", "card_counter"),
    )

    transaction_id: Mapped[int] = mapped_column(BigInteger, primary_key=True,
                                                autoincrement=False)
    window_id: Mapped[int] = mapped_column(BigInteger)
    merchant_id: Mapped[int] = mapped_column(BigInteger)
    kind: Mapped[str] = mapped_column(String(16))
    card_id: Mapped[int | None] = mapped_column(BigInteger, nullable=True)
    card_counter: Mapped[int | None] = mapped_column(Integer, nullable=True)
    amount: Mapped[int] = mapped_column(BigInteger)
    # What the card certified (chip debits), copied so that clearing reads this table alone.
    balance_after: Mapped[int | None] = mapped_column(BigInteger, nullable=True)
    terminal_id: Mapped[int] = mapped_column(BigInteger)
    terminal_seq: Mapped[int | None] = mapped_column(BigInteger, nullable=True)
    card_time: Mapped[int | None] = mapped_column(BigInteger, nullable=True)
    certificate: Mapped[str | None] = mapped_column(String(16), nullable=True)
    # Decided at the close for online records; offline ones are `paid` until clearing has
    # verified them.
    outcome: Mapped[str | None] = mapped_column(String(16), nullable=True)
    reason: Mapped[str | None] = mapped_column(String(40), nullable=True)


class ClearingException(Base):
    """The exceptions report: what went wrong, with a reason. Some rows were still paid
    (a balance mismatch is a fact about the card, not the merchant); `paid` says which."""

    __tablename__ = "clearing_exceptions"
    __table_args__ = (Index("ix_clearing_exceptions_window", "window_id"),)

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    window_id: Mapped[int] = mapped_column(ForeignKey("clearing_windows.id"))
    reason: Mapped[str] = mapped_column(String(40))
    transaction_id: Mapped[int | None] = mapped_column(BigInteger, nullable=True)
    merchant_id: Mapped[int | None] = mapped_column(BigInteger, nullable=True)
    card_id: Mapped[int | None] = mapped_column(BigInteger, nullable=True)
    card_counter: Mapped[int | None] = mapped_column(Integer, nullable=True)
    amount: Mapped[int] = mapped_column(BigInteger, default=0)
    paid: Mapped[bool] = mapped_column(default=False)
    detail: Mapped[str] = mapped_column(String(200), default="")


class MerchantStatement(Base):
    __tablename__ = "merchant_statements"
    __table_args__ = (UniqueConstraint("window_id", "merchant_id"),)

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    window_id: Mapped[int] = mapped_column(ForeignKey("clearing_windows.id"))
    merchant_id: Mapped[int] = mapped_column(ForeignKey("merchants.id"), index=True)
    sales_count: Mapped[int] = mapped_column(Integer)
    gross: Mapped[int] = mapped_column(BigInteger)
    refunds_count: Mapped[int] = mapped_column(Integer)
    refunds: Mapped[int] = mapped_column(BigInteger)
    fee_bps: Mapped[int] = mapped_column(Integer)
    fees: Mapped[int] = mapped_column(BigInteger)
    brought_forward: Mapped[int] = mapped_column(BigInteger)  # a negative balance carried in
    # Cash the merchant (a convenience store) took against bill slips: owed to the billers.
    collections: Mapped[int] = mapped_column(BigInteger, default=0)
    # What funding programmes owe the operator for its concession rides (settlement.subsidies).
    subsidies: Mapped[int] = mapped_column(BigInteger, default=0, server_default="0")
    net: Mapped[int] = mapped_column(BigInteger)
    payout: Mapped[int] = mapped_column(BigInteger)
    carried: Mapped[int] = mapped_column(BigInteger)  # negative net carried to the next window
    csv_sha256: Mapped[str] = mapped_column(String(64))
    json_sha256: Mapped[str] = mapped_column(String(64))


class ClearingFile(Base):
    """Every file a window produced, kept byte for byte: statements, summary, exceptions,
    payout. Clearing a window again regenerates them identically (tests compare)."""

    __tablename__ = "clearing_files"
    __table_args__ = (UniqueConstraint("window_id", "name"),)

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    window_id: Mapped[int] = mapped_column(ForeignKey("clearing_windows.id"))
    name: Mapped[str] = mapped_column(String(120))
    media_type: Mapped[str] = mapped_column(String(40))
    # The payout file names bank accounts: it is kept encrypted like other personal data.
    encrypted: Mapped[bool] = mapped_column(default=False)
    content: Mapped[str] = mapped_column(Text)
    sha256: Mapped[str] = mapped_column(String(64))  # of the plain content


# --- billers: water bills and other government fees ------------------------------------------












