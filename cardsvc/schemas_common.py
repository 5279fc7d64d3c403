"""Request/response building blocks shared by the core's domains."""

from __future__ import annotations

from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field

from cardsvc.config import TOWNSHIPS

# Whole NT dollars. The upper bound keeps absurd values out long before BIGINT overflows.
Amount = Annotated[int, Field(gt=0, le=1_000_000, strict=True,
                              description="Whole NT dollars", examples=[500])]
Purpose = Annotated[str, Field(min_length=3, max_length=200,
                               description="Why personal data is read; kept in the audit trail",
                               examples=["counter service: card application"])]
Township = Annotated[str, Field(json_schema_extra={"enum": list(TOWNSHIPS)})]


class Model(BaseModel):
    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)


class Out(BaseModel):
    model_config = ConfigDict(from_attributes=True)
