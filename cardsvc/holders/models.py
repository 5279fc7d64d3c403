from __future__ import annotations

import datetime as dt
import enum

from sqlalchemy import Date, ForeignKey, Index, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from cardsvc.db import Base, BigId, UTCDateTime, utcnow


class Cardholder(Base):
    """A resident. Columns ending in `_enc` hold AES-GCM ciphertext (see security.crypto)."""

    __tablename__ = "cardholders"
    # Search by name is by its beginning (the surname, or the whole name): a prefix the index
    # answers. PostgreSQL's pattern operators let LIKE 'x%' use it whatever the collation.
    __table_args__ = (Index("ix_cardholders_name_prefix", "name",
                            postgresql_ops={"name": "text_pattern_ops"}),)

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    name: Mapped[str] = mapped_column(String(100))
    person_id_enc: Mapped[str] = mapped_column(Text)
    # Keyed hash of the normalised national ID / resident certificate number: lookup and
    # uniqueness without storing the number in the clear.
    person_id_hash: Mapped[str] = mapped_column(String(64), unique=True)
    person_id_kind: Mapped[str] = mapped_column(String(16))  # national | resident
    birth_date_enc: Mapped[str] = mapped_column(Text)
    phone_enc: Mapped[str | None] = mapped_column(Text, nullable=True)
    email_enc: Mapped[str | None] = mapped_column(Text, nullable=True)
    # Township of household registration; NULL when not registered in the county.
    township: Mapped[str | None] = mapped_column(String(8), nullable=True, index=True)
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)
    updated_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)
    # Set when retention erased the personal data (cardsvc.holders.retention): the row stays
    # as the pseudonymous id that cards, the ledger, statistics and the audit trail name.
    erased_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime, nullable=True)


class Enrolment(Base):
    """Proof of student status; the student concession ends with `valid_until`."""

    __tablename__ = "enrolments"

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    cardholder_id: Mapped[int] = mapped_column(ForeignKey("cardholders.id"), index=True)
    school: Mapped[str] = mapped_column(String(100))
    valid_until: Mapped[dt.date] = mapped_column(Date)
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)


class DisabilityCertificate(Base):
    """Proof for the 愛心 concession; may register one companion (陪伴) cardholder."""

    __tablename__ = "disability_certificates"

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    cardholder_id: Mapped[int] = mapped_column(ForeignKey("cardholders.id"), index=True)
    certificate_no_enc: Mapped[str] = mapped_column(Text)
    valid_until: Mapped[dt.date] = mapped_column(Date)
    companion_id: Mapped[int | None] = mapped_column(
        ForeignKey("cardholders.id"), nullable=True, index=True
    )
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)


class EmployerKind(enum.StrEnum):
    """Who may hold a staff card (員工卡), as the county's FAQ lists them."""

    COUNTY_GOVERNMENT = "county_government"  # 縣政府
    COUNTY_AGENCY = "county_agency"  # 所屬機關
    SCHOOL = "school"  # 所屬學校
    COUNCIL = "council"  # 縣議會
    TOWNSHIP_OFFICE = "township_office"  # 鄉鎮公所


class Employment(Base):
    """Proof for the staff card; the staff concession ends with `valid_until`."""

    __tablename__ = "employments"

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    cardholder_id: Mapped[int] = mapped_column(ForeignKey("cardholders.id"), index=True)
    employer: Mapped[str] = mapped_column(String(100))
    employer_kind: Mapped[str] = mapped_column(String(24))
    valid_until: Mapped[dt.date] = mapped_column(Date)
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)
