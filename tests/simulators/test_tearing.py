"""Anti-tearing: cut the power after every APDU of a debit and of a load (and mid-command,
between journal and commit). The next session finds a consistent purse, and repeating the
transaction with the same terminal sequence number / load id completes it exactly once."""

from __future__ import annotations

import pytest

from readers.errors import CardRemoved
from readers.memory import InProcessReader
from readers.protocol import KeyPurpose
from readers.session import CardSession
from simulators.card import TearPlan, VirtualCard
from tests.support.chipkit import CARD_NUMBER, SYSTEM_ID, Masters, blank_card, issue, load

TAP_APDUS = 4  # SELECT, AUTHENTICATE (2), DEBIT or LOAD
CASES = [(i, stage) for i in range(1, TAP_APDUS + 1) for stage in ("before", "after")] + [
    (TAP_APDUS, "journaled")]


def funded(tmp_path, masters: Masters, balance: int) -> tuple[VirtualCard, InProcessReader]:  # type: ignore[no-untyped-def]
    card = blank_card(tmp_path)
    reader = InProcessReader(card)
    s = CardSession(reader, SYSTEM_ID)
    issue(s, masters)
    if balance:
        load(s, masters, balance, load_id=1)
    return card, reader


def reload_from_disk(card: VirtualCard) -> VirtualCard:
    """A power cut loses everything volatile: rebuild the card from its state file."""
    return VirtualCard(card.uid, card.state_path)


def debit_tap(reader: InProcessReader, masters: Masters, amount: int, seq: int):  # type: ignore[no-untyped-def]
    s = CardSession(reader, SYSTEM_ID)
    s.select()
    s.authenticate_with_master(KeyPurpose.DEBIT, masters.keys[KeyPurpose.DEBIT])
    return s, s.debit(amount, terminal_id=77, terminal_seq=seq, when=1_790_000_000)


@pytest.mark.parametrize("apdu_index,stage", CASES)
def test_torn_debit_completes_exactly_once(tmp_path, apdu_index: int, stage: str) -> None:  # type: ignore[no-untyped-def]
    masters = Masters()
    card, reader = funded(tmp_path, masters, 1_000)
    card.arm(TearPlan(apdu_index, stage))
    with pytest.raises(CardRemoved):
        debit_tap(reader, masters, 250, seq=5)
    card = reload_from_disk(card)
    on_disk_balance = card.state["purse"]["balance"]
    pending = card.state["pending"] is not None
    assert (on_disk_balance, pending) in ((1_000, False), (750, False), (1_000, True))
    reader = InProcessReader(card)  # tapped again: power-on recovers a journaled debit
    s, result = debit_tap(reader, masters, 250, seq=5)  # the terminal repeats its debit
    committed_before = apdu_index == TAP_APDUS and stage in ("after", "journaled")
    assert result.recovered == committed_before
    assert result.record.balance_after == 750 and result.record.counter == 2
    assert masters.verify_certificate(card.uid, CARD_NUMBER, result.record)
    assert s.read_purse().balance == 750
    debits = [r for r in s.read_records() if r.tx_type.name == "DEBIT"]
    assert len(debits) == 1


@pytest.mark.parametrize("apdu_index,stage", CASES)
def test_torn_load_completes_exactly_once(tmp_path, apdu_index: int, stage: str) -> None:  # type: ignore[no-untyped-def]
    masters = Masters()
    card, reader = funded(tmp_path, masters, 0)
    card.arm(TearPlan(apdu_index, stage))
    s = CardSession(reader, SYSTEM_ID)
    # The backend authorised this load once, for the card's counter at that time (0).
    auth = masters.load_authorisation(card.uid, CARD_NUMBER, 0, 600, 31)
    with pytest.raises(CardRemoved):
        s.select()
        s.authenticate_with_master(KeyPurpose.LOAD, masters.keys[KeyPurpose.LOAD])
        s.load(600, 31, 9, 1_790_000_000, auth)
    card = reload_from_disk(card)
    reader = InProcessReader(card)
    s = CardSession(reader, SYSTEM_ID)
    s.select()
    s.authenticate_with_master(KeyPurpose.LOAD, masters.keys[KeyPurpose.LOAD])
    result = s.load(600, 31, 9, 1_790_000_000, auth)  # same authorisation, same load id
    assert result.recovered == (apdu_index == TAP_APDUS and stage in ("after", "journaled"))
    assert result.record.balance_after == 600
    assert masters.verify_certificate(card.uid, CARD_NUMBER, result.record)
    assert s.read_purse().balance == 600
    assert len(s.read_records()) == 1


def test_a_new_debit_after_recovery_is_a_new_debit(tmp_path) -> None:  # type: ignore[no-untyped-def]
    masters = Masters()
    card, reader = funded(tmp_path, masters, 1_000)
    card.arm(TearPlan(TAP_APDUS, "journaled"))
    with pytest.raises(CardRemoved):
        debit_tap(reader, masters, 100, seq=1)
    reader = InProcessReader(reload_from_disk(card))
    _, r = debit_tap(reader, masters, 100, seq=2)  # a different sale
    assert not r.recovered and r.record.balance_after == 800
