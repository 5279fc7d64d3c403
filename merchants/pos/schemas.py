from __future__ import annotations

import datetime as dt

from pydantic import Field

from cardsvc.schemas_common import IdField, Integer, IsoDate, Model


class CardPurchase(Model):
    """What the terminal read from the card after its DEBIT."""

    card_number: str = Field(pattern=r"^[0-9]{16}$")
    chip_uid: str = Field(pattern=r"^[0-9A-Fa-f]{8,20}$")
    amount: Integer = Field(gt=0, le=1_000_000)
    card_counter: Integer = Field(ge=1, le=0xFFFFFF)
    balance_after: Integer = Field(ge=0, le=1_000_000)
    terminal_seq: Integer = Field(ge=0, le=0xFFFFFFFF)
    time: Integer = Field(ge=0, le=0xFFFFFFFF, description="Unix seconds, as the card "
                      "recorded it")
    certificate: str = Field(pattern=r"^[0-9A-Fa-f]{16}$")


class RefundRequest(Model):
    original_transaction_id: IdField
    amount: Integer = Field(gt=0, le=1_000_000)


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


class QrPurchase(Model):
    token: str = Field(min_length=10, max_length=2000, description="The phone's KMQR1 token")
    amount: Integer = Field(gt=0, le=1_000_000)


class OfflineInvoice(Model):
    """The e-invoice the terminal issued for an offline record (cardsvc.einvoice)."""

    invoice_number: str = Field(pattern=r"^[A-Z]{2}[0-9]{8}$")
    invoice_date: IsoDate
    random_code: str = Field(pattern=r"^[0-9]{4}$")
    seller_tax_id: str = Field(pattern=r"^[0-9]{8}$")
    buyer_tax_id: str | None = Field(default=None, pattern=r"^[0-9]{8}$")
    donation_code: str | None = Field(default=None, pattern=r"^[0-9]{3,7}$")


class OfflineRecord(CardPurchase):
    invoice: OfflineInvoice | None = Field(default=None, description="The invoice issued "
                                           "for this purchase, onto the card's carrier")


class OfflineBatch(Model):
    batch_ref: str = Field(pattern=r"^[A-Za-z0-9_.:-]{1,64}$",
                           description="The terminal's own name for this batch")
    records: list[OfflineRecord] = Field(min_length=1, max_length=1000)


class InvoiceRefused(Model):
    terminal_seq: int
    code: str
    detail: str


class BatchOut(Model):
    batch_id: int
    batch_ref: str
    records: int
    duplicate: bool = Field(description="This batch had been received before; nothing changed")
    invoices: int = Field(default=0, description="Invoices put onto cards' carriers")
    invoices_refused: list[InvoiceRefused] = Field(
        default_factory=list, description="Invoices refused (the records themselves stand)")


class PingOut(Model):
    terminal_id: int
    merchant_id: int
    server_time: dt.datetime
