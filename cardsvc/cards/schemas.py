from __future__ import annotations

import datetime as dt
from typing import Literal

from pydantic import Field

from cardsvc.cards.models import Product
from cardsvc.schemas_common import Amount, IdField, Integer, Model, Out


class CardApplication(Model):
    cardholder_id: IdField
    product: Product
    device_id: str | None = Field(default=None, min_length=8, max_length=128,
                                  description="Mobile card only: the phone's device id")
    device_public_key: str | None = Field(
        default=None, max_length=4000,
        description="Mobile card only: the phone's P-256 or Ed25519 public key, PEM or "
                    "base64 DER (SubjectPublicKeyInfo)")
    counter: str | None = Field(default=None, max_length=32,
                                description="A registered desk (its cash drawer); default: the "
                                "configured counter")


class IssueRequest(Model):
    chip_uid: str | None = Field(
        default=None, max_length=32,
        description="For a chip personalised elsewhere (card bureau): its UID. Leave out to "
                    "personalise a blank card on the counter's reader.",
        examples=["04A1B2C3D4E5F6"])


class ReasonRequest(Model):
    reason: str = Field(min_length=3, max_length=500, examples=["resident reports card lost"])


class SuspendRequest(ReasonRequest):
    kind: Literal["lost", "stolen"] = "lost"


class ReplaceRequest(Model):
    reason: Literal["lost", "stolen", "damaged", "renewal", "product_change"]
    note: str = Field(default="", max_length=500)
    product: Product | None = Field(default=None,
                                    description="New product, e.g. general → senior at 65")
    chip_uid: str | None = Field(
        default=None, max_length=32,
        description="A bureau chip's UID; leave out to personalise a blank chip on the reader")
    device_id: str | None = Field(default=None, min_length=8, max_length=128)
    device_public_key: str | None = Field(default=None, max_length=4000)
    fee_payment: Literal["cash", "purse", "waived"] = "cash"
    counter: str | None = Field(default=None, max_length=32,
                                description="A registered desk (its cash drawer); default: the "
                                "configured counter")


class CloseRequest(ReasonRequest):
    counter: str | None = Field(default=None, max_length=32,
                                description="A registered desk (its cash drawer); default: the "
                                "configured counter")


class TopUpRequest(Model):
    amount: Amount
    counter: str | None = Field(default=None, max_length=32,
                                description="A registered desk (its cash drawer); default: the "
                                "configured counter")
    load_card: bool = Field(default=True, strict=True,
                            description="Chip cards: load the value onto the card on the "
                            "counter reader right away (else at the next tap)")


class CardLoadOut(Model):
    load_id: int
    amount: int
    status: str = Field(description="pending, delivered, review (the chip cannot show "
                        "whether it took the value: a supervisor resolves it), or refunded")
    card_balance: int | None = None
    card_counter: int | None = None
    recovered: bool = False


class LoadResolution(Model):
    outcome: Literal["on_chip", "refund"] = Field(
        description="on_chip: the value is on the chip (its balance or records were read); "
                    "refund: it is not, and the resident gets it back in cash")
    reason: str = Field(min_length=3, max_length=500,
                        examples=["terminal read: chip balance includes this load"])
    counter: str | None = Field(default=None, max_length=32,
                                description="Cash drawer of a refund (default counter)")


class LoadResolved(Model):
    load: CardLoadOut
    refund_cash: int = Field(description="Cash to pay out at the counter, whole NT dollars")
    transfer_id: int | None = None
    balance: int = Field(description="The purse's balance in the ledger afterwards")


class CertificateCheck(Model):
    tx_type: Literal["debit", "load"]
    counter: Integer = Field(ge=0, le=0xFFFFFF)
    amount: Integer = Field(ge=0, le=1_000_000)
    balance_after: Integer = Field(ge=0, le=1_000_000)
    terminal_id: Integer = Field(ge=0, le=0xFFFFFFFF)
    terminal_seq: Integer = Field(ge=0, le=0xFFFFFFFF)
    time: Integer = Field(ge=0, le=0xFFFFFFFF,
                      description="Unix seconds, as the card recorded")
    certificate: str = Field(pattern=r"^[0-9a-fA-F]{16}$")


class CertificateResult(Model):
    valid: bool


class ChargeRequest(Model):
    amount: Amount
    description: str = Field(min_length=3, max_length=200, examples=["card replacement fee"])


class CardOut(Out):
    id: int
    card_number: str
    cardholder_id: int
    product: str
    concession: str
    form: str
    status: str
    chip_uid: str | None
    device_id: str | None
    expires_on: dt.date
    concession_until: dt.date | None = Field(
        default=None, description="Last day of the concession; the card stays valid after it "
                                  "and then pays full fares")
    profile_version: int = Field(default=0, description="Version of the chip's concession "
                                 "profile (0: none written)")
    counter: str
    replaces_card_id: int | None
    applied_at: dt.datetime
    issued_at: dt.datetime | None
    closed_at: dt.datetime | None


class CardEventOut(Out):
    at: dt.datetime
    action: str
    from_status: str | None
    to_status: str
    actor: str
    reason: str


class PostingOut(Out):
    transfer_id: int
    kind: str
    amount: int
    balance_after: int
    at: dt.datetime
    memo: str


class PurseOut(Model):
    card_id: int
    card_number: str
    balance: int
    max_balance: int
    recent: list[PostingOut]


class MoneyResult(Model):
    transfer_id: int | None
    card_id: int
    card_number: str
    amount: int
    balance: int
    card_load_id: int | None = Field(
        default=None, description="For a chip purse: the load that carries this value to the "
        "chip (see card_loads)")
    card_loads: list[CardLoadOut] | None = None
    card_load_note: str | None = None


class ReplaceResult(Model):
    old_card: CardOut
    new_card: CardOut
    balance_moved: int
    fee: int
    fee_payment: str
    new_balance: int
    card_load_id: int | None = None
    card_loads: list[CardLoadOut] | None = None
    card_load_note: str | None = None


class CloseResult(Model):
    card: CardOut
    refund_cash: int = Field(description="Cash to pay out at the counter, whole NT dollars")


class EligibilityOut(Model):
    eligible: bool
    product: str
    concession: str | None = None
    expires_on: dt.date | None = None
    basis: str | None = None
    rule: str | None = None
    detail: str | None = None
