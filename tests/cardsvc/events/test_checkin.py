"""Check-in at an event: the card proves its identity key through a station that holds no
key, a phone signs its token; one check-in per resident; each refusal with its code; an
offline station's upload counted once however often it is sent; points on check-in."""

from __future__ import annotations

import datetime as dt
import time
from pathlib import Path

from cardsvc.events import rules
from readers.memory import InProcessReader
from readers.session import CardSession
from simulators.card import VirtualCard
from tests.support import chipkit
from tests.support.events import Venue


def test_a_chip_checks_in_once_gets_a_ticket_and_points(venue: Venue) -> None:
    event = venue.event(points=15)
    alice = venue.chip_resident()
    station = venue.station(event["id"])

    first = station.tap_card(alice.reader())
    assert first.status == "checked_in" and rules.valid_ticket(first.ticket or "")
    assert first.points == 15
    again = station.tap_card(alice.reader())
    assert (again.status, again.code, again.ticket) == ("refused", "checkin_already",
                                                        first.ticket)
    points = venue.clerk.ok("GET", f"/cardholders/{alice.holder['id']}/points")
    assert points["balance"] == 15
    assert [e["kind"] for e in points["entries"]] == ["award"]
    assert venue.organiser.ok("GET", f"/events/{event['id']}")["checkins"] == 1


def test_a_cloned_uid_and_a_replayed_answer_do_not_check_in(venue: Venue,
                                                            tmp_path: Path) -> None:
    event = venue.event()
    alice = venue.chip_resident()
    station = venue.station(event["id"])
    # A clone: the same UID and card number, keys of the cloner's own.
    clone = VirtualCard(bytes.fromhex(alice.card["chip_uid"]), tmp_path / "clone.json")
    chipkit.issue(CardSession(InProcessReader(clone), chipkit.SYSTEM_ID), chipkit.Masters(),
                  alice.card["card_number"])
    refused = station.tap_card(InProcessReader(clone))
    assert (refused.status, refused.code) == ("refused", "checkin_card_not_genuine")

    # A genuine answer recorded for one challenge, replayed with another station nonce.
    proof, _ = station.read_card(alice.reader(), event["id"])
    replay = dict(proof, nonce=rules.new_nonce())
    r = venue.organiser.post(f"/events/{event['id']}/checkins",
                             {"proof": replay, "station": "gate-9"})
    assert (r.status_code, r.json()["code"]) == (409, "checkin_card_not_genuine")
    # The same answer against another event's challenge proves nothing there either.
    other = venue.event(title="另一場活動")
    r = venue.organiser.post(f"/events/{other['id']}/checkins",
                             {"proof": proof, "station": "gate-9"})
    assert r.json()["code"] == "checkin_card_not_genuine"
    assert venue.organiser.ok("GET", f"/events/{event['id']}")["checkins"] == 0


def test_refusals_have_stable_codes(venue: Venue) -> None:
    now = dt.datetime.now(dt.UTC)
    later = venue.event(checkin_opens=(now + dt.timedelta(hours=1)).isoformat(),
                        checkin_closes=(now + dt.timedelta(hours=2)).isoformat())
    small = venue.event(capacity=1, prizes=0, prize_description=None)
    alice, bob = venue.chip_resident(), venue.chip_resident()

    assert venue.station(later["id"]).tap_card(alice.reader()).code == \
        "checkin_outside_window"
    assert venue.station(small["id"]).tap_card(alice.reader()).status == "checked_in"
    assert venue.station(small["id"]).tap_card(bob.reader()).code == "checkin_event_full"

    venue.clerk.ok("POST", f"/cards/{bob.card['id']}/suspend", {"reason": "reported lost"})
    open_one = venue.event()
    assert venue.station(open_one["id"]).tap_card(bob.reader()).code == \
        "checkin_card_not_active"
    draft = venue.event(publish=False)
    r = venue.organiser.post(f"/events/{draft['id']}/checkins", {
        "proof": {"method": "phone", "token": "KMCI1.e30.AA"}, "station": "g"})
    assert r.json()["code"] == "event_wrong_state"


def test_a_phone_checks_in_with_a_fresh_token_signed_by_its_key(venue: Venue) -> None:
    event = venue.event()
    carol = venue.phone_resident()
    station = venue.station(event["id"])
    stale = station.scan_phone(carol.token(event["id"], at=time.time() - 3600))
    assert (stale.status, stale.code) == ("refused", "checkin_bad_token")
    wrong_event = station.scan_phone(carol.token(event["id"] + 1000))
    assert wrong_event.code == "checkin_bad_token"
    stranger = venue.phone_resident()
    forged = station.scan_phone(carol.token(event["id"]).rsplit(".", 1)[0] + "."
                                + stranger.token(event["id"]).rsplit(".", 1)[1])
    assert forged.code == "checkin_bad_token"

    ok = station.scan_phone(carol.token(event["id"]))
    assert ok.status == "checked_in" and ok.points == 10


def test_an_offline_stations_upload_sent_twice_counts_once(venue: Venue,
                                                           tmp_path: Path) -> None:
    event = venue.event(points=5)
    alice, bob = venue.chip_resident(), venue.chip_resident()
    state = tmp_path / "station.json"
    station = venue.station(event["id"], state=state)
    kept = [station.tap_card(alice.reader(), online=False),
            station.tap_card(bob.reader(), online=False),
            station.tap_card(alice.reader(), online=False)]  # alice taps twice
    assert [t.status for t in kept] == ["kept"] * 3
    batch = list(station.kept)

    # The station restarts (its state file keeps the taps) and uploads.
    out = venue.station(event["id"], state=state).upload()
    assert out is not None and (out["stored"], out["repeated"], out["refused"]) == (2, 0, 1)
    assert out["results"][2]["code"] == "checkin_already"
    # The tickets the station printed offline are the ones the server gave.
    assert [r["ticket"] for r in out["results"][:2]] == [kept[0].ticket, kept[1].ticket]

    # The same batch again (a retry after a lost answer): nothing new.
    r = venue.organiser.ok("POST", f"/events/{event['id']}/checkins/batch",
                           {"station": "gate-1", "records": batch})
    assert (r["stored"], r["repeated"]) == (0, 2)
    assert venue.organiser.ok("GET", f"/events/{event['id']}")["checkins"] == 2
    assert venue.clerk.ok("GET", f"/cardholders/{alice.holder['id']}/points")["balance"] == 5


def test_an_organiser_manages_only_their_departments_events(venue: Venue, admin) -> None:  # type: ignore[no-untyped-def]
    from tests.support.events import event_body
    r = venue.organiser.post("/events", event_body(department="教育處"))
    assert (r.status_code, r.json()["code"]) == (403, "event_other_department")
    theirs = admin.ok("POST", "/events", event_body(department="教育處"), status=201)
    r = venue.organiser.post(f"/events/{theirs['id']}/publish")
    assert r.json()["code"] == "event_other_department"
    assert theirs["id"] not in [e["id"] for e in venue.organiser.ok("GET", "/events")]


def test_a_station_checks_a_card_in_through_pcscd(venue: Venue, vpcd_slot, pcsc_reader) -> None:  # type: ignore[no-untyped-def]
    """The same tap through the real PC/SC stack: pcscd, the vpcd driver, pyscard."""
    event = venue.event()
    alice = venue.chip_resident()
    assert alice.chip is not None
    vpcd_slot.insert(VirtualCard(bytes.fromhex(alice.card["chip_uid"]), alice.chip))
    assert pcsc_reader.wait_for_card(10)
    tap = venue.station(event["id"], name="pcsc-gate").tap_card(pcsc_reader)
    assert tap.status == "checked_in" and rules.valid_ticket(tap.ticket or "")
    assert venue.organiser.ok("GET", f"/events/{event['id']}")["checkins"] == 1
