from __future__ import annotations

import datetime as dt
from typing import Annotated

from pydantic import Field

from cardsvc.schemas_common import WHOLE, Integer, Model
from merchants.registry.models import MerchantCategory


class MerchantCreate(Model):
    legal_name: str = Field(min_length=1, max_length=200, examples=["金門縣自來水廠"])
    tax_id: str = Field(min_length=8, max_length=8, description="統一編號", examples=["53212539"])
    category: MerchantCategory
    fee_bps: Integer = Field(ge=0, le=10_000,
                         description="Fee in basis points of each sale; 0 for county venues")
    bank_account: str = Field(pattern=r"^[0-9][0-9-]{8,30}[0-9]$",
                              description="Settlement account, encrypted at rest",
                              examples=["004-12345678901"])


class MerchantUpdate(Model):
    legal_name: str | None = Field(default=None, min_length=1, max_length=200)
    fee_bps: Annotated[int, Field(ge=0, le=10_000), WHOLE] | None = None
    bank_account: str | None = Field(default=None, pattern=r"^[0-9][0-9-]{8,30}[0-9]$")
    status: str | None = Field(default=None, pattern=r"^(active|suspended)$")


class MerchantOut(Model):
    id: int
    legal_name: str
    tax_id: str
    category: str
    fee_bps: int
    bank_account_masked: str
    status: str
    created_at: dt.datetime


class TerminalCreate(Model):
    label: str = Field(min_length=1, max_length=100, examples=["Counter 1"])
    location: str = Field(default="", max_length=200, examples=["金城鎮民生路 1 號"])


class TerminalOut(Model):
    id: int
    merchant_id: int
    label: str
    location: str
    key_id: str
    status: str
    created_at: dt.datetime
    rotated_at: dt.datetime | None


class TerminalCredentials(TerminalOut):
    secret: str = Field(description="Shown once: the HMAC key (base64url) for signing requests")


class RevokeRequest(Model):
    reason: str
