from __future__ import annotations

import datetime as dt

from pydantic import Field

from cardsvc.schemas_common import IdField, Model


class CardPurchase(Model):
    """What the terminal read from the card after its DEBIT."""

    card_number: str = Field(pattern=r"^[0-9]{16}$")
    chip_uid: str = Field(pattern=r"^[0-9A-Fa-f]{8,20}$")
    amount: int = Field(gt=0, le=1_000_000, strict=True)
    card_counter: int = Field(ge=1, le=0xFFFFFF, strict=True)
    balance_after: int = Field(ge=0, le=1_000_000, strict=True)
    terminal_seq: int = Field(ge=0, le=0xFFFFFFFF, strict=True)
    time: int = Field(ge=0, le=0xFFFFFFFF, strict=True, description="Unix seconds, as the card "
                      "recorded it")
    certificate: str = Field(pattern=r"^[0-9A-Fa-f]{16}$")


class RefundRequest(Model):
    original_transaction_id: IdField
    amount: int = Field(gt=0, le=1_000_000, strict=True)


class VoidRequest(Model):
    transaction_id: IdField


class TransactionOut(Model):
    transaction_id: int
    kind: str
    status: str
    reason: str | None
    amount: int
    refunded: int
    card_number: str
    terminal_id: int
    merchant_id: int
    original_transaction_id: int | None
    created_at: dt.datetime
    purse_balance: int | None = Field(
        default=None, description="The card's balance as the backend now knows it")


class HotlistEntryOut(Model):
    version: int
    card_number: str
    action: str
    reason: str


class HotlistOut(Model):
    version: int = Field(description="Send this as `since` next time")
    entries: list[HotlistEntryOut]
    more: bool = Field(description="More entries follow: ask again with since=version")
