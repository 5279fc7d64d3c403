from __future__ import annotations

import datetime as dt

from sqlalchemy import Date, Integer, String
from sqlalchemy.orm import Mapped, mapped_column

from cardsvc.db import Base


class IssuanceCount(Base):
    """Cards issued in a business month (Asia/Taipei), by product, current status and the
    holder's township ('' outside the county): the issuance statistics over years read a
    few thousand of these instead of every card.

    Database triggers on `cards` and `cardholders` keep the counts exact in the same
    transaction as the change (issue, every state change, a move to another township), so
    no service has to remember them; `counts.rebuild` recomputes them from the cards.
    """

    __tablename__ = "issuance_counts"

    month: Mapped[dt.date] = mapped_column(Date, primary_key=True)  # its first day
    product: Mapped[str] = mapped_column(String(16), primary_key=True)
    status: Mapped[str] = mapped_column(String(16), primary_key=True)
    township: Mapped[str] = mapped_column(String(16), primary_key=True)
    cards: Mapped[int] = mapped_column(Integer)
