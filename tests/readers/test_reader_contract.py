"""One contract, every Reader implementation: the in-process transport and PC/SC through
pcscd with a virtual card in the vpcd slot."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass

import pytest

from readers import protocol as p
from readers.base import Reader
from readers.errors import CardRemoved, NoCard, check
from readers.memory import InProcessReader
from simulators.card import TearPlan, VirtualCard
from tests.support.chipkit import new_uid


@dataclass
class Rig:
    reader: Reader
    card: VirtualCard
    take_away: Callable[[], None]


@pytest.fixture(params=["in-process", "pcsc"])
def rig(request: pytest.FixtureRequest) -> Iterator[Rig]:
    card = VirtualCard(new_uid())
    if request.param == "in-process":
        r = InProcessReader(card)
        yield Rig(r, card, r.remove)
        return
    slot = request.getfixturevalue("vpcd_slot")
    reader = request.getfixturevalue("pcsc_reader")
    runner = slot.insert(card, reinsert_delay=30)  # stays out once taken away
    yield Rig(reader, card, runner.remove)


def test_reader_has_a_name(rig: Rig) -> None:
    assert isinstance(rig.reader.name, str) and rig.reader.name
    assert isinstance(rig.reader, Reader)


def test_card_arrives_and_answers(rig: Rig) -> None:
    assert rig.reader.wait_for_card(5)
    sel = p.SelectInfo.decode(check(rig.reader.transmit(
        p.apdu(0, p.INS_SELECT, 4, 0, p.AID, 0))))
    assert sel.uid == rig.card.uid
    assert check(rig.reader.transmit(bytes([0xFF, 0xCA, 0, 0, 0]))) == rig.card.uid


def test_status_words_come_back_raw(rig: Rig) -> None:
    assert rig.reader.wait_for_card(5)
    resp = rig.reader.transmit(p.apdu(0, p.INS_SELECT, 4, 0, b"\xA0\x00\x00\x00\x03", 0))
    assert resp[-2:] == b"\x6A\x82"


def test_card_leaving_mid_command_is_card_removed(rig: Rig) -> None:
    assert rig.reader.wait_for_card(5)
    rig.card.arm(TearPlan(1, "after"))
    with pytest.raises((CardRemoved, NoCard)):
        rig.reader.transmit(p.apdu(0, p.INS_SELECT, 4, 0, p.AID, 0))
    assert rig.reader.wait_for_removal(5)


def test_removal_is_seen(rig: Rig) -> None:
    assert rig.reader.wait_for_card(5)
    rig.take_away()
    assert rig.reader.wait_for_removal(5)
    assert not rig.reader.wait_for_card(0.2)


def test_profile_and_full_record_list_travel(rig: Rig) -> None:
    """A profile update and ten ride records (the longest answer of the protocol) through
    the transport."""
    import datetime as dt

    from readers.session import CardSession, personalise
    from tests.support.chipkit import CARD_NUMBER, SYSTEM_ID, Masters, load

    assert rig.reader.wait_for_card(5)
    masters = Masters()
    s = CardSession(rig.reader, SYSTEM_ID)
    sel = s.select()
    personalise(s, p.CardInfo(CARD_NUMBER, "senior", dt.date(2031, 1, 31)),
                masters.card_keys(sel.uid), profile=p.CardProfile("senior", None, 1))
    load(s, masters, 500, load_id=1)
    s.select()
    s.authenticate_with_master(p.KeyPurpose.DEBIT, masters.keys[p.KeyPurpose.DEBIT])
    ended = p.CardProfile("disability", dt.date(2029, 5, 1), 2)
    assert s.write_profile(masters.seal_profile(sel.uid, CARD_NUMBER, ended)) == (ended, False)
    for seq in range(1, 11):
        s.ride(seq, 30, terminal_id=501, terminal_seq=seq, when=1_790_000_000 + seq)
    records = s.read_records(10)
    assert [r.amount for r in records] == list(range(10, 0, -1))
    assert all(r.concession == p.CONCESSION_CODES["disability"] for r in records)
    assert all(masters.verify_certificate(sel.uid, CARD_NUMBER, r) for r in records)
