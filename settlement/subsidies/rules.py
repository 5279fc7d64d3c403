"""The subsidy rules of a clearing window's rides, apart from the database: which programme
pays, and the misuse signals clearing reports (rides of one card too close together on two
vehicles; a companion riding without the 愛心 holder)."""

from __future__ import annotations

import itertools
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from cardsvc.config import SubsidyProgramme

COMPANION, DISABILITY = "companion", "disability"


def programme_for(programmes: Mapping[str, SubsidyProgramme], concession: str) -> str | None:
    """The programme that funds `concession` (settings allow at most one)."""
    for code, programme in programmes.items():
        if concession in programme.concessions:
            return code
    return None


@dataclass(frozen=True)
class RideFact:
    transaction_id: int
    card_id: int
    terminal_id: int  # the vehicle
    at: int  # Unix seconds, as the card recorded it
    concession: str


@dataclass(frozen=True)
class Signal:
    reason: str
    transaction_id: int
    card_id: int
    detail: str


def repeated_rides(rides: Iterable[RideFact], min_interval: int) -> list[Signal]:
    """A card riding again within `min_interval` seconds on another vehicle: one card in two
    places (lent, or cloned). The same vehicle is a transfer or a mistaken second tap."""
    out = []
    by_card: dict[int, list[RideFact]] = {}
    for r in rides:
        by_card.setdefault(r.card_id, []).append(r)
    for card_rides in by_card.values():
        card_rides.sort(key=lambda r: (r.at, r.transaction_id))
        for before, after in itertools.pairwise(card_rides):
            gap = after.at - before.at
            if gap < min_interval and after.terminal_id != before.terminal_id:
                out.append(Signal("ride_repeated", after.transaction_id, after.card_id,
                                  f"{gap} s after a ride on vehicle {before.terminal_id}, "
                                  f"now on vehicle {after.terminal_id}"))
    return out


def lone_companions(rides: Iterable[RideFact], tolerance: int) -> list[Signal]:
    """A companion card's ride with no 愛心 card ride on the same vehicle within `tolerance`
    seconds: the companion concession is for travelling with the holder."""
    rides = list(rides)
    holders_at: dict[int, list[int]] = {}
    for r in rides:
        if r.concession == DISABILITY:
            holders_at.setdefault(r.terminal_id, []).append(r.at)
    out = []
    for r in rides:
        if r.concession != COMPANION:
            continue
        if not any(abs(t - r.at) <= tolerance for t in holders_at.get(r.terminal_id, [])):
            out.append(Signal("companion_alone", r.transaction_id, r.card_id,
                              f"no 愛心 card rode vehicle {r.terminal_id} within "
                              f"{tolerance} s"))
    return out
