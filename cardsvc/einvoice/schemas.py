from __future__ import annotations

import datetime as dt

from pydantic import Field

from cardsvc.schemas_common import IdField, Integer, IsoDate, Model

INVOICE_NUMBER = r"^[A-Z]{2}[0-9]{8}$"
TAX_ID = r"^[0-9]{8}$"


class InvoiceReport(Model):
    """An invoice a terminal issued for one of its purchases, onto the card's carrier."""

    transaction_id: IdField = Field(description="The purchase (card or QR) it was issued for")
    invoice_number: str = Field(pattern=INVOICE_NUMBER, examples=["AB12345678"])
    invoice_date: IsoDate = Field(description="As printed on the invoice (Asia/Taipei day)")
    random_code: str = Field(pattern=r"^[0-9]{4}$", examples=["1234"])
    amount: Integer = Field(gt=0, le=1_000_000, description="The total, whole NT dollars")
    seller_tax_id: str = Field(pattern=TAX_ID, description="The merchant's 統一編號")
    buyer_tax_id: str | None = Field(default=None, pattern=TAX_ID,
                                     description="A business buyer's 統一編號 (never wins)")
    donation_code: str | None = Field(default=None, pattern=r"^[0-9]{3,7}$",
                                      description="NPOBAN code of a charity the invoice is "
                                      "donated to")
    after_the_fact: bool = Field(default=False, strict=True, description="補開: issued later")


class InvoiceVoid(Model):
    invoice_number: str = Field(pattern=INVOICE_NUMBER)
    invoice_date: IsoDate
    reason: str = Field(min_length=3, max_length=200)


class AllowanceRequest(Model):
    invoice_number: str = Field(pattern=INVOICE_NUMBER)
    invoice_date: IsoDate
    amount: Integer = Field(gt=0, le=1_000_000)
    reason: str = Field(min_length=3, max_length=200)


class InvoiceOut(Model):
    id: int
    number: str
    period: int
    invoice_date: dt.date
    amount: int
    allowances: int
    status: str
    donated: bool
    seller_tax_id: str
    carrier: str = Field(description="The carrier's visible id (the card number)")


class BindingRequest(Model):
    mobile_barcode: str = Field(pattern=r"^/[0-9A-Z.+\-]{7}$", examples=["/ABC+123"],
                                description="The resident's mobile barcode carrier")


class SignedBinding(Model):
    """歸戶 from the resident's phone: signed with the mobile card's own key."""

    card_number: str = Field(pattern=r"^[0-9]{16}$", description="The mobile card")
    mobile_barcode: str = Field(pattern=r"^/[0-9A-Z.+\-]{7}$", examples=["/ABC+123"])
    issued_at: Integer = Field(ge=0, le=2**40, description="Unix seconds when the phone "
                               "signed it (accepted within two minutes)")
    signature: str = Field(pattern=r"^[A-Za-z0-9_-]{40,200}$", description="base64url of "
                           "the phone's signature over "
                           "KMBIND1|<card_number>|<mobile_barcode>|<issued_at>")


class SignedRead(Model):
    """The resident's app asking for its own invoices: signed with the mobile card's key."""

    card_number: str = Field(pattern=r"^[0-9]{16}$", description="The mobile card")
    issued_at: Integer = Field(ge=0, le=2**40, description="Unix seconds when the phone "
                               "signed it (accepted within two minutes)")
    period: int | None = Field(default=None, ge=10002, le=99912)
    signature: str = Field(pattern=r"^[A-Za-z0-9_-]{40,200}$", description="base64url of "
                           "the phone's signature over KMINV1|<card_number>|<issued_at>")


class BindingOut(Model):
    carrier: str
    mobile_barcode: str
    bound_at: dt.datetime
    bound_by: str
    unbound_at: dt.datetime | None


class WinningOut(Model):
    period: int
    invoice_number: str = Field(description="Donated wins show the last three digits masked")
    tier: str
    tier_name: str
    amount: int
    income_tax: int
    stamp_duty: int
    net: int
    donated: bool
    claim_from: dt.date
    claim_until: dt.date


class ResidentInvoices(Model):
    cardholder_id: int
    invoices: list[InvoiceOut]
    winnings: list[WinningOut]


class PaperCheck(Model):
    period: int | None = Field(default=None, ge=10002, le=99912,
                               description="yyyMM (ROC year, even month); with numbers")
    numbers: list[str] = Field(default_factory=list, max_length=100)
    qr: str | None = Field(default=None, min_length=77, max_length=500,
                           description="The text of the proof's left QR code")


class PaperResult(Model):
    period: int
    number: str
    tier: str | None
    tier_name: str | None
    amount: int
    note: str


class TierLine(Model):
    tier: str
    tier_name: str
    winners: int
    amount: int
    donated: int


class PeriodReport(Model):
    period: int
    label: str
    checked_at: dt.datetime | None
    invoices: int
    winners: int
    amount: int
    tiers: list[TierLine]
    exclusions: dict[str, int]


class CheckOut(Model):
    period: int
    invoices: int
    winners: int
    amount: int
    exclusions: dict[str, int]
    notified: int
