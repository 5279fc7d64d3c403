"""The POS domain's tables: transactions as terminals send them, nonces of signed requests,
spent QR tokens, offline batches."""

from __future__ import annotations

import datetime as dt
import enum

from sqlalchemy import BigInteger, ForeignKey, Index, Integer, String, UniqueConstraint
from sqlalchemy import text as text_clause
from sqlalchemy.orm import Mapped, mapped_column

from cardsvc.db import Base, BigId, UTCDateTime, sql_list, utcnow


class PosKind(enum.StrEnum):
    PURCHASE = "purchase"  # card-present, online: the chip's certificate with it
    QR_PURCHASE = "qr_purchase"  # paid from a mobile card's purse with the phone's token
    BILL_PAYMENT = "bill_payment"  # a bill paid with the card at a terminal
    REFUND = "refund"
    OFFLINE_PURCHASE = "offline_purchase"  # card-present, in a terminal's offline batch
    RIDE = "ride"  # a fare debit on a transit operator's vehicle (merchants.transit)


class PosStatus(enum.StrEnum):
    PENDING = "pending"  # being decided (never committed so)
    ACCEPTED = "accepted"
    REJECTED = "rejected"  # kept with its reason, for clearing's exceptions report
    VOIDED = "voided"
    UPLOADED = "uploaded"  # an offline record, received: clearing decides whether it pays


# Chip debits the backend accepts online; one card counter is accepted once among them.
CARD_PRESENT_KINDS = (PosKind.PURCHASE, PosKind.BILL_PAYMENT)
# A merchant's sales: what a refund or a void undoes, and clearing sweeps from the takings.
SALE_KINDS = (PosKind.PURCHASE, PosKind.QR_PURCHASE)
# What clearing counts as a merchant's sales and sweeps from the takings: rides too (a free
# ride counts, at NT$0).
TAKINGS_KINDS = (*SALE_KINDS, PosKind.RIDE)
# Every online record that spent a chip counter: one card counter is one of these at most.
CHIP_DEBIT_KINDS = (*CARD_PRESENT_KINDS, PosKind.RIDE)


class PosNonce(Base):
    """Nonces seen within the signature window; the unique key refuses a replay."""

    __tablename__ = "pos_nonces"
    __table_args__ = (UniqueConstraint("key_id", "nonce"),)

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    key_id: Mapped[str] = mapped_column(String(40))
    nonce: Mapped[str] = mapped_column(String(64))
    seen_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow, index=True)


ACCEPTED_CHIP_DEBIT = (f"status = '{PosStatus.ACCEPTED}' "
                       f"AND kind IN ({sql_list(*CARD_PRESENT_KINDS)})")


class PosTransaction(Base):
    """Everything a terminal submitted: accepted, rejected (kept for clearing's exceptions
    report, never dropped), refunded or voided."""

    __tablename__ = "pos_transactions"
    __table_args__ = (
        # One accepted card-present debit (a purchase or a bill paid at a terminal) per card
        # transaction counter: a replayed certificate is found.
        Index("ux_pos_card_counter_accepted", "card_id", "card_counter", unique=True,
              sqlite_where=text_clause(ACCEPTED_CHIP_DEBIT),
              postgresql_where=text_clause(ACCEPTED_CHIP_DEBIT)),
        # Every record of one chip transaction (offline batches, online submissions).
        Index("ix_pos_transactions_card_counter", "card_id", "card_counter"),
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    kind: Mapped[str] = mapped_column(String(16))  # PosKind
    status: Mapped[str] = mapped_column(String(16))  # PosStatus
    reason: Mapped[str | None] = mapped_column(String(40), nullable=True)
    terminal_id: Mapped[int] = mapped_column(ForeignKey("terminals.id"), index=True)
    merchant_id: Mapped[int] = mapped_column(ForeignKey("merchants.id"), index=True)
    card_id: Mapped[int | None] = mapped_column(ForeignKey("cards.id"), nullable=True)
    card_number: Mapped[str] = mapped_column(String(16))
    amount: Mapped[int] = mapped_column(BigInteger)
    refunded: Mapped[int] = mapped_column(BigInteger, default=0)
    card_counter: Mapped[int | None] = mapped_column(Integer, nullable=True)
    balance_after: Mapped[int | None] = mapped_column(BigInteger, nullable=True)
    terminal_seq: Mapped[int | None] = mapped_column(BigInteger, nullable=True)
    card_time: Mapped[int | None] = mapped_column(BigInteger, nullable=True)
    certificate: Mapped[str | None] = mapped_column(String(16), nullable=True)
    batch_id: Mapped[int | None] = mapped_column(ForeignKey("pos_batches.id"), nullable=True,
                                                 index=True)
    original_id: Mapped[int | None] = mapped_column(ForeignKey("pos_transactions.id"),
                                                    nullable=True)
    transfer_id: Mapped[int | None] = mapped_column(ForeignKey("transfers.id"), nullable=True)
    idempotency_key: Mapped[str | None] = mapped_column(String(100), nullable=True)
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow, index=True)


class QrTokenUse(Base):
    """A spent QR payment token: the unique token id makes it single-use."""

    __tablename__ = "qr_token_uses"

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    token_id: Mapped[str] = mapped_column(String(64), unique=True)
    card_id: Mapped[int] = mapped_column(ForeignKey("cards.id"))
    transaction_id: Mapped[int | None] = mapped_column(ForeignKey("pos_transactions.id"),
                                                       nullable=True)
    used_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)


class PosBatch(Base):
    """An offline terminal's upload. Its records are facts, validated in clearing; the same
    batch uploaded again changes nothing."""

    __tablename__ = "pos_batches"
    __table_args__ = (UniqueConstraint("terminal_id", "batch_ref"),)

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    terminal_id: Mapped[int] = mapped_column(ForeignKey("terminals.id"))
    batch_ref: Mapped[str] = mapped_column(String(64))
    records: Mapped[int] = mapped_column(Integer)
    content_hash: Mapped[str] = mapped_column(String(64))
    received_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)
