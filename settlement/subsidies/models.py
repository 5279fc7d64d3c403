from __future__ import annotations

import datetime as dt

from sqlalchemy import BigInteger, Date, ForeignKey, Index, String
from sqlalchemy.orm import Mapped, mapped_column

from cardsvc.db import Base, BigId


class SubsidyClaim(Base):
    """One ride's subsidy: full fare − fare charged, owed by the programme that funds the
    ride's concession to the operator. Written when the ride's clearing window clears, only
    for rides whose concession the backend found valid on the ride's day."""

    __tablename__ = "subsidy_claims"
    __table_args__ = (Index("ix_subsidy_claims_month", "ride_date", "programme"),)

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    window_id: Mapped[int] = mapped_column(ForeignKey("clearing_windows.id"), index=True)
    transaction_id: Mapped[int] = mapped_column(ForeignKey("pos_transactions.id"), unique=True)
    merchant_id: Mapped[int] = mapped_column(ForeignKey("merchants.id"))
    programme: Mapped[str] = mapped_column(String(32))
    card_id: Mapped[int] = mapped_column(ForeignKey("cards.id"))
    concession: Mapped[str] = mapped_column(String(16))
    ride_date: Mapped[dt.date] = mapped_column(Date)
    full_fare: Mapped[int] = mapped_column(BigInteger)
    fare: Mapped[int] = mapped_column(BigInteger)
    claim: Mapped[int] = mapped_column(BigInteger)
