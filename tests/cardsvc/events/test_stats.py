"""Participation statistics: check-ins by event, department, month, township and age band;
a cell of fewer than five residents shows "<5"; CSV and an SVG chart."""

from __future__ import annotations

import datetime as dt

from cardsvc.context import TAIPEI
from tests.support.api import Api
from tests.support.events import Venue


def test_small_cells_are_suppressed_in_every_format(venue: Venue, supervisor: Api) -> None:
    event = venue.event(prizes=0, prize_description=None)
    station = venue.station(event["id"])
    for _ in range(6):
        station.tap_card(venue.chip_resident(township="金湖鎮", age=30).reader())
    for _ in range(2):
        station.tap_card(venue.chip_resident(township="烈嶼鄉", age=70).reader())
    today = dt.datetime.now(TAIPEI).date().isoformat()
    q = {"date_from": today, "date_to": today}

    by_town = supervisor.ok("GET", "/stats/participation", by="township", **q)["rows"]
    assert by_town == [{"key": "烈嶼鄉", "checkins": "<5", "residents": "<5"},
                       {"key": "金湖鎮", "checkins": 6, "residents": 6}]
    by_age = supervisor.ok("GET", "/stats/participation", by="age_band", **q)["rows"]
    assert [(r["key"], r["checkins"]) for r in by_age] == [("25-44", 6), ("65+", "<5")]
    by_event = supervisor.ok("GET", "/stats/participation", by="event", **q)["rows"]
    assert by_event[0]["checkins"] == 8

    csv = supervisor.get("/stats/participation", by="township", format="csv", **q)
    assert csv.headers["content-type"].startswith("text/csv")
    assert csv.text.splitlines() == ["township,checkins,residents", '"烈嶼鄉",<5,<5',
                                     '"金湖鎮",6,6']
    svg = supervisor.get("/stats/participation", by="township", format="svg", **q)
    assert svg.headers["content-type"] == "image/svg+xml"
    assert "<svg" in svg.text and "(suppressed)" in svg.text and ">6</text>" in svg.text
    r = venue.clerk.get("/stats/participation", by="township", **q)
    assert r.status_code == 403
