"""Request/response building blocks shared by the core's domains."""

from __future__ import annotations

import datetime as dt
import re
from typing import Annotated, Any
from zoneinfo import ZoneInfo

from fastapi import Path, Query
from pydantic import AfterValidator, BaseModel, BeforeValidator, ConfigDict, Field, model_validator
from pydantic_core import PydanticCustomError

from cardsvc.config import BUSINESS_TZ, TOWNSHIPS

# Whole NT dollars. The upper bound keeps absurd values out long before BIGINT overflows.
Amount = Annotated[int, Field(gt=0, le=1_000_000, strict=True,
                              description="Whole NT dollars", examples=[500])]
Purpose = Annotated[str, Field(min_length=3, max_length=200,
                               description="Why personal data is read; kept in the audit trail",
                               examples=["counter service: card application"])]
Township = Annotated[str, Field(json_schema_extra={"enum": list(TOWNSHIPS)})]


MAX_ID = 2**62  # every id fits a signed 64-bit column with room to spare
# Strict: a JSON true is not the id 1 (pydantic's lax mode takes booleans for integers).
IdField = Annotated[int, Field(gt=0, le=MAX_ID, strict=True)]
IdPath = Annotated[int, Path(gt=0, le=MAX_ID)]
IdQuery = Annotated[int, Query(gt=0, le=MAX_ID)]


_ISO_DATE = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}")


def _iso_date_only(value: Any) -> Any:
    # Lax parsing would read 0 as 1970-01-01 and "2024-01-01T05:00" as a day: a date in a
    # request is written YYYY-MM-DD and nothing else.
    if isinstance(value, dt.datetime) or not isinstance(value, str | dt.date):
        raise PydanticCustomError("date_type", "a date is written YYYY-MM-DD")
    if isinstance(value, str) and not _ISO_DATE.fullmatch(value.strip()):
        raise PydanticCustomError("date_type", "a date is written YYYY-MM-DD")
    return value


IsoDate = Annotated[dt.date, BeforeValidator(_iso_date_only)]


def business_today() -> dt.date:
    return dt.datetime.now(ZoneInfo(BUSINESS_TZ)).date()


PROOF_PAST_DAYS = 366
PROOF_FUTURE_YEARS = 30


def _proof_end_in_range(value: dt.date) -> dt.date:
    today = business_today()
    if not (today - dt.timedelta(days=PROOF_PAST_DAYS) <= value
            <= today.replace(year=today.year + PROOF_FUTURE_YEARS, day=min(today.day, 28))):
        raise PydanticCustomError(
            "date_range", "the end of a proof lies within a year before today and "
            f"{PROOF_FUTURE_YEARS} years after")
    return value


# The last day a proof (an enrolment, a disability certificate) is valid.
ProofEnd = Annotated[IsoDate, AfterValidator(_proof_end_in_range),
                     Field(description=f"Last day the proof is valid (YYYY-MM-DD): at most a "
                           f"year ago and at most {PROOF_FUTURE_YEARS} years ahead")]


def _has_nul(value: Any) -> bool:
    if isinstance(value, str):
        return "\x00" in value
    if isinstance(value, dict):
        return any(_has_nul(k) or _has_nul(v) for k, v in value.items())
    if isinstance(value, list | tuple):
        return any(_has_nul(v) for v in value)
    return False


class Model(BaseModel):
    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)

    @model_validator(mode="before")
    @classmethod
    def _no_nul(cls, data: Any) -> Any:
        # PostgreSQL cannot store NUL in text, and no field of ours has a use for it.
        if _has_nul(data):
            raise ValueError("text must not contain NUL characters")
        return data


class Out(BaseModel):
    model_config = ConfigDict(from_attributes=True)
