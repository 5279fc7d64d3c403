"""Fare tables as the backend signed them, and rides with what their certificate covers."""

from __future__ import annotations

import datetime as dt

from sqlalchemy import BigInteger, Date, ForeignKey, Integer, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from cardsvc.db import Base, BigId, UTCDateTime, utcnow


class FareTableRow(Base):
    """One version of an operator's fare table: the canonical JSON exactly as signed."""

    __tablename__ = "fare_tables"
    __table_args__ = (UniqueConstraint("merchant_id", "version"),)

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    merchant_id: Mapped[int] = mapped_column(ForeignKey("merchants.id"), index=True)
    version: Mapped[int] = mapped_column(Integer)
    document: Mapped[str] = mapped_column(Text)
    key_id: Mapped[str] = mapped_column(String(16))
    signature: Mapped[str] = mapped_column(String(120))
    created_by: Mapped[str] = mapped_column(String(64))
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)


class Ride(Base):
    """An accepted ride: the POS record's details a subsidy is decided on. Product, concession
    and full fare are what the card certified; one ride per chip counter."""

    __tablename__ = "rides"
    __table_args__ = (UniqueConstraint("card_id", "card_counter"),)

    transaction_id: Mapped[int] = mapped_column(ForeignKey("pos_transactions.id"),
                                                primary_key=True)
    merchant_id: Mapped[int] = mapped_column(ForeignKey("merchants.id"), index=True)
    terminal_id: Mapped[int] = mapped_column(ForeignKey("terminals.id"))  # the vehicle
    card_id: Mapped[int] = mapped_column(ForeignKey("cards.id"), index=True)
    card_counter: Mapped[int] = mapped_column(Integer)
    route: Mapped[str] = mapped_column(String(32))
    fare_table_version: Mapped[int] = mapped_column(Integer)
    product: Mapped[str] = mapped_column(String(16))
    concession: Mapped[str] = mapped_column(String(16))
    full_fare: Mapped[int] = mapped_column(BigInteger)
    fare: Mapped[int] = mapped_column(BigInteger)
    ride_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, index=True)  # the chip's time
    ride_date: Mapped[dt.date] = mapped_column(Date, index=True)  # Asia/Taipei
