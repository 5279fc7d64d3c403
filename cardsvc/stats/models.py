from __future__ import annotations

import datetime as dt

from sqlalchemy import Date, Integer, String
from sqlalchemy.orm import Mapped, mapped_column

from cardsvc.db import Base, BigId


class IssuanceCount(Base):
    """Cards issued in a business month (Asia/Taipei), by product, current status and the
    holder's township ('' outside the county): the issuance statistics over years read a
    few thousand of these instead of every card. Only `counts.fold` writes them."""

    __tablename__ = "issuance_counts"

    month: Mapped[dt.date] = mapped_column(Date, primary_key=True)  # its first day
    product: Mapped[str] = mapped_column(String(16), primary_key=True)
    status: Mapped[str] = mapped_column(String(16), primary_key=True)
    township: Mapped[str] = mapped_column(String(16), primary_key=True)
    cards: Mapped[int] = mapped_column(Integer)


class IssuanceCountChange(Base):
    """A change to the counts, written by database triggers on `cards` and `cardholders` in
    the transaction of the change itself (an issue, every state change, a move to another
    township), so no service has to remember them. The triggers only ever insert here:
    card transactions at several desks never wait on, or deadlock over, a shared count row.
    `counts.fold` adds the changes into `issuance_counts` and removes them."""

    __tablename__ = "issuance_count_changes"

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    month: Mapped[dt.date] = mapped_column(Date)
    product: Mapped[str] = mapped_column(String(16))
    status: Mapped[str] = mapped_column(String(16))
    township: Mapped[str] = mapped_column(String(16))
    delta: Mapped[int] = mapped_column(Integer)
