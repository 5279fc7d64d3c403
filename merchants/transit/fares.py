"""Fare tables and the fare rule, as a terminal runs them (no database; the backend runs the
same code when it checks a ride).

A fare table is an operator's routes (or zones), each with a fare per fare class (`full`,
`student`, `half`; `free` is 0), and the fare class each concession rides at. The backend
signs it (Ed25519 over its canonical JSON); a terminal refuses a table whose signature does
not verify with the backend's public key, and a table older than the one it holds.

The rule: a card without a concession, or whose concession ended before the ride's day (its
last day still counts), pays the full fare; otherwise the fare of its concession's class.
"""

from __future__ import annotations

import base64
import datetime as dt
import json
from dataclasses import dataclass
from typing import Any

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric import ed25519

from readers import protocol as p

FARE_CLASSES = ("full", "student", "half", "free")
PRICED_CLASSES = ("full", "student", "half")  # `free` is always 0
MAX_FARE = p.MAX_AMOUNT


class FareTableRejected(Exception):
    """A table a terminal must not charge by: unsigned, altered, malformed or outdated."""


@dataclass(frozen=True)
class FareTable:
    operator_id: int
    version: int
    routes: dict[str, dict[str, int]]  # route -> fare class -> NT$
    classes: dict[str, str]  # concession -> fare class

    def document(self) -> dict[str, Any]:
        return {"operator_id": self.operator_id, "version": self.version,
                "routes": self.routes, "classes": self.classes}


def check_document(doc: Any) -> FareTable:
    """A table's content, checked for what the fare rule relies on."""
    try:
        operator_id, version = int(doc["operator_id"]), int(doc["version"])
        routes, classes = doc["routes"], doc["classes"]
        if not isinstance(routes, dict) or not isinstance(classes, dict) or not routes:
            raise ValueError("routes and classes are objects; a table has a route")
        for route, fares in routes.items():
            if not isinstance(route, str) or not 1 <= len(route) <= 32:
                raise ValueError("a route is named by 1-32 characters")
            if set(fares) != set(PRICED_CLASSES):
                raise ValueError(f"route {route}: give exactly the fares {PRICED_CLASSES}")
            for klass, fare in fares.items():
                if type(fare) is not int or not 0 < fare <= MAX_FARE:
                    raise ValueError(f"route {route}: the {klass} fare must be a whole "
                                     f"number of NT$ from 1 to {MAX_FARE}")
            if not fares["half"] <= fares["full"] or not fares["student"] <= fares["full"]:
                raise ValueError(f"route {route}: a concession fare is at most the full fare")
        if set(classes) != set(p.CONCESSION_CODES):
            raise ValueError(f"classes: give the fare class of every concession "
                             f"{sorted(p.CONCESSION_CODES)}")
        if any(c not in FARE_CLASSES for c in classes.values()) or classes["none"] != "full":
            raise ValueError(f"classes: each is one of {FARE_CLASSES}; `none` rides at full")
    except (KeyError, TypeError, ValueError, AttributeError) as exc:
        raise FareTableRejected(f"not a fare table: {exc}") from None
    return FareTable(operator_id, version, {r: dict(f) for r, f in routes.items()},
                     dict(classes))


def canonical(doc: dict[str, Any]) -> bytes:
    return json.dumps(doc, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()


def verify(signed: dict[str, Any], public_keys: dict[str, str],
           operator_id: int | None = None, held_version: int = 0) -> FareTable:
    """The table of a signed envelope `{"table", "key_id", "signature"}`, if the backend's
    key (by id, base64 raw public key) signed exactly it; else FareTableRejected."""
    try:
        doc, kid, sig = signed["table"], signed["key_id"], signed["signature"]
        pub = public_keys[kid]
        ed25519.Ed25519PublicKey.from_public_bytes(base64.b64decode(pub)).verify(
            base64.b64decode(sig, validate=True), canonical(doc))
    except KeyError:
        raise FareTableRejected("the table names no signing key this terminal knows, or is "
                                "not signed") from None
    except (InvalidSignature, ValueError, TypeError):
        raise FareTableRejected("the table's signature does not verify: altered or not "
                                "from the backend") from None
    table = check_document(doc)
    if operator_id is not None and table.operator_id != operator_id:
        raise FareTableRejected(f"the table is operator {table.operator_id}'s, not this "
                                f"terminal's ({operator_id})")
    if table.version < held_version:
        raise FareTableRejected(f"table version {table.version} is older than the one held "
                                f"({held_version})")
    return table


@dataclass(frozen=True)
class FareChoice:
    fare: int  # what the card is charged
    full_fare: int
    fare_class: str
    concession: str  # the card's concession as it rides (its profile's)
    reason: str  # what the rider is told


def choose(table: FareTable, route: str, profile: p.CardProfile, day: dt.date) -> FareChoice:
    """The fare of a ride on `route` on `day` (Asia/Taipei) for a card with `profile`."""
    fares = table.routes.get(route)
    if fares is None:
        raise KeyError(f"route {route!r} is not in fare table version {table.version}")
    full = fares["full"]
    if profile.concession == "none":
        return FareChoice(full, full, "full", "none", "full fare")
    if not profile.valid_on(day):
        return FareChoice(full, full, "full", profile.concession,
                          f"{profile.concession} concession ended on {profile.ends_on}: "
                          "full fare")
    klass = table.classes.get(profile.concession, "full")
    fare = 0 if klass == "free" else fares[klass]
    return FareChoice(fare, full, klass, profile.concession,
                      f"{profile.concession} concession: {klass} fare")
