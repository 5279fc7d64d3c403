"""The concession profile on the chip and the ride record: written only with the backend's
authorisation, never rolled back, certified with the fare, and complete or absent after a
tear at any APDU."""

from __future__ import annotations

import dataclasses
import datetime as dt

import pytest

from readers import profiles
from readers import protocol as p
from readers.errors import CardRemoved, SecurityStatusNotSatisfied, WrongData
from readers.memory import InProcessReader
from readers.protocol import KeyPurpose
from readers.session import CardSession, personalise
from simulators.card import TearPlan, VirtualCard
from tests.support.chipkit import CARD_NUMBER, SYSTEM_ID, Masters, blank_card, load

STUDENT = p.CardProfile("student", dt.date(2027, 7, 31), 1)


def issued(tmp_path, masters: Masters, profile: p.CardProfile | None = STUDENT,  # type: ignore[no-untyped-def]
           product: str = "student") -> tuple[VirtualCard, CardSession]:
    card = blank_card(tmp_path)
    s = CardSession(InProcessReader(card), SYSTEM_ID)
    sel = s.select()
    personalise(s, p.CardInfo(CARD_NUMBER, product, dt.date(2031, 1, 31)),
                masters.card_keys(sel.uid), profile=profile)
    return card, s


def debit_session(s: CardSession, masters: Masters) -> p.CardProfile:
    s.select()
    return s.authenticate_with_master(KeyPurpose.DEBIT, masters.keys[KeyPurpose.DEBIT]).profile


def test_profile_written_at_personalisation_comes_with_authentication(tmp_path) -> None:  # type: ignore[no-untyped-def]
    masters = Masters()
    _card, s = issued(tmp_path, masters)
    assert debit_session(s, masters) == STUDENT
    assert s.read_profile() == ("student", STUDENT)
    assert STUDENT.valid_on(dt.date(2027, 7, 31))  # its last day included
    assert not STUDENT.valid_on(dt.date(2027, 8, 1))


def test_card_without_concession_reads_none(tmp_path) -> None:  # type: ignore[no-untyped-def]
    masters = Masters()
    _card, s = issued(tmp_path, masters, profile=None, product="general")
    profile = debit_session(s, masters)
    assert profile == p.NO_PROFILE and not profile.valid_on(dt.date(2026, 1, 1))


def test_profile_update_needs_the_backends_seal(tmp_path) -> None:  # type: ignore[no-untyped-def]
    masters = Masters()
    card, s = issued(tmp_path, masters)
    newer = p.CardProfile("student", dt.date(2028, 7, 31), 2)
    sealed = masters.seal_profile(card.uid, CARD_NUMBER, newer)
    # What a terminal carries says nothing of the concession or its end.
    assert newer.encode() not in sealed and len(sealed) == p.SEALED_PROFILE_LEN
    debit_session(s, masters)  # a terminal's session: it holds the debit key only
    own_key = bytes(16)  # a terminal sealing with a key of its own
    with pytest.raises(SecurityStatusNotSatisfied):
        s.write_profile(profiles.seal(own_key, card.uid, CARD_NUMBER, newer))
    for at in (4, 12, 24):  # a changed byte anywhere: version, ciphertext, MAC
        debit_session(s, masters)
        tampered = bytearray(sealed)
        tampered[at] ^= 0x01
        with pytest.raises(SecurityStatusNotSatisfied):
            s.write_profile(bytes(tampered))
    debit_session(s, masters)
    other = masters.seal_profile(card.uid, "8902100000000099", newer)  # another card's
    with pytest.raises(SecurityStatusNotSatisfied):
        s.write_profile(other)
    debit_session(s, masters)
    assert s.write_profile(sealed) == (newer, False)
    assert s.write_profile(sealed) == (newer, True)  # a retry changes nothing
    debit_session(s, masters)
    with pytest.raises(WrongData):  # an old update never rolls the profile back
        s.write_profile(masters.seal_profile(card.uid, CARD_NUMBER, STUDENT))
    assert debit_session(s, masters) == newer


PROFILE_APDUS = 4  # SELECT, AUTHENTICATE (2), WRITE PROFILE
PROFILE_CASES = [(i, stage) for i in range(1, PROFILE_APDUS + 1)
                 for stage in ("before", "after")] + [(PROFILE_APDUS, "journaled")]


@pytest.mark.parametrize("apdu_index,stage", PROFILE_CASES)
def test_torn_profile_update_recovers(tmp_path, apdu_index: int, stage: str) -> None:  # type: ignore[no-untyped-def]
    masters = Masters()
    card, _s = issued(tmp_path, masters)
    ended = p.CardProfile("none", None, 2)  # the enrolment ended: the concession goes
    auth = masters.seal_profile(card.uid, CARD_NUMBER, ended)
    card.arm(TearPlan(apdu_index, stage))
    s = CardSession(InProcessReader(card), SYSTEM_ID)
    with pytest.raises(CardRemoved):
        debit_session(s, masters)
        s.write_profile(auth)
    card = VirtualCard(card.uid, card.state_path)  # all that is left is what is on disk
    assert p.CardProfile.decode(bytes.fromhex(card.state["profile"])) in (STUDENT, ended) \
        or card.state["pending"] is not None
    s = CardSession(InProcessReader(card), SYSTEM_ID)
    before = debit_session(s, masters)  # power-on rolled a journaled update forward
    assert before in (STUDENT, ended)
    profile, recovered = s.write_profile(auth)  # delivered again at the next tap
    assert profile == ended and recovered == (before == ended)
    assert debit_session(s, masters) == ended


def test_ride_record_certifies_product_concession_and_fare(tmp_path) -> None:  # type: ignore[no-untyped-def]
    masters = Masters()
    card, s = issued(tmp_path, masters, p.CardProfile("senior", None, 1), "senior")
    load(s, masters, 100, load_id=1)
    debit_session(s, masters)
    free = s.ride(0, 30, terminal_id=501, terminal_seq=1, when=1_790_000_000).record
    assert (free.tx_type, free.amount, free.full_fare, free.balance_after) == (
        p.TxType.RIDE, 0, 30, 100)
    assert (p.PRODUCT_NAMES[free.product], p.CONCESSION_NAMES[free.concession]) == (
        "senior", "senior")
    assert masters.verify_certificate(card.uid, CARD_NUMBER, free)
    for altered in (dataclasses.replace(free, concession=p.CONCESSION_CODES["none"]),
                    dataclasses.replace(free, full_fare=15),
                    dataclasses.replace(free, amount=1, balance_after=99),
                    dataclasses.replace(free, product=p.PRODUCT_CODES["general"])):
        assert not masters.verify_certificate(card.uid, CARD_NUMBER, altered)
    half = s.ride(15, 30, terminal_id=501, terminal_seq=2, when=1_790_000_060).record
    assert (half.counter, half.balance_after) == (free.counter + 1, 85)
    # Rides and purchases share the record list; each decodes at its own size.
    assert [r.tx_type for r in s.read_records(3)] == [p.TxType.RIDE, p.TxType.RIDE,
                                                     p.TxType.LOAD]


def test_ride_limits_and_retry(tmp_path) -> None:  # type: ignore[no-untyped-def]
    masters = Masters()
    _card, s = issued(tmp_path, masters)
    load(s, masters, 50, load_id=1)
    debit_session(s, masters)
    with pytest.raises(WrongData):
        s.ride(31, 30, terminal_id=501, terminal_seq=1, when=0)  # more than the full fare
    debit_session(s, masters)
    with pytest.raises(WrongData):
        s.ride(0, 0, terminal_id=501, terminal_seq=1, when=0)  # a ride has a fare
    debit_session(s, masters)
    first = s.ride(15, 30, terminal_id=501, terminal_seq=1, when=0)
    debit_session(s, masters)
    again = s.ride(15, 30, terminal_id=501, terminal_seq=1, when=0)  # repeated after a tear
    assert again.recovered and again.record == first.record
    debit_session(s, masters)
    with pytest.raises(WrongData):  # the same sequence number for a purchase is not a retry
        s.debit(15, terminal_id=501, terminal_seq=1, when=0)


def test_old_purchase_certificates_still_verify() -> None:
    """The certificate input of purchases and loads is unchanged by rides: a certificate
    computed before rides existed (fixed vector) still verifies."""
    rec = p.TxRecord(p.TxType.DEBIT, 7, 120, 880, 9, 3, 1_790_000_000, b"")
    legacy = b"TC" + bytes.fromhex(CARD_NUMBER) + bytes([1]) + b"".join(
        v.to_bytes(4, "big") for v in (7, 120, 880, 9, 3, 1_790_000_000))
    assert p.record_certificate_input(CARD_NUMBER, rec) == legacy
