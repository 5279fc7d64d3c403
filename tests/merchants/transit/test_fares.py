"""The fare rule for every concession kind and edge, and the terminal's check of the signed
fare table (no database: what a validator runs)."""

from __future__ import annotations

import base64
import copy
import datetime as dt

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ed25519

from merchants.transit import fares
from readers import protocol as p

DAY = dt.date(2026, 12, 6)
KINMEN = {"none": "full", "senior": "free", "disability": "free", "companion": "free",
          "student": "student", "staff": "full"}
TABLE = fares.FareTable(7, 3, {"3": {"full": 30, "student": 15, "half": 15}}, KINMEN)


def profile(concession: str, ends: dt.date | None) -> p.CardProfile:
    return p.CardProfile(concession, ends, 1)


@pytest.mark.parametrize("concession,fare,klass", [
    ("senior", 0, "free"), ("disability", 0, "free"), ("companion", 0, "free"),
    ("student", 15, "student"), ("staff", 30, "full")])
def test_each_concession_rides_at_its_class(concession: str, fare: int, klass: str) -> None:
    choice = fares.choose(TABLE, "3", profile(concession, DAY + dt.timedelta(days=90)), DAY)
    assert (choice.fare, choice.full_fare, choice.fare_class) == (fare, 30, klass)


def test_no_concession_pays_full_fare() -> None:
    choice = fares.choose(TABLE, "3", p.NO_PROFILE, DAY)
    assert (choice.fare, choice.fare_class, choice.reason) == (30, "full", "full fare")


@pytest.mark.parametrize("concession", ["senior", "disability", "companion", "student",
                                        "staff"])
def test_concession_ending_today_still_holds(concession: str) -> None:
    choice = fares.choose(TABLE, "3", profile(concession, DAY), DAY)
    assert choice.fare_class == KINMEN[concession]


@pytest.mark.parametrize("concession", ["senior", "disability", "companion", "student"])
def test_concession_ended_yesterday_pays_full_and_says_why(concession: str) -> None:
    yesterday = DAY - dt.timedelta(days=1)
    choice = fares.choose(TABLE, "3", profile(concession, yesterday), DAY)
    assert (choice.fare, choice.fare_class) == (30, "full")
    assert choice.reason == f"{concession} concession ended on {yesterday}: full fare"


def test_half_fare_elsewhere_in_taiwan() -> None:
    half = fares.FareTable(7, 1, TABLE.routes, dict(KINMEN, senior="half", disability="half"))
    assert fares.choose(half, "3", profile("senior", None), DAY).fare == 15


def test_unknown_route_is_an_error() -> None:
    with pytest.raises(KeyError):
        fares.choose(TABLE, "99", p.NO_PROFILE, DAY)


# --- the signed table, as a terminal checks it ------------------------------------------------


def signer() -> tuple[ed25519.Ed25519PrivateKey, dict[str, str]]:
    key = ed25519.Ed25519PrivateKey.generate()
    pub = key.public_key().public_bytes(serialization.Encoding.Raw,
                                        serialization.PublicFormat.Raw)
    return key, {"s1": base64.b64encode(pub).decode()}


def envelope(key: ed25519.Ed25519PrivateKey, doc: dict, kid: str = "s1") -> dict:  # type: ignore[type-arg]
    return {"table": doc, "key_id": kid,
            "signature": base64.b64encode(key.sign(fares.canonical(doc))).decode()}


def test_a_signed_table_verifies() -> None:
    key, pub = signer()
    table = fares.verify(envelope(key, TABLE.document()), pub, operator_id=7)
    assert table == TABLE


def test_altered_unsigned_foreign_or_old_tables_are_refused() -> None:
    key, pub = signer()
    good = envelope(key, TABLE.document())
    altered = copy.deepcopy(good)
    altered["table"]["routes"]["3"]["full"] = 300  # a fare raised after signing
    unsigned = {"table": TABLE.document()}
    other_key, _ = signer()
    foreign = envelope(other_key, TABLE.document())
    bad_signature = dict(good, signature="!!not base64!!")
    for refused in (altered, unsigned, foreign, bad_signature,
                    dict(good, key_id="s9")):
        with pytest.raises(fares.FareTableRejected):
            fares.verify(refused, pub, operator_id=7)
    with pytest.raises(fares.FareTableRejected, match="operator"):
        fares.verify(good, pub, operator_id=8)  # another operator's table
    with pytest.raises(fares.FareTableRejected, match="older"):
        fares.verify(good, pub, operator_id=7, held_version=4)


def test_a_signed_but_malformed_table_is_refused() -> None:
    key, pub = signer()
    doc = TABLE.document()
    for broken in ({**doc, "routes": {"3": {"full": 30, "student": 45, "half": 15}}},
                   {**doc, "routes": {"3": {"full": 0, "student": 0, "half": 0}}},
                   {**doc, "classes": {**KINMEN, "none": "free"}},
                   {**doc, "classes": {"none": "full"}},
                   {**doc, "routes": {}}):
        with pytest.raises(fares.FareTableRejected):
            fares.verify(envelope(key, broken), pub)
