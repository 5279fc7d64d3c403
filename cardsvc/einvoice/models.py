"""Cards as e-invoice carriers: the carriers, their invoices, their binding (歸戶) to a mobile
barcode, the periods' draws, and what each check found."""

from __future__ import annotations

import datetime as dt
import enum

from sqlalchemy import (
    Boolean,
    Date,
    ForeignKey,
    Index,
    Integer,
    String,
    Text,
    UniqueConstraint,
)
from sqlalchemy.orm import Mapped, mapped_column

from cardsvc.db import Base, BigId, UTCDateTime, utcnow
from cardsvc.einvoice.rules import NO_BUYER, Exclusion


class InvoiceStatus(enum.StrEnum):
    ISSUED = "issued"
    VOIDED = "voided"  # 作廢


# Why an invoice cannot win (rules.Exclusion: voided, nothing left after allowances, a
# business buyer, issued after the fact), as SQL over an invoice row; '' when it can. The
# check's eligibility and its exclusion counts both read this one rule. The triggers that
# keep `einvoice_tallies` hold a copy frozen by their migration: a change here needs a
# migration that replaces them (`test_tallies_agree_with_the_invoices` says so when not).
def exclusion_reason(alias: str) -> str:
    a = f"{alias}."
    return (f"CASE WHEN {a}status = '{InvoiceStatus.VOIDED}' THEN '{Exclusion.VOIDED}' "
            f"WHEN {a}amount - {a}allowances <= 0 THEN '{Exclusion.NOT_POSITIVE}' "
            f"WHEN {a}buyer_tax_id <> '{NO_BUYER}' THEN '{Exclusion.BUSINESS_BUYER}' "
            f"WHEN {a}after_the_fact THEN '{Exclusion.AFTER_THE_FACT}' ELSE '' END")


class Carrier(Base):
    """A card as an e-invoice carrier: the visible id is its printed number, the hidden id a
    random code of its own. A replacement card is a new carrier; the old one's invoices stay
    the resident's."""

    __tablename__ = "einvoice_carriers"

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    card_id: Mapped[int] = mapped_column(ForeignKey("cards.id"), unique=True)
    cardholder_id: Mapped[int] = mapped_column(ForeignKey("cardholders.id"), index=True)
    carrier_type: Mapped[str] = mapped_column(String(8))
    visible_id: Mapped[str] = mapped_column(String(64), unique=True)
    hidden_id: Mapped[str] = mapped_column(String(64))
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)


class CarrierBinding(Base):
    """歸戶: the carrier aggregated to a resident's mobile barcode on the MOF platform."""

    __tablename__ = "einvoice_bindings"
    # One standing binding per carrier (`live_carrier_id` is NULL once unbound).
    __table_args__ = (UniqueConstraint("live_carrier_id"),)

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    carrier_id: Mapped[int] = mapped_column(ForeignKey("einvoice_carriers.id"), index=True)
    live_carrier_id: Mapped[int | None] = mapped_column(BigId, nullable=True)
    mobile_barcode: Mapped[str] = mapped_column(String(8))
    bound_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)
    bound_by: Mapped[str] = mapped_column(String(64))
    unbound_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime, nullable=True)
    unbound_by: Mapped[str | None] = mapped_column(String(64), nullable=True)


class OwedUnbind(Base):
    """An unbinding the MOF platform is to be told of, written in the transaction that ended
    the binding (`einvoice.platform`); the barcode is blanked once the platform has it."""

    __tablename__ = "einvoice_owed_unbinds"

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    binding_id: Mapped[int] = mapped_column(ForeignKey("einvoice_bindings.id"), index=True)
    carrier_id: Mapped[int] = mapped_column(ForeignKey("einvoice_carriers.id"), index=True)
    carrier_type: Mapped[str] = mapped_column(String(8))
    visible_id: Mapped[str] = mapped_column(String(64))
    mobile_barcode: Mapped[str] = mapped_column(String(8))
    owed_since: Mapped[dt.datetime] = mapped_column(UTCDateTime)
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    last_error: Mapped[str | None] = mapped_column(String(200), nullable=True)
    told_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime, nullable=True,
                                                        index=True)


class Invoice(Base):
    """An invoice a merchant issued onto a carrier, as its terminal reported it."""

    __tablename__ = "einvoice_invoices"
    # Invoice numbers are the MOF's, unique in a period across the country.
    __table_args__ = (UniqueConstraint("period", "number"),
                      Index("ix_einvoice_invoices_period_suffix", "period", "suffix"))

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    number: Mapped[str] = mapped_column(String(10))  # two letters, eight digits
    digits: Mapped[str] = mapped_column(String(8))  # the eight digits the prizes are drawn on
    suffix: Mapped[str] = mapped_column(String(3))  # the last three: every prize needs them
    period: Mapped[int] = mapped_column(Integer)  # yyyMM, ROC year, even month
    invoice_date: Mapped[dt.date] = mapped_column(Date)
    random_code: Mapped[str] = mapped_column(String(4))
    amount: Mapped[int] = mapped_column(Integer)  # the total, whole NT dollars
    allowances: Mapped[int] = mapped_column(Integer, default=0)  # 折讓 so far
    buyer_tax_id: Mapped[str] = mapped_column(String(8), default=NO_BUYER)
    seller_tax_id: Mapped[str] = mapped_column(String(8))
    donation_code: Mapped[str | None] = mapped_column(String(7), nullable=True)
    after_the_fact: Mapped[bool] = mapped_column(Boolean, default=False)  # 補開
    status: Mapped[str] = mapped_column(String(8), default=InvoiceStatus.ISSUED)
    carrier_id: Mapped[int] = mapped_column(ForeignKey("einvoice_carriers.id"), index=True)
    # The merchant and its purchase, as the POS domain (which reports the invoice) knows
    # them: ids of its records, not keys into its tables (the core does not reach into it).
    merchant_id: Mapped[int] = mapped_column(BigId, index=True)
    pos_transaction_id: Mapped[int] = mapped_column(BigId, unique=True)
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)
    voided_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime, nullable=True)


class Allowance(Base):
    """折讓: part of an invoice's amount given back."""

    __tablename__ = "einvoice_allowances"

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    invoice_id: Mapped[int] = mapped_column(ForeignKey("einvoice_invoices.id"), index=True)
    amount: Mapped[int] = mapped_column(Integer)
    reason: Mapped[str] = mapped_column(String(200))
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)


class Draw(Base):
    """A period's winning numbers and prize amounts, as the MOF published them."""

    __tablename__ = "einvoice_draws"

    period: Mapped[int] = mapped_column(Integer, primary_key=True)
    special_amount: Mapped[int] = mapped_column(Integer)
    grand_amount: Mapped[int] = mapped_column(Integer)
    first_amount: Mapped[int] = mapped_column(Integer)
    second_amount: Mapped[int] = mapped_column(Integer)
    third_amount: Mapped[int] = mapped_column(Integer)
    fourth_amount: Mapped[int] = mapped_column(Integer)
    fifth_amount: Mapped[int] = mapped_column(Integer)
    sixth_amount: Mapped[int] = mapped_column(Integer)
    source: Mapped[str] = mapped_column(Text)  # the QryWinningList answer as imported
    imported_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)
    imported_by: Mapped[str] = mapped_column(String(64))


class PrizeNumber(Base):
    """One winning number of a period: special, grand, first (8 digits) or an extra sixth
    (3 digits)."""

    __tablename__ = "einvoice_prize_numbers"
    __table_args__ = (UniqueConstraint("period", "kind", "number"),)

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    period: Mapped[int] = mapped_column(ForeignKey("einvoice_draws.period"), index=True)
    kind: Mapped[str] = mapped_column(String(12))  # special | grand | first | extra_sixth
    number: Mapped[str] = mapped_column(String(8))
    suffix: Mapped[str] = mapped_column(String(3))


class CloudPrize(Base):
    """A period's cloud-invoice prize (雲端發票專屬獎): a whole invoice number and its amount."""

    __tablename__ = "einvoice_cloud_prizes"
    __table_args__ = (UniqueConstraint("period", "number"),)

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    period: Mapped[int] = mapped_column(Integer, index=True)
    number: Mapped[str] = mapped_column(String(10))
    amount: Mapped[int] = mapped_column(Integer)


class Winning(Base):
    """What an invoice won in its period's check (one prize per invoice, the highest).

    Derived rows: the check writes them from the invoices and carriers it joins, and replaces
    them when it runs again, so they carry no foreign keys (whose checks were half the cost
    of writing a period's winnings)."""

    __tablename__ = "einvoice_winnings"

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    invoice_id: Mapped[int] = mapped_column(BigId, unique=True)
    period: Mapped[int] = mapped_column(Integer, index=True)
    cardholder_id: Mapped[int] = mapped_column(BigId, index=True)
    tier: Mapped[str] = mapped_column(String(12))  # rules.Tier
    amount: Mapped[int] = mapped_column(Integer)
    income_tax: Mapped[int] = mapped_column(Integer)
    stamp_duty: Mapped[int] = mapped_column(Integer)
    donated: Mapped[bool] = mapped_column(Boolean)  # wins for the charity, not the resident
    claim_from: Mapped[dt.date] = mapped_column(Date)
    claim_until: Mapped[dt.date] = mapped_column(Date)


class PrizeCheck(Base):
    """A period's latest check: what it went through and what it found."""

    __tablename__ = "einvoice_checks"

    period: Mapped[int] = mapped_column(Integer, primary_key=True)
    checked_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)
    checked_by: Mapped[str] = mapped_column(String(64))
    invoices: Mapped[int] = mapped_column(Integer)
    winners: Mapped[int] = mapped_column(Integer)
    amount: Mapped[int] = mapped_column(BigId)
    exclusions: Mapped[str] = mapped_column(Text)  # JSON: count by rules.Exclusion


class InvoiceTally(Base):
    """How many invoices a period has, by why they cannot win ('' for those that can): what
    a check reports it went through, without reading millions of invoices. Only the fold
    (`check.TALLIES`) writes these."""

    __tablename__ = "einvoice_tallies"

    period: Mapped[int] = mapped_column(Integer, primary_key=True)
    reason: Mapped[str] = mapped_column(String(16), primary_key=True)
    invoices: Mapped[int] = mapped_column(Integer)


class InvoiceTallyChange(Base):
    """A change to the tallies, appended by the triggers on `einvoice_invoices` in the
    transaction of each invoice reported, voided or given an allowance (only inserts: POS
    terminals reporting at once never wait on a shared count)."""

    __tablename__ = "einvoice_tally_changes"

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    period: Mapped[int] = mapped_column(Integer)
    reason: Mapped[str] = mapped_column(String(16))
    delta: Mapped[int] = mapped_column(Integer)
