"""Libraries, residents' links to them, and each library's feed of patron changes.

A library never gets a resident's national ID, birth date, chip UID or purse: it gets a patron
id of its own (random, per link) and the patron record built by `cardsvc.library.records`.
"""

from __future__ import annotations

import datetime as dt
import enum

from sqlalchemy import Boolean, ForeignKey, Integer, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from cardsvc.db import Base, BigId, UTCDateTime, utcnow


class Ils(enum.StrEnum):
    """The library system a library runs (it decides the export format it reads best)."""

    KOHA = "koha"
    EVERGREEN = "evergreen"
    FOLIO = "folio"
    OTHER = "other"


class PatronStatus(enum.StrEnum):
    VALID = "valid"
    LOST = "lost"  # the card was reported lost or stolen
    BLOCKED = "blocked"  # blocked by a supervisor, or not yet handed over
    EXPIRED = "expired"
    CLOSED = "closed"  # no card any more (closed), or the link was removed


class EventKind(enum.StrEnum):
    PATRON = "patron"  # the patron's current record (new or changed)
    UNLINKED = "unlinked"  # the resident unlinked this library: forget the patron


class Library(Base):
    __tablename__ = "libraries"

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    code: Mapped[str] = mapped_column(String(16), unique=True)
    name: Mapped[str] = mapped_column(String(100))
    ils: Mapped[str] = mapped_column(String(16))  # Ils
    # JSON: patron category by card product or concession ("general", "senior", "disability",
    # "companion", "student", "staff"), and "default" for the rest.
    categories: Mapped[str] = mapped_column(Text)
    home_branch: Mapped[str] = mapped_column(String(32))
    # JSON list: the optional fields (records.OPTIONAL_FIELDS) this library may receive, with
    # the resident's consent; a link shares a subset of these.
    optional_fields: Mapped[str] = mapped_column(Text, default="[]")
    webhook_url: Mapped[str | None] = mapped_column(String(500), nullable=True)
    # The webhook signing secret, encrypted with the personal-data key (it is shown to the
    # library's administrator once, when set).
    webhook_secret_enc: Mapped[str | None] = mapped_column(Text, nullable=True)
    # Credentials for pulling the feed and exports: a key id and the scrypt hash of the key.
    feed_key_id: Mapped[str] = mapped_column(String(32), unique=True)
    feed_key_hash: Mapped[str] = mapped_column(String(200))
    active: Mapped[bool] = mapped_column(Boolean, default=True)
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)
    updated_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)


class SipLogin(Base):
    """A SIP2 account of a library's kiosk, proxy or self-check (93 login)."""

    __tablename__ = "library_sip_logins"

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    library_id: Mapped[int] = mapped_column(ForeignKey("libraries.id"), index=True)
    username: Mapped[str] = mapped_column(String(64), unique=True)
    password_hash: Mapped[str] = mapped_column(String(200))
    # The field that carries the card's expiry in 64 answers (PA by default; some clients
    # read another).
    expiry_field: Mapped[str] = mapped_column(String(2), default="PA")
    encoding: Mapped[str] = mapped_column(String(16), default="utf-8")
    active: Mapped[bool] = mapped_column(Boolean, default=True)
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)


class LibraryLink(Base):
    """A resident's consent to be a patron of one library, and what it shares."""

    __tablename__ = "library_links"
    # `live_holder_id` is the holder's id while the link stands and NULL after unlinking:
    # one standing link per library and resident, any number of old ones.
    __table_args__ = (UniqueConstraint("library_id", "live_holder_id"),)

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    library_id: Mapped[int] = mapped_column(ForeignKey("libraries.id"), index=True)
    cardholder_id: Mapped[int] = mapped_column(ForeignKey("cardholders.id"), index=True)
    live_holder_id: Mapped[int | None] = mapped_column(BigId, nullable=True)
    # Random, never derived from anything about the resident; survives card replacement.
    patron_id: Mapped[str] = mapped_column(String(20), unique=True)
    shared_fields: Mapped[str] = mapped_column(Text, default="[]")  # JSON list
    consent_text: Mapped[str] = mapped_column(Text)
    consented_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)
    consented_by: Mapped[str] = mapped_column(String(64))
    # scrypt hash of the patron PIN the resident chose at the counter (SIP2 CQ), if any.
    pin_hash: Mapped[str | None] = mapped_column(String(200), nullable=True)
    unlinked_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime, nullable=True)
    unlinked_by: Mapped[str | None] = mapped_column(String(64), nullable=True)
    # The record the library was last sent (JSON): a change produces an event only when the
    # record the library would get differs from this.
    last_record: Mapped[str | None] = mapped_column(Text, nullable=True)


class LibraryEvent(Base):
    """A library's feed: one row per change of one of its patrons, numbered without gaps."""

    __tablename__ = "library_events"
    __table_args__ = (UniqueConstraint("library_id", "seq"),)

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    library_id: Mapped[int] = mapped_column(ForeignKey("libraries.id"))
    seq: Mapped[int] = mapped_column(Integer)
    event_id: Mapped[str] = mapped_column(String(40), unique=True)
    kind: Mapped[str] = mapped_column(String(16))  # EventKind
    patron_id: Mapped[str] = mapped_column(String(20), index=True)
    record: Mapped[str] = mapped_column(Text)  # JSON: what the library receives
    cause: Mapped[str] = mapped_column(String(40))  # what changed (card.replace, link, ...)
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)


class LibraryFeed(Base):
    """Per library: the last sequence number given out, and the webhook's progress. One
    deliverer at a time holds the claim (`claim`, until `claimed_until`): deliveries of one
    library go out in order, and no transaction stays open while a library's server
    answers."""

    __tablename__ = "library_feeds"

    library_id: Mapped[int] = mapped_column(ForeignKey("libraries.id"), primary_key=True)
    last_seq: Mapped[int] = mapped_column(Integer, default=0)
    delivered_seq: Mapped[int] = mapped_column(Integer, default=0)
    failures: Mapped[int] = mapped_column(Integer, default=0)
    next_attempt_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime, nullable=True)
    parked_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime, nullable=True)
    last_error: Mapped[str | None] = mapped_column(String(500), nullable=True)
    claim: Mapped[str | None] = mapped_column(String(40), nullable=True)
    claimed_until: Mapped[dt.datetime | None] = mapped_column(UTCDateTime, nullable=True)
