"""Request/response building blocks shared by the core's domains."""

from __future__ import annotations

import datetime as dt
import re
from typing import Annotated, Any
from zoneinfo import ZoneInfo

from fastapi import Path, Query
from pydantic import (
    AfterValidator,
    AwareDatetime,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    model_validator,
)
from pydantic_core import PydanticCustomError

from cardsvc.config import BUSINESS_TZ, TOWNSHIPS


def _json_integer(value: Any) -> Any:
    # JSON has one kind of number: 5 and 5.0 are the same integer (JSON Schema says so too,
    # and the API's schema is what clients are told). But true is not 1, and "5" is text.
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise PydanticCustomError("int_type", "Input should be a whole number")
    if isinstance(value, float):
        if not value.is_integer():
            raise PydanticCustomError("int_from_float", "Input should be a whole number")
        return int(value)
    return value


# A whole number as JSON writes it (lax pydantic would take true for 1 and "1" for 1). With
# constraints, put them before it, `Annotated[int, Field(ge=0), WHOLE]`: after it, they
# would not reach the JSON schema (it would read "gt", "le" instead of the keywords).
WHOLE = BeforeValidator(_json_integer)
Integer = Annotated[int, WHOLE]

# Whole NT dollars. The upper bound keeps absurd values out long before BIGINT overflows.
Amount = Annotated[int, Field(gt=0, le=1_000_000,
                              description="Whole NT dollars", examples=[500]), WHOLE]
Purpose = Annotated[str, Field(min_length=3, max_length=200,
                               description="Why personal data is read; kept in the audit trail",
                               examples=["counter service: card application"])]
Township = Annotated[str, Field(json_schema_extra={"enum": list(TOWNSHIPS)})]


MAX_ID = 2**62  # every id fits a signed 64-bit column with room to spare
IdField = Annotated[int, Field(gt=0, le=MAX_ID), WHOLE]
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


def _iso_instant_only(value: Any) -> Any:
    # Lax parsing would read 0 as the epoch: an instant in a request is ISO 8601 text with
    # its offset (AwareDatetime refuses one without).
    if not isinstance(value, str | dt.datetime):
        raise PydanticCustomError("datetime_type", "a time is written like "
                                  "2026-12-06T09:30:00+08:00")
    return value


IsoInstant = Annotated[AwareDatetime, BeforeValidator(_iso_instant_only)]


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


# What `Model` trims from text before checking it: Unicode White_Space (pydantic trims with
# Rust's `str::trim`; Python's \s would also count U+001C-U+001F, which it keeps).
_WS = "\t\n\x0b\x0c\r \x85\xa0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000"
_SPACE, _SOLID, _ANY = f"[{_WS}]", f"[^{_WS}\x00]", "[^\x00]"


def text_pattern(min_length: int = 0, max_length: int | None = None) -> str:
    """A JSON-schema pattern for what `Model` takes as text: no NUL character, and
    `min_length` to `max_length` characters once the surrounding white space is trimmed."""
    low = max(min_length, 1)
    top = "" if max_length is None else str(max_length - 2)
    if max_length == 1:
        core = _SOLID
    elif low == 1:
        core = f"{_SOLID}(?:{_ANY}{{0,{top}}}{_SOLID})?"
    else:
        core = f"{_SOLID}{_ANY}{{{low - 2},{top}}}{_SOLID}"
    if min_length <= 0:
        core = f"(?:{core})?"
    return f"^{_SPACE}*{core}{_SPACE}*$"


def _state_text_rules(node: Any) -> None:
    if not isinstance(node, dict):
        return
    for key in ("anyOf", "oneOf", "allOf"):
        for sub in node.get(key, ()):
            _state_text_rules(sub)
    _state_text_rules(node.get("items"))
    if node.get("type") != "string" or any(
            k in node for k in ("format", "enum", "const", "contentMediaType")):
        return
    own = node.get("pattern")
    if own is not None:
        # The field's own pattern is matched after trimming too.
        inner = own.removeprefix("^").removesuffix("$")
        node["pattern"] = f"^{_SPACE}*(?:{inner}){_SPACE}*$"
        node.pop("minLength", None)
        node.pop("maxLength", None)
        return
    node["pattern"] = text_pattern(int(node.pop("minLength", 0)), node.pop("maxLength", None))


def _schema_states_the_rules(schema: dict[str, Any]) -> None:
    # Text is trimmed before its length is checked, and NUL is refused: say so, so that a
    # request the schema calls valid is one this API takes.
    for prop in schema.get("properties", {}).values():
        _state_text_rules(prop)


class Model(BaseModel):
    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True,
                              json_schema_extra=_schema_states_the_rules)

    @model_validator(mode="before")
    @classmethod
    def _no_nul(cls, data: Any) -> Any:
        # PostgreSQL cannot store NUL in text, and no field of ours has a use for it.
        if _has_nul(data):
            raise ValueError("text must not contain NUL characters")
        return data


class Out(BaseModel):
    model_config = ConfigDict(from_attributes=True)
