from __future__ import annotations

import datetime as dt

from pydantic import EmailStr, Field, field_validator

from cardsvc.config import TOWNSHIPS
from cardsvc.holders.models import EmployerKind
from cardsvc.schemas_common import (
    IdField,
    Integer,
    IsoDate,
    Model,
    Out,
    ProofEnd,
    Purpose,
    business_today,
)


def _township(v: str | None) -> str | None:
    if v is not None and v not in TOWNSHIPS:
        raise ValueError(f"township must be one of {', '.join(TOWNSHIPS)} (or null when the "
                         "household is registered outside the county)")
    return v


class CardholderCreate(Model):
    name: str = Field(min_length=1, max_length=100, examples=["陳金門"])
    person_id: str = Field(min_length=10, max_length=10,
                           description="National ID or resident certificate number; the check "
                           "digit is verified (422 invalid_input otherwise). Full-width and "
                           "lower-case letters are read as their ASCII capitals.",
                           examples=["A123456789"])
    birth_date: IsoDate = Field(examples=["1958-03-02"],
                                description="YYYY-MM-DD, from 1900-01-01 to today")
    township: str | None = Field(examples=["金城鎮"])
    phone: str | None = Field(default=None, pattern=r"^\+?[0-9][0-9 -]{6,18}[0-9]$",
                              examples=["0912-345-678"])
    email: EmailStr | None = Field(default=None, examples=["resident@example.org"])

    _tw = field_validator("township")(_township)

    @field_validator("birth_date")
    @classmethod
    def _plausible_birth(cls, v: dt.date) -> dt.date:
        if v < dt.date(1900, 1, 1) or v > business_today():
            raise ValueError("birth date must lie between 1900-01-01 and today")
        return v


class CardholderUpdate(Model):
    name: str | None = Field(default=None, min_length=1, max_length=100)
    township: str | None = None
    phone: str | None = Field(default=None, pattern=r"^\+?[0-9][0-9 -]{6,18}[0-9]$")
    email: EmailStr | None = None
    clear_township: bool = Field(default=False, strict=True,
                                 description="Set when the household "
                                 "registration moved out of the county")

    _tw = field_validator("township")(_township)


class EnrolmentCreate(Model):
    school: str = Field(min_length=1, max_length=100, examples=["國立金門大學"])
    valid_until: ProofEnd


class EnrolmentEnd(Model):
    """The school reports another last day: the student left early, or stays longer."""

    valid_until: ProofEnd
    note: str = Field(default="", max_length=200)


class EnrolmentOut(Out):
    id: int
    school: str
    valid_until: dt.date


class EmploymentCreate(Model):
    employer: str = Field(min_length=1, max_length=100, examples=["金門縣政府"])
    employer_kind: EmployerKind = Field(description="county government, one of its agencies "
                                        "or schools, the council or a township office")
    valid_until: ProofEnd


class EmploymentOut(Out):
    id: int
    employer: str
    employer_kind: str
    valid_until: dt.date


class DisabilityCertificateCreate(Model):
    certificate_no: str = Field(min_length=4, max_length=40)
    valid_until: ProofEnd
    companion_id: IdField | None = Field(default=None,
                                         description="Cardholder registered as companion (陪伴)")


class DisabilityCertificateOut(Out):
    id: int
    certificate_no_masked: str
    valid_until: dt.date
    companion_id: int | None


class CardholderSearch(Model):
    purpose: Purpose
    person_id: str | None = Field(default=None, max_length=10)
    name: str | None = Field(default=None, min_length=1, max_length=100,
                             description="The name's beginning: a surname or the whole name")
    limit: Integer = Field(default=20, ge=1, le=100)


class CardholderSummary(Out):
    id: int
    name: str = Field(description="Empty once the personal data was erased")
    person_id_masked: str = Field(description="Empty once the personal data was erased")
    township: str | None
    erased_at: dt.datetime | None = Field(
        default=None, description="When retention erased the resident's personal data: the "
        "record then keeps only its id and township, and every action on it is refused "
        "(409 cardholder_erased)")


class CardholderOut(CardholderSummary):
    person_id: str | None = Field(default=None,
                                  description="Full number, only when revealed for a purpose")
    person_id_kind: str | None = Field(description="national | resident; null once erased")
    birth_date: dt.date | None = Field(description="Null once the personal data was erased")
    phone: str | None
    email: str | None
    enrolments: list[EnrolmentOut]
    disability_certificates: list[DisabilityCertificateOut]
    employments: list[EmploymentOut] = Field(default_factory=list)
    created_at: dt.datetime
