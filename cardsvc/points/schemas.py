"""What the points and reward routes take and answer."""

from __future__ import annotations

import datetime as dt
from typing import Annotated

from pydantic import Field

from cardsvc.schemas_common import WHOLE, IdField, Integer, Model, Out


class EntryOut(Out):
    id: int
    kind: str
    points: int
    expires_on: dt.date | None
    reference: str
    note: str | None
    created_at: dt.datetime


class PointsOut(Model):
    cardholder_id: int
    balance: int
    expiring_points: int = Field(description="Points that expire next unless used")
    expiring_on: dt.date | None
    entries: list[EntryOut]


class RewardCreate(Model):
    name: str = Field(min_length=2, max_length=100, examples=["金門縣民環保袋"])
    points: Integer = Field(gt=0, le=100_000)
    stock: Integer = Field(ge=0, le=1_000_000)


class RewardUpdate(Model):
    add_stock: Annotated[int, Field(ge=-1_000_000, le=1_000_000), WHOLE] | None = None
    points: Annotated[int, Field(gt=0, le=100_000), WHOLE] | None = None
    active: bool | None = Field(default=None, strict=True)


class RewardOut(Out):
    id: int
    name: str
    points: int
    stock: int
    active: bool


class RedemptionRequest(Model):
    item_id: IdField
    quantity: Integer = Field(default=1, ge=1, le=100)


class RedemptionOut(Model):
    redemption_id: int
    item_id: int
    quantity: int
    points: int
    balance: int
