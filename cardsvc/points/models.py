"""Participation points: a ledger apart from money. Entries are appended, never changed; a
resident's entries sum to the balance kept on their account row (which the redemptions
lock against). Points never become purse money."""

from __future__ import annotations

import datetime as dt
import enum

from sqlalchemy import CheckConstraint, Date, ForeignKey, Integer, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from cardsvc.db import Base, BigId, UTCDateTime, utcnow


class EntryKind(enum.StrEnum):
    AWARD = "award"  # + on a check-in
    REDEEM = "redeem"  # - for a reward at the counter
    EXPIRE = "expire"  # - what was not used by its awards' expiry


class PointsAccount(Base):
    __tablename__ = "points_accounts"
    __table_args__ = (CheckConstraint("balance >= 0", name="balance_not_negative"),)

    cardholder_id: Mapped[int] = mapped_column(ForeignKey("cardholders.id"), primary_key=True)
    balance: Mapped[int] = mapped_column(Integer, default=0)


class PointsEntry(Base):
    __tablename__ = "points_entries"

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    cardholder_id: Mapped[int] = mapped_column(ForeignKey("cardholders.id"), index=True)
    kind: Mapped[str] = mapped_column(String(8))
    points: Mapped[int] = mapped_column(Integer)  # signed
    # An award's points expire at the end of this day (Asia/Taipei) unless used first.
    expires_on: Mapped[dt.date | None] = mapped_column(Date, nullable=True)
    # What it is for, once ("checkin:ID", "redemption:ID", "expiry:HOLDER:DATE").
    reference: Mapped[str] = mapped_column(String(64), unique=True)
    note: Mapped[str | None] = mapped_column(Text, nullable=True)
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)
    created_by: Mapped[str] = mapped_column(String(64))


class RewardItem(Base):
    __tablename__ = "reward_items"
    __table_args__ = (CheckConstraint("stock >= 0", name="stock_not_negative"),
                      CheckConstraint("points > 0", name="points_positive"))

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    name: Mapped[str] = mapped_column(String(100))
    points: Mapped[int] = mapped_column(Integer)
    stock: Mapped[int] = mapped_column(Integer, default=0)
    active: Mapped[bool] = mapped_column(default=True)
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)


class Redemption(Base):
    __tablename__ = "points_redemptions"

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    cardholder_id: Mapped[int] = mapped_column(ForeignKey("cardholders.id"), index=True)
    item_id: Mapped[int] = mapped_column(ForeignKey("reward_items.id"))
    quantity: Mapped[int] = mapped_column(Integer)
    points: Mapped[int] = mapped_column(Integer)
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)
    created_by: Mapped[str] = mapped_column(String(64))
