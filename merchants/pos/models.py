"""The POS domain's tables: transactions as terminals send them, nonces of signed requests,
spent QR tokens, offline batches."""

from __future__ import annotations

import datetime as dt

from sqlalchemy import BigInteger, ForeignKey, Index, Integer, String, UniqueConstraint
from sqlalchemy import text as text_clause
from sqlalchemy.orm import Mapped, mapped_column

from cardsvc.db import Base, BigId, UTCDateTime, utcnow


class PosNonce(Base):
    """Nonces seen within the signature window; the unique key refuses a replay."""

    __tablename__ = "pos_nonces"
    __table_args__ = (UniqueConstraint("key_id", "nonce"),)

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    key_id: Mapped[str] = mapped_column(String(40))
    nonce: Mapped[str] = mapped_column(String(64))
    seen_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow, index=True)


ACCEPTED_CHIP_DEBIT = "status = 'accepted' AND kind IN ('purchase', 'bill_payment')"


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
    kind: Mapped[str] = mapped_column(String(16))  # purchase | qr_purchase | refund | void
    status: Mapped[str] = mapped_column(String(16))  # accepted | rejected | voided
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
