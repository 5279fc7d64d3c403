"""County events: the events departments organise, residents' check-ins with their tickets,
and the draws held among them."""

from __future__ import annotations

import datetime as dt
import enum

from sqlalchemy import ForeignKey, Integer, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from cardsvc.db import Base, BigId, UTCDateTime, utcnow


class EventStatus(enum.StrEnum):
    DRAFT = "draft"  # being prepared; nothing public
    PUBLISHED = "published"  # on the public page; the draw's commitment with it
    FROZEN = "frozen"  # check-in closed, the ticket list frozen and published
    DRAWN = "drawn"  # the seed revealed, the winners picked
    CANCELLED = "cancelled"


class CheckinMethod(enum.StrEnum):
    CHIP = "chip"  # the card's identity-key proof, through a station's reader
    PHONE = "phone"  # the mobile card's phone-signed token


class Event(Base):
    __tablename__ = "events"

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    title: Mapped[str] = mapped_column(String(200))
    department: Mapped[str] = mapped_column(String(64), index=True)
    venue: Mapped[str] = mapped_column(String(200))
    starts_at: Mapped[dt.datetime] = mapped_column(UTCDateTime)
    ends_at: Mapped[dt.datetime] = mapped_column(UTCDateTime)
    checkin_opens: Mapped[dt.datetime] = mapped_column(UTCDateTime)
    checkin_closes: Mapped[dt.datetime] = mapped_column(UTCDateTime)
    points: Mapped[int] = mapped_column(Integer, default=0)
    capacity: Mapped[int | None] = mapped_column(Integer, nullable=True)
    prizes: Mapped[int] = mapped_column(Integer, default=0)  # 0: no draw
    prize_description: Mapped[str | None] = mapped_column(Text, nullable=True)
    status: Mapped[str] = mapped_column(String(10), default=EventStatus.DRAFT, index=True)
    checkins: Mapped[int] = mapped_column(Integer, default=0)  # held under the capacity
    created_by: Mapped[str] = mapped_column(String(64))
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)
    published_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime, nullable=True)
    # The draw: the seed stays encrypted until the draw reveals it; its SHA-256 is public
    # from publication on, before anyone checks in.
    seed_enc: Mapped[str | None] = mapped_column(Text, nullable=True)
    commitment: Mapped[str | None] = mapped_column(String(64), nullable=True)
    frozen_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime, nullable=True)
    merkle_root: Mapped[str | None] = mapped_column(String(64), nullable=True)
    public_value: Mapped[str | None] = mapped_column(String(200), nullable=True)
    seed_revealed: Mapped[str | None] = mapped_column(String(64), nullable=True)
    drawn_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime, nullable=True)
    drawn_by: Mapped[str | None] = mapped_column(String(64), nullable=True)


class CheckIn(Base):
    __tablename__ = "event_checkins"
    __table_args__ = (UniqueConstraint("event_id", "cardholder_id"),
                      UniqueConstraint("event_id", "ticket"))

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    event_id: Mapped[int] = mapped_column(ForeignKey("events.id"), index=True)
    cardholder_id: Mapped[int] = mapped_column(ForeignKey("cardholders.id"), index=True)
    card_id: Mapped[int] = mapped_column(ForeignKey("cards.id"))
    ticket: Mapped[str] = mapped_column(String(12))
    method: Mapped[str] = mapped_column(String(8))
    # What proved the card was there (the station's nonce or the phone token's id): a second
    # upload of the same tap is the same check-in.
    proof_ref: Mapped[str] = mapped_column(String(80), unique=True)
    station: Mapped[str] = mapped_column(String(64))
    tapped_at: Mapped[dt.datetime] = mapped_column(UTCDateTime)
    received_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)
    offline: Mapped[bool] = mapped_column(default=False)
    # For the county's participation statistics, as they were on the day (no birth date).
    township: Mapped[str | None] = mapped_column(String(8), nullable=True)
    age_band: Mapped[str] = mapped_column(String(8))
    points: Mapped[int] = mapped_column(Integer, default=0)


class Winner(Base):
    __tablename__ = "event_winners"
    __table_args__ = (UniqueConstraint("event_id", "rank"),
                      UniqueConstraint("event_id", "ticket"))

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    event_id: Mapped[int] = mapped_column(ForeignKey("events.id"), index=True)
    rank: Mapped[int] = mapped_column(Integer)
    ticket: Mapped[str] = mapped_column(String(12))
    checkin_id: Mapped[int] = mapped_column(ForeignKey("event_checkins.id"))
    collected_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime, nullable=True)
    collected_by: Mapped[str | None] = mapped_column(String(64), nullable=True)
