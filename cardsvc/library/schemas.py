from __future__ import annotations

import datetime as dt
from typing import Any, Literal

from pydantic import Field, field_validator

from cardsvc.library.models import Ils
from cardsvc.library.records import CATEGORY_KEYS, OPTIONAL_FIELDS
from cardsvc.schemas_common import IdField, Model

OptionalField = Literal["name", "phone", "email", "township"]
_CODE = r"^[A-Z0-9][A-Z0-9_-]{1,15}$"
_BRANCH = r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,31}$"


def _category_map(value: dict[str, str]) -> dict[str, str]:
    unknown = sorted(set(value) - set(CATEGORY_KEYS))
    if unknown:
        raise ValueError(f"unknown category keys {', '.join(unknown)}; the keys are "
                         f"{', '.join(CATEGORY_KEYS)}")
    if "default" not in value:
        raise ValueError("the category map needs a 'default' category")
    for code in value.values():
        if not code or len(code) > 10 or not code.replace("_", "").replace("-", "").isalnum() \
                or not code.isascii():
            raise ValueError("a patron category code is 1-10 letters, digits, _ or -")
    return value


class LibraryCreate(Model):
    code: str = Field(pattern=_CODE, description="Short upper-case code, e.g. KMCCL",
                      examples=["KMCCL"])
    name: str = Field(min_length=1, max_length=100, examples=["金門縣文化局圖書館"])
    ils: Ils = Field(description="The library system it runs", examples=["koha"])
    categories: dict[str, str] = Field(
        description="Patron category by card product or concession (keys: "
        f"{', '.join(CATEGORY_KEYS)}); 'default' is required",
        examples=[{"general": "AD", "senior": "SR", "disability": "SR", "companion": "SR",
                   "student": "ST", "default": "AD"}])
    home_branch: str = Field(pattern=_BRANCH, examples=["KMCCL"])
    optional_fields: list[OptionalField] = Field(
        default_factory=list, max_length=len(OPTIONAL_FIELDS),
        description="Fields beyond the fixed record this library may receive, each only "
        "with the resident's consent")
    webhook_url: str | None = Field(default=None, max_length=500,
                                    pattern=r"^https?://[^\s]+$",
                                    examples=["https://koha.example.org/cardsvc-hook"])

    _cats = field_validator("categories")(_category_map)


class LibraryUpdate(Model):
    name: str | None = Field(default=None, min_length=1, max_length=100)
    categories: dict[str, str] | None = None
    home_branch: str | None = Field(default=None, pattern=_BRANCH)
    optional_fields: list[OptionalField] | None = Field(default=None,
                                                        max_length=len(OPTIONAL_FIELDS))
    webhook_url: str | None = Field(default=None, max_length=500, pattern=r"^https?://[^\s]+$")
    clear_webhook: bool = Field(default=False, strict=True,
                                description="Stop pushing changes (the library pulls)")
    active: bool | None = Field(default=None, strict=True)

    @field_validator("categories")
    @classmethod
    def _cats(cls, v: dict[str, str] | None) -> dict[str, str] | None:
        return None if v is None else _category_map(v)


class FeedState(Model):
    last_seq: int
    delivered_seq: int
    failures: int
    parked_at: dt.datetime | None
    next_attempt_at: dt.datetime | None
    last_error: str | None


class LibraryOut(Model):
    id: int
    code: str
    name: str
    ils: str
    categories: dict[str, str]
    home_branch: str
    optional_fields: list[str]
    webhook_url: str | None
    feed_key_id: str
    active: bool
    links: int = Field(description="Residents linked now")
    feed: FeedState


class LibraryCredentials(LibraryOut):
    feed_key: str | None = Field(description="Shown once: the key for pulling the feed and "
                                 "exports (HTTP Basic, user = feed_key_id)")
    webhook_secret: str | None = Field(description="Shown once: the webhook signing secret")


class SipLoginCreate(Model):
    username: str = Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]{2,63}$", examples=["kmccl-kiosk1"])
    password: str | None = Field(default=None, pattern=r"^[\x21-\x7b\x7d\x7e]{8,64}$",
                                 description="Printable ASCII without | (a SIP2 field "
                                 "separator); generated when omitted")
    expiry_field: str = Field(default="PA", pattern=r"^[A-Z]{2}$",
                              description="The field that carries the card's expiry in a 64 "
                              "(not one the answer already uses: AO AA AE BL CQ AF AY AZ)")
    encoding: Literal["utf-8", "big5"] = "utf-8"


    @field_validator("expiry_field")
    @classmethod
    def _free_field(cls, v: str) -> str:
        if v in ("AO", "AA", "AE", "BL", "CQ", "AF", "AY", "AZ"):
            raise ValueError(f"{v} is a field the 64 answer already uses")
        return v


class SipLoginOut(Model):
    id: int
    library_id: int
    username: str
    expiry_field: str
    encoding: str
    active: bool
    created_at: dt.datetime


class SipLoginCredentials(SipLoginOut):
    password: str = Field(description="Shown once")


class LinkCreate(Model):
    library_id: IdField
    shared_fields: list[OptionalField] = Field(
        default_factory=list, max_length=len(OPTIONAL_FIELDS),
        description="Optional fields the resident agrees to share with this library (each "
        "must be one the library may receive)")
    pin: str | None = Field(default=None, pattern=r"^[0-9]{4,8}$",
                            description="A patron PIN the resident chooses, checked by the "
                            "library's kiosks (SIP2); stored hashed")


class LinkOut(Model):
    id: int
    library_id: int
    library_code: str
    library_name: str
    cardholder_id: int
    patron_id: str
    shared_fields: list[str]
    has_pin: bool
    consented_at: dt.datetime
    consented_by: str
    unlinked_at: dt.datetime | None
    unlinked_by: str | None


class FeedEvent(Model):
    seq: int
    event_id: str
    kind: str
    patron_id: str
    record: dict[str, Any]
    created_at: dt.datetime


class FeedPage(Model):
    library: str
    events: list[FeedEvent]
    next_after: int = Field(description="Ask again with ?after= this")
    more: bool


class DiffLine(Model):
    patron_id: str | None
    card_number: str | None
    problem: str
    theirs: dict[str, Any] | None
    ours: dict[str, Any] | None


class DiffReport(Model):
    library: str
    compared: int
    differences: list[DiffLine]
