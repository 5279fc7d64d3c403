from __future__ import annotations

import datetime as dt
import enum

from sqlalchemy import Date, ForeignKey, Index, Integer, String, Text, UniqueConstraint, text
from sqlalchemy.orm import Mapped, mapped_column

from cardsvc.db import Base, BigId, UTCDateTime, utcnow


class Product(enum.StrEnum):
    GENERAL = "general"  # 一般卡
    SENIOR = "senior"  # 敬老愛心卡 (senior, disability and companion variants)
    STUDENT = "student"  # 學生卡
    MOBILE = "mobile"  # 行動一般卡
    STAFF = "staff"  # 員工卡: county government, agencies, schools, council, township offices


class Concession(enum.StrEnum):
    NONE = "none"
    SENIOR = "senior"  # age
    DISABILITY = "disability"  # 愛心
    COMPANION = "companion"  # 陪伴
    STUDENT = "student"
    STAFF = "staff"


class CardStatus(enum.StrEnum):
    APPLIED = "applied"
    ISSUED = "issued"
    ACTIVE = "active"
    SUSPENDED = "suspended"  # reported lost or stolen; reversible
    BLOCKED = "blocked"  # supervisor decision
    EXPIRED = "expired"
    REPLACED = "replaced"
    CLOSED = "closed"


# States in which a card occupies the holder's one physical (or one mobile) slot. An expired
# card still holds a purse balance, so it keeps the slot until it is renewed or closed.
LIVE_STATUSES = frozenset(
    {CardStatus.APPLIED, CardStatus.ISSUED, CardStatus.ACTIVE, CardStatus.SUSPENDED,
     CardStatus.BLOCKED, CardStatus.EXPIRED}
)


class Card(Base):
    __tablename__ = "cards"
    __table_args__ = (
        # `live_form` is the card's form while the card is live and NULL afterwards; NULLs
        # never collide, so this allows one live physical and one live mobile card per holder.
        UniqueConstraint("cardholder_id", "live_form"),
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    card_number: Mapped[str] = mapped_column(String(16), unique=True)
    cardholder_id: Mapped[int] = mapped_column(ForeignKey("cardholders.id"), index=True)
    product: Mapped[str] = mapped_column(String(16))
    concession: Mapped[str] = mapped_column(String(16))
    form: Mapped[str] = mapped_column(String(8))  # physical | mobile
    live_form: Mapped[str | None] = mapped_column(String(8), nullable=True)
    status: Mapped[str] = mapped_column(String(16), index=True)
    chip_uid: Mapped[str | None] = mapped_column(String(20), unique=True, nullable=True)
    device_id: Mapped[str | None] = mapped_column(String(128), nullable=True)
    # Same trick as live_form: one live mobile card per phone.
    live_device_id: Mapped[str | None] = mapped_column(String(128), unique=True, nullable=True)
    device_public_key: Mapped[str | None] = mapped_column(Text, nullable=True)
    expires_on: Mapped[dt.date] = mapped_column(Date)
    # The last day the concession holds (the proof's end, or the card's expiry for a senior);
    # NULL without one. The card stays valid after it: the holder then pays the full fare.
    concession_until: Mapped[dt.date | None] = mapped_column(Date, nullable=True)
    # The chip's concession profile version: the latest written or waiting to be written.
    profile_version: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    counter: Mapped[str] = mapped_column(String(32))
    replaces_card_id: Mapped[int | None] = mapped_column(
        ForeignKey("cards.id"), nullable=True, unique=True
    )
    applied_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)
    issued_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime, nullable=True, index=True)
    closed_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime, nullable=True)
    status_changed_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)
    # Set when the chip was personalised by this system: the version of the card's load key,
    # with which the backend authorises loads and verifies transaction certificates. NULL for
    # account-held purses (mobile cards, cards personalised elsewhere).
    load_key_version: Mapped[int | None] = mapped_column(Integer, nullable=True)


class CardEvent(Base):
    """Every lifecycle transition: who, when, why."""

    __tablename__ = "card_events"

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    card_id: Mapped[int] = mapped_column(ForeignKey("cards.id"), index=True)
    at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)
    action: Mapped[str] = mapped_column(String(32))
    from_status: Mapped[str | None] = mapped_column(String(16), nullable=True)
    to_status: Mapped[str] = mapped_column(String(16))
    actor: Mapped[str] = mapped_column(String(64))
    reason: Mapped[str] = mapped_column(String(500))
    seq: Mapped[int] = mapped_column(Integer, default=0)


class LoadStatus(enum.StrEnum):
    PENDING = "pending"  # authorised and booked; waits for the chip
    DELIVERED = "delivered"  # the chip's record of it verified
    REVIEW = "review"  # the chip cannot show whether it took the value: a supervisor decides
    REFUNDED = "refunded"  # not on the chip: paid back in cash


class CardLoad(Base):
    """Value authorised online (a top-up) that has to reach the chip's purse.

    Created with the top-up, in the same transaction; delivered when the card is on a counter
    reader. The id travels to the card as the load id, so a load repeated after a tear is
    recognised by the card and never applied twice.
    """

    __tablename__ = "card_loads"
    # A chip counter value is one transaction of the card: two deliveries never share one
    # (a chip answering with a counter already recorded is not a delivery).
    __table_args__ = (
        Index("uq_card_loads_delivered_counter", "card_id", "card_counter", unique=True,
              sqlite_where=text("status = 'delivered'"),
              postgresql_where=text("status = 'delivered'")),
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    card_id: Mapped[int] = mapped_column(ForeignKey("cards.id"), index=True)
    transfer_id: Mapped[int] = mapped_column(ForeignKey("transfers.id"), unique=True)
    amount: Mapped[int] = mapped_column(Integer)
    status: Mapped[str] = mapped_column(String(16), default=LoadStatus.PENDING)  # LoadStatus
    # The chip's counter when this load was first authorised; a retry at another counter is
    # only authorised when the chip's kept records cover every transaction since.
    authorised_counter: Mapped[int | None] = mapped_column(Integer, nullable=True)
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)
    delivered_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime, nullable=True)
    card_counter: Mapped[int | None] = mapped_column(Integer, nullable=True)
    card_balance: Mapped[int | None] = mapped_column(Integer, nullable=True)
    certificate: Mapped[str | None] = mapped_column(String(16), nullable=True)


class HotlistEntry(Base):
    """The blocked-card list as an append-only log: terminals fetch the entries after the
    version they hold (deltas). `version` is this row's id."""

    __tablename__ = "hotlist"

    id: Mapped[int] = mapped_column(BigId, primary_key=True)  # the version
    card_number: Mapped[str] = mapped_column(String(16), index=True)
    action: Mapped[str] = mapped_column(String(8))  # add | remove
    reason: Mapped[str] = mapped_column(String(32))
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)


class ProfileStatus(enum.StrEnum):
    PENDING = "pending"  # waits for the card's next tap at a counter or terminal
    DELIVERED = "delivered"
    SUPERSEDED = "superseded"  # a newer update replaced it before it reached the chip


class ProfileUpdate(Base):
    """A new concession profile for a chip (a new enrolment, certificate or employment moved
    the concession's end). Delivered like a load: at the counter, or by any terminal at the
    next tap; the card applies each version once and never goes back to an older one."""

    __tablename__ = "card_profile_updates"
    __table_args__ = (UniqueConstraint("card_id", "version"),)

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    card_id: Mapped[int] = mapped_column(ForeignKey("cards.id"), index=True)
    version: Mapped[int] = mapped_column(Integer)
    concession: Mapped[str] = mapped_column(String(16))
    ends_on: Mapped[dt.date | None] = mapped_column(Date, nullable=True)
    status: Mapped[str] = mapped_column(String(16), default=ProfileStatus.PENDING, index=True)
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)
    delivered_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime, nullable=True)
    delivered_by: Mapped[str | None] = mapped_column(String(40), nullable=True)
