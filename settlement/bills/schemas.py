"""What the bill routes take and answer."""

from __future__ import annotations

import datetime as dt
from typing import Annotated, Any

from pydantic import Field

from cardsvc.schemas_common import WHOLE, IdField, Integer, Model
from merchants.pos.schemas import CardPurchase


class BillerCreate(Model):
    merchant_id: IdField
    code: str = Field(pattern=r"^[A-Z0-9_-]{2,16}$", examples=["KMWATER"])
    collection_code: str = Field(pattern=r"^[0-9A-Z]{3}$", examples=["KW1"],
                                 description="Printed in segment 1 of the biller's slips")
    grace_days: Integer = Field(default=0, ge=0, le=365,
                            description="Days after the due date a bill is still payable")


class BillerOut(Model):
    id: int
    merchant_id: int
    code: str
    collection_code: str
    grace_days: int


class ImportOut(Model):
    import_id: int
    rows: int
    amount: int
    duplicate: bool = Field(description="This exact file was imported before: nothing changed")


class BillOut(Model):
    id: int
    biller_id: int
    account_number: str
    bill_number: str
    period: str = Field(description="ROC YYMM")
    amount: int
    due_date: dt.date
    payer_name_masked: str
    status: str
    barcodes: list[str] = Field(description="Slip segments 1, 2 and 3 (Code 39)")


class SlipIn(Model):
    segment1: str = Field(max_length=40, examples=["151231KW1"])
    segment2: str = Field(max_length=40, examples=["WB00012345678901"])
    segment3: str = Field(max_length=40, examples=["151167000000350"])


class PayIn(Model):
    card_id: IdField
    amount: Annotated[int, Field(gt=0, le=999_999_999,
                                 description="If given, must be the bill's amount"),
                      WHOLE] | None = None
    channel: str = Field(default="counter", pattern="^(counter|online)$")


class OnlinePayIn(Model):
    token: str = Field(max_length=2000, description="The mobile card's payment token (KMQR1)")


class PosBillPayment(SlipIn, CardPurchase):
    """The slip's barcodes and what the terminal read from the card after debiting it for the
    bill's amount (as for a card-present purchase)."""


class CollectIn(SlipIn):
    amount: Integer = Field(gt=0, le=999_999_999)


class PaymentOut(Model):
    payment_id: int
    bill_id: int
    bill_number: str
    amount: int
    channel: str
    paid_at: dt.datetime
    receipt: str = Field(description="Signed receipt; its QR code is at "
                                     "/bills/{bill_id}/receipt.png")
    purse_balance: int | None = None


class ReconciliationOut(Model):
    matched: int
    missing: list[dict[str, Any]] = Field(description="Remitted, not confirmed by the biller")
    extra: list[dict[str, Any]] = Field(description="Confirmed by the biller, not remitted")
    amount_differs: list[dict[str, Any]]
    duplicate: bool = Field(description="This file was read before: nothing was added")


class ReceiptCheck(Model):
    """What a receipt check answers (the public endpoint's response)."""

    valid: bool
    reason: str
    bill_number: str | None = None
    amount: int | None = None
    paid_at: str | None = None
    biller: str | None = None
