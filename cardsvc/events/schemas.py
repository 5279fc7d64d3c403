"""What the event, check-in and draw routes take and answer."""

from __future__ import annotations

import datetime as dt
from typing import Annotated, Any, Literal

from pydantic import Field, model_validator

from cardsvc.schemas_common import WHOLE, Integer, IsoInstant, Model, Out

HEX16 = r"^[0-9A-Fa-f]{32}$"


class EventCreate(Model):
    title: str = Field(min_length=2, max_length=200, examples=["金門縣民健走活動"])
    department: str | None = Field(default=None, max_length=64, description=(
        "The organising department; an organiser's own department when left out (an organiser "
        "may not give another)"))
    venue: str = Field(min_length=2, max_length=200)
    starts_at: IsoInstant
    ends_at: IsoInstant
    checkin_opens: IsoInstant
    checkin_closes: IsoInstant
    points: Integer = Field(default=0, ge=0, le=1000, description="Points per check-in")
    capacity: Annotated[int, Field(ge=1, le=1_000_000), WHOLE] | None = None
    prizes: Integer = Field(default=0, ge=0, le=1000, description="Prizes drawn among the "
                            "tickets (0: no draw)")
    prize_description: str | None = Field(default=None, max_length=1000)

    @model_validator(mode="after")
    def _times(self) -> EventCreate:
        if self.ends_at <= self.starts_at:
            raise ValueError("the event ends after it starts")
        if self.checkin_closes <= self.checkin_opens:
            raise ValueError("check-in closes after it opens")
        if self.prizes and not self.prize_description:
            raise ValueError("say what the prizes are (prize_description)")
        return self


class EventOut(Out):
    id: int
    title: str
    department: str
    venue: str
    starts_at: dt.datetime
    ends_at: dt.datetime
    checkin_opens: dt.datetime
    checkin_closes: dt.datetime
    points: int
    capacity: int | None
    prizes: int
    prize_description: str | None
    status: str
    checkins: int
    published_at: dt.datetime | None
    commitment: str | None
    frozen_at: dt.datetime | None
    merkle_root: str | None
    drawn_at: dt.datetime | None


class ChipProof(Model):
    """What a station read from the card: its answer to the challenge made from the event
    and the station's nonce (see docs/events.md)."""

    method: Literal["chip"]
    uid: str = Field(pattern=r"^[0-9A-Fa-f]{8,20}$", description="The chip UID, hex")
    key_version: Integer = Field(ge=0, le=255)
    nonce: str = Field(pattern=HEX16, description="The station's random, 16 bytes hex")
    rnd_b: str = Field(pattern=HEX16, description="The card's random, 16 bytes hex")
    proof: str = Field(pattern=HEX16, description="The card's AES-CMAC proof, 16 bytes hex")


class PhoneProof(Model):
    method: Literal["phone"]
    token: str = Field(min_length=10, max_length=2000,
                       description="The mobile card's signed check-in token (KMCI1...)")


class CheckinRequest(Model):
    proof: Annotated[ChipProof | PhoneProof, Field(discriminator="method")]
    station: str = Field(min_length=1, max_length=64, examples=["gate-1"])
    tapped_at: IsoInstant | None = Field(default=None, description=(
        "When the card was tapped (an offline station's records); now when left out"))


class CheckinOut(Model):
    checkin_id: int
    event_id: int
    ticket: str
    method: str
    points: int
    tapped_at: dt.datetime
    repeated: bool = Field(description="This tap was stored before (an upload sent again)")


class CheckinBatch(Model):
    station: str = Field(min_length=1, max_length=64)
    records: list[CheckinRequest] = Field(min_length=1, max_length=1000, description=(
        "At most 1,000 taps per batch: a station sends more as several"))


class BatchResult(Model):
    index: int
    status: Literal["stored", "repeated", "refused"]
    ticket: str | None = None
    code: str | None = None
    detail: str | None = None


class BatchOut(Model):
    stored: int
    repeated: int
    refused: int
    results: list[BatchResult]


class DrawRequest(Model):
    public_value: str = Field(default="", max_length=200, description=(
        "A value nobody knew when the list froze (e.g. the next day's lottery numbers)"))


class WinnerOut(Model):
    rank: int
    ticket: str
    collected_at: dt.datetime | None


class ProofOut(Model):
    ticket: str
    merkle_root: str
    path: list[dict[str, str]]


class EventStatsRow(Model):
    key: str
    checkins: int | str
    residents: int | str


class ParticipationOut(Model):
    by: str
    date_from: dt.date
    date_to: dt.date
    rows: list[EventStatsRow]
    suppressed_below: int


PublicRecord = dict[str, Any]
