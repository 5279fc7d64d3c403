"""Rides end to end: a validator on a bus verifies the signed fare table, reads each card's
concession profile, writes a pending profile update at the tap, charges the fare and reports
the ride; the backend checks the certificate, which covers product, concession and fares."""

from __future__ import annotations

import copy
import datetime as dt

import pytest
from sqlalchemy import select

from cardsvc.audit.models import AuditEvent
from cardsvc.cards.models import ProfileUpdate
from merchants.pos.models import PosTransaction
from merchants.transit.fares import FareTableRejected
from merchants.transit.models import Ride
from simulators.pos import TerminalRefusal
from tests.support import factories as f
from tests.support.transit import Depot, today


def purse(depot: Depot, card: dict) -> int:  # type: ignore[type-arg]
    return depot.clerk.ok("GET", f"/cards/{card['id']}/purse")["balance"]  # type: ignore[no-any-return]


def test_senior_free_student_fare_general_full(depot: Depot) -> None:
    senior = depot.card("senior", age=72)
    student = depot.card("student", age=16,
                         enrolment_until=today() + dt.timedelta(days=200))
    general = depot.card("general")
    staff = depot.card("staff", employment_until=today() + dt.timedelta(days=200))
    rides = {name: depot.ride(card) for name, card in
             (("senior", senior), ("student", student), ("general", general),
              ("staff", staff))}
    assert {n: (r.status, r.fare, r.full_fare) for n, r in rides.items()} == {
        "senior": ("accepted", 0, 30), "student": ("accepted", 15, 30),
        "general": ("accepted", 30, 30), "staff": ("accepted", 30, 30)}
    assert rides["senior"].message == "senior concession: free fare"
    assert (purse(depot, senior), purse(depot, student), purse(depot, general)) == (
        500, 485, 470)
    # The free ride is a record all the same: NT$0 with its full fare beside it.
    with depot.rt.sessions() as db:
        row = db.get(Ride, rides["senior"].response["transaction_id"])
        tx = db.get(PosTransaction, row.transaction_id)
    assert (row.fare, row.full_fare, row.concession, row.product) == (0, 30, "senior",
                                                                      "senior")
    assert (tx.kind, tx.status, tx.amount, tx.transfer_id) == ("ride", "accepted", 0, None)


def test_enrolment_ended_yesterday_pays_full_and_is_told_why(depot: Depot) -> None:
    """The school reports the student left: the concession's end moves to yesterday, the
    validator writes the new profile at the next tap, charges the full fare and says why."""
    student = depot.card("student", age=17, enrolment_until=today() + dt.timedelta(days=60))
    assert depot.ride(student).fare == 15
    yesterday = today() - dt.timedelta(days=1)
    depot.clerk.ok("PATCH", f"/cardholders/{student['_holder']['id']}/enrolments/"
                   f"{student['enrolment']['id']}",
                   {"valid_until": yesterday.isoformat(), "note": "left school"})
    assert depot.buses[1].refresh_profile_updates() == 1
    with depot.rt.sessions() as db:  # which validator was told which card's concession
        told = db.scalar(select(AuditEvent).where(
            AuditEvent.action == "transit.profile_updates_disclosed"))
    assert told is not None and told.target_id == str(depot.buses[1].terminal_id)
    ride = depot.ride(student, bus=1)
    assert ride.profile_written and (ride.fare, ride.full_fare) == (30, 30)
    assert ride.message == f"student concession ended on {yesterday}: full fare"
    with depot.rt.sessions() as db:
        u = db.scalar(select(ProfileUpdate).where(ProfileUpdate.card_id == student["id"]))
    assert u is not None and (u.status, u.delivered_by) == (
        "delivered", f"terminal:{depot.buses[1].terminal_id}")
    # Delivered: the other bus is not sent it again, and the card rides on the new profile.
    assert depot.buses[0].refresh_profile_updates() == 0
    assert depot.ride(student, bus=0).fare == 30


def test_altered_ride_records_fail_their_certificate(depot: Depot) -> None:
    general = depot.card("general")
    ride = depot.ride(general)
    assert ride.record is not None
    bus = depot.buses[0]
    for change in ({"concession": "senior", "amount": 0}, {"full_fare": 40},
                   {"product": "senior"}, {"amount": 20}):
        forged = dict(ride.record, **change)
        r = bus.client.request("POST", "/pos/v1/rides", forged, idempotency_key=f.key())
        assert r.status_code == 422 and r.json()["code"] == "bad_certificate", change
    again = bus.client.request("POST", "/pos/v1/rides", ride.record, idempotency_key=f.key())
    assert again.status_code == 409 and again.json()["code"] == "replayed_certificate"
    assert purse(depot, general) == 470  # booked once


def test_a_full_fare_not_in_the_table_is_refused(depot: Depot) -> None:
    """A validator charging by a table the backend never signed: the card's certificate is
    genuine, the fare is not the operator's."""
    general = depot.card("general")
    bus = depot.buses[0]
    table = copy.deepcopy(bus.fare_table)
    assert table is not None
    bus.fare_table = dict(table, table=dict(table["table"], routes={
        "3": {"full": 25, "student": 10, "half": 10}}))
    bus.public_keys = {}  # the forger's validator skips the check: make `table` trust it
    with pytest.raises(FareTableRejected):
        depot.ride(general)
    bus.fare_table, bus.public_keys = table, depot.supervisor.ok(
        "GET", "/transit/public-keys")["keys"]
    assert depot.ride(general).status == "accepted"


def test_the_terminal_refuses_unsigned_or_altered_tables(depot: Depot) -> None:
    bus = depot.buses[0]
    held = bus.fare_table
    assert held is not None
    altered = copy.deepcopy(held)
    altered["table"]["routes"]["3"]["full"] = 3
    for bad in (altered, {"table": held["table"]}, dict(held, signature=held["signature"][::-1])):
        with pytest.raises(FareTableRejected):
            bus.accept_table(bad)
    assert bus.fare_table == held and bus.table.routes["3"]["full"] == 30
    depot.supervisor.ok("POST", f"/transit/operators/{depot.operator['id']}/fare-tables",
                        {"routes": {"3": {"full": 35, "student": 15, "half": 18}}},
                        status=201)
    assert bus.refresh_fares().version == 2
    with pytest.raises(FareTableRejected, match="older"):
        bus.accept_table(held)  # a replayed old table never replaces a newer one
    senior = depot.card("senior", age=70)
    assert (depot.ride(senior).full_fare, depot.ride(depot.card("general")).fare) == (35, 35)


def test_fare_tables_are_validated_and_kept_by_version(depot: Depot) -> None:
    op = depot.operator["id"]
    path = f"/transit/operators/{op}/fare-tables"
    bad = depot.supervisor.post(path, {"routes": {"3": {"full": 30, "student": 40,
                                                       "half": 15}}})
    assert bad.status_code == 422
    assert depot.supervisor.post(path, {"routes": {}}).status_code == 422
    assert depot.clerk.post(path, {"routes": {"3": {"full": 30, "student": 15,
                                                    "half": 15}}}).status_code == 403
    shop = depot.clerk.ok("POST", "/merchants", {
        "legal_name": "金城老街商店", "tax_id": "04595252", "category": "retail",
        "fee_bps": 150, "bank_account": "004-00011122233"}, status=201)
    r = depot.supervisor.post(f"/transit/operators/{shop['id']}/fare-tables",
                              {"routes": {"3": {"full": 30, "student": 15, "half": 15}}})
    assert r.status_code == 409 and r.json()["code"] == "not_transit_operator"
    versions = depot.clerk.ok("GET", path)
    assert [v["version"] for v in versions] == [1]
    assert versions[0]["classes"]["senior"] == "free"  # the deployment's setting


def test_only_transit_validators_get_profile_updates(depot: Depot) -> None:
    shop = depot.clerk.ok("POST", "/merchants", {
        "legal_name": "金城老街商店", "tax_id": "04595252", "category": "retail",
        "fee_bps": 150, "bank_account": "004-00011122233"}, status=201)
    t = depot.clerk.ok("POST", f"/merchants/{shop['id']}/terminals", {"label": "till"},
                       status=201)
    from merchants.pos.client import PosClient
    till = PosClient(depot.client, t["key_id"], t["secret"])
    for path in ("/pos/v1/profile-updates?since=0", "/pos/v1/fare-table"):
        r = till.request("GET", path)
        assert r.status_code == 409 and r.json()["code"] == "not_transit_operator"


def test_a_card_short_of_the_fare_is_refused_before_the_debit(depot: Depot) -> None:
    poor = depot.card("general", topup=20)
    with pytest.raises(TerminalRefusal) as exc:
        depot.ride(poor)
    assert exc.value.code == "insufficient_balance"
    assert purse(depot, poor) == 20


def test_rides_through_pcsc(depot: Depot, vpcd_slot, pcsc_reader) -> None:  # type: ignore[no-untyped-def]
    """The validator through the real PC/SC stack: the profile update written at the tap and
    the ride record certified, as over a real reader."""
    student = depot.card("student", age=17, enrolment_until=today() + dt.timedelta(days=60))
    depot.clerk.ok("PATCH", f"/cardholders/{student['_holder']['id']}/enrolments/"
                   f"{student['enrolment']['id']}",
                   {"valid_until": (today() - dt.timedelta(days=1)).isoformat()})
    bus = depot.buses[0]
    bus.refresh_profile_updates()
    vpcd_slot.insert(depot.chip(student))
    assert pcsc_reader.wait_for_card(5)
    ride = bus.ride(pcsc_reader)
    assert (ride.status, ride.fare, ride.profile_written) == ("accepted", 30, True)
    assert ride.message.startswith("student concession ended on")
