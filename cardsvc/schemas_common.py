"""Request/response building blocks shared by the core's domains."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import Path, Query
from pydantic import BaseModel, ConfigDict, Field, model_validator

from cardsvc.config import TOWNSHIPS

# Whole NT dollars. The upper bound keeps absurd values out long before BIGINT overflows.
Amount = Annotated[int, Field(gt=0, le=1_000_000, strict=True,
                              description="Whole NT dollars", examples=[500])]
Purpose = Annotated[str, Field(min_length=3, max_length=200,
                               description="Why personal data is read; kept in the audit trail",
                               examples=["counter service: card application"])]
Township = Annotated[str, Field(json_schema_extra={"enum": list(TOWNSHIPS)})]


MAX_ID = 2**62  # every id fits a signed 64-bit column with room to spare
IdField = Annotated[int, Field(gt=0, le=MAX_ID)]
IdPath = Annotated[int, Path(gt=0, le=MAX_ID)]
IdQuery = Annotated[int, Query(gt=0, le=MAX_ID)]


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
