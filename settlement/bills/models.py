"""The billers' tables: billers, bill imports, bills, payments, remittances and reconciliations."""

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


class PaymentChannel(enum.StrEnum):
    COUNTER = "counter"  # from a purse, at the counter
    ONLINE = "online"  # from a mobile card's purse, with the phone's token
    POS = "pos"  # with the card at a terminal
    STORE_CASH = "store_cash"  # in cash at a store's terminal, netted against its sales


class Biller(Base):
    """A merchant that bills residents (the water plant): its bills carry payment slips."""

    __tablename__ = "billers"

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    merchant_id: Mapped[int] = mapped_column(ForeignKey("merchants.id"), unique=True)
    code: Mapped[str] = mapped_column(String(16), unique=True)
    # The 3-character collection code printed in segment 1 of its slips.
    collection_code: Mapped[str] = mapped_column(String(3))
    grace_days: Mapped[int] = mapped_column(Integer, default=0)
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)


class BillImport(Base):
    __tablename__ = "bill_imports"
    __table_args__ = (UniqueConstraint("biller_id", "content_sha256"),)

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    biller_id: Mapped[int] = mapped_column(ForeignKey("billers.id"))
    content_sha256: Mapped[str] = mapped_column(String(64))
    rows: Mapped[int] = mapped_column(Integer)
    amount: Mapped[int] = mapped_column(BigInteger)
    actor: Mapped[str] = mapped_column(String(64))
    imported_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)


class Bill(Base):
    __tablename__ = "bills"
    __table_args__ = (Index("ix_bills_biller_account", "biller_id", "account_number"),)

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    biller_id: Mapped[int] = mapped_column(ForeignKey("billers.id"))
    import_id: Mapped[int] = mapped_column(ForeignKey("bill_imports.id"))
    account_number: Mapped[str] = mapped_column(String(20))
    bill_number: Mapped[str] = mapped_column(String(16), unique=True)  # slip segment 2
    period: Mapped[str] = mapped_column(String(4))  # ROC YYMM
    amount: Mapped[int] = mapped_column(BigInteger)
    due_date: Mapped[dt.date] = mapped_column(Date)
    payer_name_enc: Mapped[str] = mapped_column(Text)  # personal data: AES-GCM
    payer_name_masked: Mapped[str] = mapped_column(String(40))
    segment1: Mapped[str] = mapped_column(String(9))
    segment3: Mapped[str] = mapped_column(String(15))
    status: Mapped[str] = mapped_column(String(16), default="unpaid")  # unpaid | paid
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)


class BillPayment(Base):
    """The one payment of a bill: the unique bill id makes a second one impossible, even
    when two arrive at the same moment."""

    __tablename__ = "bill_payments"

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    bill_id: Mapped[int] = mapped_column(ForeignKey("bills.id"), unique=True)
    biller_id: Mapped[int] = mapped_column(ForeignKey("billers.id"), index=True)
    channel: Mapped[str] = mapped_column(String(16))  # PaymentChannel
    amount: Mapped[int] = mapped_column(BigInteger)
    card_id: Mapped[int | None] = mapped_column(ForeignKey("cards.id"), nullable=True)
    # The merchant whose terminal took it (POS, convenience-store cash), if any.
    merchant_id: Mapped[int | None] = mapped_column(ForeignKey("merchants.id"), nullable=True)
    transfer_id: Mapped[int] = mapped_column(ForeignKey("transfers.id"))
    paid_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow, index=True)
    # Set when a clearing window takes the payment into its biller's remittance.
    window_id: Mapped[int | None] = mapped_column(ForeignKey("clearing_windows.id"),
                                                  nullable=True, index=True)


class BillerRemittance(Base):
    """What a window pays a biller: its bills paid in the window, by any channel."""

    __tablename__ = "biller_remittances"
    __table_args__ = (UniqueConstraint("window_id", "biller_id"),)

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    window_id: Mapped[int] = mapped_column(ForeignKey("clearing_windows.id"))
    biller_id: Mapped[int] = mapped_column(ForeignKey("billers.id"), index=True)
    bills: Mapped[int] = mapped_column(Integer)
    amount: Mapped[int] = mapped_column(BigInteger)
    csv_sha256: Mapped[str] = mapped_column(String(64))


class BillerReconciliation(Base):
    """The biller's confirmation file read back against a window's remittance."""

    __tablename__ = "biller_reconciliations"
    __table_args__ = (UniqueConstraint("window_id", "biller_id", "content_sha256"),)

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    window_id: Mapped[int] = mapped_column(ForeignKey("clearing_windows.id"))
    biller_id: Mapped[int] = mapped_column(ForeignKey("billers.id"))
    content_sha256: Mapped[str] = mapped_column(String(64))
    matched: Mapped[int] = mapped_column(Integer)
    missing: Mapped[int] = mapped_column(Integer)  # we remitted it; the biller did not confirm
    extra: Mapped[int] = mapped_column(Integer)  # the biller confirmed what we did not remit
    amount_differs: Mapped[int] = mapped_column(Integer)
    reconciled_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)
