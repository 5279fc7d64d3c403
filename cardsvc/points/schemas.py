"""What the points and reward routes take and answer."""

from __future__ import annotations

import datetime as dt

from pydantic import Field

from cardsvc.schemas_common import IdField, Integer, Model, Out


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
    add_stock: Integer | None = Field(default=None, ge=-1_000_000, le=1_000_000)
    points: Integer | None = Field(default=None, gt=0, le=100_000)
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
