from __future__ import annotations

import datetime as dt
import enum

from sqlalchemy import ForeignKey, Integer, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from cardsvc.db import Base, BigId, UTCDateTime, utcnow


class MerchantStatus(enum.StrEnum):
    ACTIVE = "active"
    SUSPENDED = "suspended"


class TerminalStatus(enum.StrEnum):
    ACTIVE = "active"
    REVOKED = "revoked"


class MerchantCategory(enum.StrEnum):
    RETAIL = "retail"
    TRANSIT = "transit"
    GOVERNMENT = "government"  # county fee venues: land office, hospital, stadium, ...
    UTILITY = "utility"  # the water plant and other billers


class Merchant(Base):
    __tablename__ = "merchants"

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    legal_name: Mapped[str] = mapped_column(String(200))
    tax_id: Mapped[str] = mapped_column(String(8), unique=True)
    category: Mapped[str] = mapped_column(String(16))
    fee_bps: Mapped[int] = mapped_column(Integer)  # basis points of each sale; 0 allowed
    bank_account_enc: Mapped[str] = mapped_column(Text)  # AES-GCM, like personal data
    status: Mapped[str] = mapped_column(String(16), default=MerchantStatus.ACTIVE)
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)
    updated_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)


class Terminal(Base):
    """A POS terminal. Its id is the terminal id the card records in every transaction."""

    __tablename__ = "terminals"

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    merchant_id: Mapped[int] = mapped_column(ForeignKey("merchants.id"), index=True)
    label: Mapped[str] = mapped_column(String(100))
    location: Mapped[str] = mapped_column(String(200), default="")
    key_id: Mapped[str] = mapped_column(String(40), unique=True)
    # The HMAC secret, AES-GCM-wrapped under the key-encryption key (it must be readable to
    # check signatures, so it cannot be a one-way hash).
    secret_enc: Mapped[str] = mapped_column(Text)
    status: Mapped[str] = mapped_column(String(16), default=TerminalStatus.ACTIVE)
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)
    rotated_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime, nullable=True)










