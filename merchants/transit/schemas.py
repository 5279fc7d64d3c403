from __future__ import annotations

import datetime as dt
from typing import Annotated, Any, Literal

from pydantic import Field, model_validator

from cardsvc.schemas_common import WHOLE, Integer, Model
from merchants.pos.schemas import CardPurchase, TransactionOut
from merchants.transit.fares import MAX_FARE
from readers import protocol as p

ConcessionName = Literal["none", "senior", "disability", "companion", "student", "staff"]
ProductName = Literal["general", "senior", "student", "mobile", "staff"]
FareClassName = Literal["full", "student", "half", "free"]


class RouteFares(Model):
    full: Integer = Field(gt=0, le=MAX_FARE)
    student: Integer = Field(gt=0, le=MAX_FARE)
    half: Integer = Field(gt=0, le=MAX_FARE)

    @model_validator(mode="after")
    def _not_above_full(self) -> RouteFares:
        if self.student > self.full or self.half > self.full:
            raise ValueError("a concession fare is at most the full fare")
        return self


class FareTableCreate(Model):
    routes: dict[str, RouteFares] = Field(
        min_length=1, max_length=500,
        description="Route or zone (1-32 characters) → its fares in whole NT$",
        examples=[{"3": {"full": 30, "student": 15, "half": 15}}])
    classes: dict[ConcessionName, FareClassName] | None = Field(
        default=None, description="The fare class each concession rides at; the deployment's "
        "setting when left out")

    @model_validator(mode="after")
    def _route_names(self) -> FareTableCreate:
        for route in self.routes:
            if not 1 <= len(route) <= 32 or not route.isprintable():
                raise ValueError("a route is named by 1-32 printable characters")
        return self


class SignedFareTable(Model):
    """What a terminal fetches: the table exactly as signed, the signing key's id and the
    Ed25519 signature over the table's canonical JSON. Verify it with the backend's public
    key (`cardsvc transit public-keys`) before charging by it."""

    table: dict[str, Any]
    key_id: str
    signature: str


class FareTableOut(Model):
    version: int
    operator_id: int
    routes: dict[str, dict[str, int]]
    classes: dict[str, str]
    key_id: str
    created_by: str
    created_at: dt.datetime


class RideReport(CardPurchase):
    """A ride as the terminal read it from the card after its ride DEBIT: a chip debit's
    record (a free ride's amount is 0) with what the card certified beside it."""

    amount: Integer = Field(ge=0, le=MAX_FARE, description="The fare charged; 0 for a free "
                            "concession ride")
    full_fare: Integer = Field(gt=0, le=MAX_FARE)
    product: ProductName
    concession: ConcessionName
    route: str = Field(min_length=1, max_length=32)
    fare_table_version: Integer = Field(ge=1, le=2**31 - 1)
    profile_version: Annotated[int, Field(ge=0, le=2**31 - 1), WHOLE] | None = Field(
        default=None, description="The profile version the card carried at this ride "
                                  "(after any update the terminal wrote)")

    @model_validator(mode="after")
    def _fare(self) -> RideReport:
        if self.amount > self.full_fare:
            raise ValueError("a ride charges at most its full fare")
        return self

    def record(self, terminal_id: int) -> p.TxRecord:
        return p.TxRecord(p.TxType.RIDE, self.card_counter, self.amount, self.balance_after,
                          terminal_id, self.terminal_seq, self.time,
                          bytes.fromhex(self.certificate), p.PRODUCT_CODES[self.product],
                          p.CONCESSION_CODES[self.concession], self.full_fare)


class RideOut(TransactionOut):
    full_fare: int
    concession: str
    route: str


class ProfileUpdateOut(Model):
    id: int
    card_number: str
    chip_uid: str
    version: int
    sealed: str = Field(description="The update sealed for this card (hex, 28 bytes): send "
                        "it as WRITE PROFILE's data; only the card can open it")


class ProfileUpdatesOut(Model):
    since: int = Field(description="Send the last update's id as `since` next time")
    updates: list[ProfileUpdateOut]
    more: bool


class PublicKeysOut(Model):
    keys: dict[str, str] = Field(description="Key id → Ed25519 public key (base64, 32 raw "
                                 "bytes)")

