"""The card protocol end to end through the in-process reader: personalisation, mutual
authentication, load, debit, certificates, and every refusal with its status word."""

from __future__ import annotations

import dataclasses
import struct

import pytest

from readers import crypto
from readers import protocol as p
from readers.errors import (
    AuthenticationFailed,
    ConditionsNotSatisfied,
    InstructionNotSupported,
    KeyNotFound,
    NotEnoughValue,
    ProtocolError,
    SecurityStatusNotSatisfied,
    WrongData,
    WrongLength,
    check,
)
from readers.memory import InProcessReader
from readers.protocol import KeyPurpose
from readers.session import CardSession, personalise
from tests.support.chipkit import CARD_NUMBER, SYSTEM_ID, Masters, blank_card, issue, load


@pytest.fixture
def masters() -> Masters:
    return Masters()


@pytest.fixture
def card(tmp_path):  # type: ignore[no-untyped-def]
    return blank_card(tmp_path)


@pytest.fixture
def session(card) -> CardSession:  # type: ignore[no-untyped-def]
    return CardSession(InProcessReader(card), SYSTEM_ID)


def debit_session(session: CardSession, masters: Masters) -> p.PurseState:
    session.select()
    return session.authenticate_with_master(KeyPurpose.DEBIT,
                                            masters.keys[KeyPurpose.DEBIT]).purse


def test_issue_load_debit_and_certificates_verify(session, masters) -> None:  # type: ignore[no-untyped-def]
    sel = session.select()
    assert not sel.personalised and sel.key_versions == {KeyPurpose.PERSONALISATION: 0}
    issue(session, masters)
    sel = session.select()
    assert sel.personalised and sel.locked
    rec = load(session, masters, 500, load_id=1)
    assert (rec.amount, rec.balance_after, rec.counter) == (500, 500, 1)
    assert masters.verify_certificate(session.uid, CARD_NUMBER, rec)
    purse = debit_session(session, masters)
    assert purse.balance == 500
    res = session.debit(120, terminal_id=42, terminal_seq=9, when=1_790_000_100)
    assert not res.recovered
    assert (res.record.balance_after, res.record.counter) == (380, 2)
    assert masters.verify_certificate(session.uid, CARD_NUMBER, res.record)
    assert session.read_purse().balance == 380
    assert [r.tx_type for r in session.read_records(5)] == [p.TxType.DEBIT, p.TxType.LOAD]
    assert session.read_info().card_number == CARD_NUMBER


def test_altered_certificate_fails_backend_check(session, masters) -> None:  # type: ignore[no-untyped-def]
    issue(session, masters)
    load(session, masters, 300, 1)
    debit_session(session, masters)
    rec = session.debit(100, 1, 1, 1_790_000_000).record
    for field, value in (("amount", 10), ("balance_after", 290), ("terminal_id", 2),
                         ("counter", 9), ("time", 1_790_000_001)):
        assert not masters.verify_certificate(session.uid, CARD_NUMBER,
                                              dataclasses.replace(rec, **{field: value}))
    assert not masters.verify_certificate(session.uid, "8902112345678911", rec)


def test_identity_key_reads_but_cannot_spend(session, masters) -> None:  # type: ignore[no-untyped-def]
    issue(session, masters)
    session.select()
    auth = session.authenticate_with_master(KeyPurpose.IDENTITY,
                                            masters.keys[KeyPurpose.IDENTITY])
    assert auth.info is not None and auth.info.card_number == CARD_NUMBER
    with pytest.raises(SecurityStatusNotSatisfied) as exc:
        session.debit(1, 1, 1, 1)
    assert (exc.value.sw1, exc.value.sw2) == (0x69, 0x82)


def test_wrong_key_is_refused(session, masters) -> None:  # type: ignore[no-untyped-def]
    issue(session, masters)
    session.select()
    other = Masters()
    with pytest.raises(ProtocolError):  # the card's proof does not match our key
        session.authenticate_with_master(KeyPurpose.DEBIT, other.keys[KeyPurpose.DEBIT])
    # A terminal that skips checking the card and answers with a wrong key: 6300.
    reader = session.reader
    rnd_a = bytes(16)
    check(reader.transmit(p.apdu(0x80, p.INS_AUTH_FIRST, KeyPurpose.DEBIT, 1, rnd_a, 0)))
    with pytest.raises(AuthenticationFailed) as exc:
        check(reader.transmit(p.apdu(0x80, p.INS_AUTH_SECOND, 0, 0, bytes(16), 0)))
    assert exc.value.sw == 0x6300
    with pytest.raises(KeyNotFound):
        session.authenticate(KeyPurpose.DEBIT, bytes(16), version=7)


def test_altered_and_replayed_macs_are_refused(session, masters, card) -> None:  # type: ignore[no-untyped-def]
    issue(session, masters)
    load(session, masters, 1000, 1)
    debit_session(session, masters)
    sent: list[bytes] = []
    original = card.process

    def spy(apdu: bytes) -> bytes:
        sent.append(apdu)
        return original(apdu)

    card.process = spy
    session.debit(10, 1, 1, 1_790_000_000)
    debit_apdu = sent[-1]
    # Replayed in the same session: the command counter moved on, so the MAC is wrong.
    with pytest.raises(SecurityStatusNotSatisfied):
        check(original(debit_apdu))
    # Altered on the wire within a live session: the MAC covers the data.
    debit_session(session, masters)
    tag_input = p.command_mac_input(0x80, p.INS_DEBIT, 0, 0, 1,
                                    struct.pack(">IIII", 10, 1, 2, 1_790_000_000))
    mac = crypto.mac8(session._mac, tag_input)  # type: ignore[arg-type]
    tampered = struct.pack(">IIII", 999, 1, 2, 1_790_000_000) + mac
    with pytest.raises(SecurityStatusNotSatisfied):
        check(original(p.apdu(0x80, p.INS_DEBIT, 0, 0, tampered, 0)))
    # Altered amount with the old MAC, in a fresh session.
    debit_session(session, masters)
    altered = bytearray(debit_apdu)
    altered[5 + 3] ^= 0x01  # last byte of the amount
    with pytest.raises(SecurityStatusNotSatisfied):
        check(original(bytes(altered)))
    # Replayed into a fresh session (new session keys): refused.
    debit_session(session, masters)
    with pytest.raises(SecurityStatusNotSatisfied):
        check(original(debit_apdu))
    card.process = original
    debit_session(session, masters)
    assert session.read_purse().balance == 990  # only the genuine debit happened


def load_session(session: CardSession, masters: Masters) -> p.PurseState:
    session.select()
    return session.authenticate_with_master(KeyPurpose.LOAD,
                                            masters.keys[KeyPurpose.LOAD]).purse


def test_a_terminal_cannot_load_value(session, masters) -> None:  # type: ignore[no-untyped-def]
    issue(session, masters)
    # A stolen terminal holds the debit master key: a debit session cannot load at all ...
    debit_session(session, masters)
    genuine = masters.load_authorisation(session.uid, CARD_NUMBER, 0, 5000, 1)
    with pytest.raises(SecurityStatusNotSatisfied):
        session.load(5000, 1, 1, 1, genuine)
    # ... and an authorisation MACed with the debit key is worthless in a load session.
    load_session(session, masters)
    forged = crypto.mac8(session.card_key(masters.keys[KeyPurpose.DEBIT][1]),
                         p.load_authorisation_input(session.uid, CARD_NUMBER, 0, 5000, 1))
    with pytest.raises(SecurityStatusNotSatisfied):
        session.load(5000, 1, 1, 1, forged)
    load_session(session, masters)
    assert session.read_purse().balance == 0


def test_a_load_authorisation_works_once(session, masters) -> None:  # type: ignore[no-untyped-def]
    issue(session, masters)
    load_session(session, masters)
    first = masters.load_authorisation(session.uid, CARD_NUMBER, 0, 100, 2)
    assert session.load(100, 2, 1, 1, first).record.balance_after == 100
    # The same load again: recognised, not applied twice.
    load_session(session, masters)
    again = session.load(100, 2, 1, 1, first)
    assert again.recovered and again.record.balance_after == 100
    # An authorisation made for the old counter (0), with a fresh load id: refused, the
    # counter has moved on.
    load_session(session, masters)
    stale = masters.load_authorisation(session.uid, CARD_NUMBER, 0, 100, 3)
    with pytest.raises(SecurityStatusNotSatisfied):
        session.load(100, 3, 1, 1, stale)
    # A load id below one already applied is never applied, even with a valid MAC.
    load_session(session, masters)
    old_id = masters.load_authorisation(session.uid, CARD_NUMBER, 1, 100, 1)
    with pytest.raises(WrongData):
        session.load(100, 1, 1, 1, old_id)
    load_session(session, masters)
    assert session.read_purse().balance == 100


def test_limits(session, masters) -> None:  # type: ignore[no-untyped-def]
    issue(session, masters)
    load(session, masters, 9_990, 1)
    with pytest.raises(WrongData) as exc:  # over the NT$10,000 limit
        load(session, masters, 11, 2)
    assert exc.value.sw == 0x6A80
    assert load(session, masters, 10, 3).balance_after == 10_000
    debit_session(session, masters)
    with pytest.raises(WrongData):  # more than any purse can hold: malformed, not "too poor"
        session.debit(10_001, 1, 1, 1)
    debit_session(session, masters)
    with pytest.raises(WrongData):
        session.debit(0, 1, 2, 1)
    debit_session(session, masters)
    session.debit(9_000, 1, 3, 1)
    debit_session(session, masters)
    with pytest.raises(NotEnoughValue) as exc2:
        session.debit(1_001, 1, 4, 1)
    assert exc2.value.sw == 0x6A84
    debit_session(session, masters)
    assert session.read_purse().balance == 1_000


def test_counter_never_wraps_and_a_worn_out_purse_blocks(session, masters, card) -> None:  # type: ignore[no-untyped-def]
    issue(session, masters)
    load(session, masters, 100, 1)
    card.state["purse"]["counter"] = p.COUNTER_MAX - 1
    debit_session(session, masters)
    rec = session.debit(1, 1, 1, 1).record
    assert rec.counter == p.COUNTER_MAX
    purse = debit_session(session, masters)
    assert purse.blocked and purse.balance == 99
    with pytest.raises(ConditionsNotSatisfied) as exc:
        session.debit(1, 1, 2, 1)
    assert exc.value.sw == 0x6985


def test_locked_card_refuses_personalisation(session, masters) -> None:  # type: ignore[no-untyped-def]
    issue(session, masters)
    session.select()
    with pytest.raises(KeyNotFound):  # the transport key is gone
        personalise(session, p.CardInfo(CARD_NUMBER, "general", __import__("datetime").date(
            2040, 1, 1)), masters.card_keys(session.uid))
    session.select()
    session.authenticate_with_master(KeyPurpose.PERSONALISATION,
                                     masters.keys[KeyPurpose.PERSONALISATION])
    with pytest.raises(ConditionsNotSatisfied) as exc:
        session.put_keys(masters.card_keys(session.uid))
    assert exc.value.sw == 0x6985
    session.select()
    session.authenticate_with_master(KeyPurpose.PERSONALISATION,
                                     masters.keys[KeyPurpose.PERSONALISATION])
    with pytest.raises(ConditionsNotSatisfied):
        session.write_info(p.CardInfo("8902110000000004", "senior",
                                      __import__("datetime").date(2040, 1, 1)))


def test_blank_card_refuses_purse_commands(session, masters) -> None:  # type: ignore[no-untyped-def]
    session.select()
    session.authenticate(KeyPurpose.PERSONALISATION, p.TRANSPORT_KEY, 0)
    with pytest.raises(SecurityStatusNotSatisfied):
        session.debit(1, 1, 1, 1)
    session.select()
    session.authenticate(KeyPurpose.PERSONALISATION, p.TRANSPORT_KEY, 0)
    with pytest.raises(ConditionsNotSatisfied):  # incomplete personalisation cannot lock
        session.lock()


def test_key_rotation_with_versions(session, masters) -> None:  # type: ignore[no-untyped-def]
    issue(session, masters)
    new_master = bytes(range(16))
    session.select()
    session.authenticate_with_master(KeyPurpose.PERSONALISATION,
                                     masters.keys[KeyPurpose.PERSONALISATION])
    session.change_key(KeyPurpose.DEBIT, 2, session.card_key(new_master))
    sel = session.select()
    assert sel.key_versions[KeyPurpose.DEBIT] == 2
    masters.keys[KeyPurpose.DEBIT][2] = new_master
    session.authenticate_with_master(KeyPurpose.DEBIT, masters.keys[KeyPurpose.DEBIT])


def test_plain_uid_read_and_bad_apdus(session, card) -> None:  # type: ignore[no-untyped-def]
    assert session.get_uid() == card.uid
    r = session.reader
    with pytest.raises(InstructionNotSupported):
        check(r.transmit(bytes([0x80, 0x77, 0, 0])))
    with pytest.raises(WrongLength):
        check(r.transmit(bytes([0x00, 0xA4, 0x04, 0x00, 0x08, 0xF0])))
    assert check_sw(r.transmit(p.apdu(0, 0xA4, 4, 0, b"\xA0\x00\x00\x00\x03", 0))) == 0x6A82
    assert check_sw(r.transmit(bytes([0x90, 0x10, 0, 0]))) == 0x6E00


def check_sw(resp: bytes) -> int:
    return (resp[-2] << 8) | resp[-1]


def test_torn_personalisation_resumes(tmp_path, masters) -> None:  # type: ignore[no-untyped-def]
    from readers.errors import CardRemoved
    from simulators.card import TearPlan, VirtualCard
    card = blank_card(tmp_path)
    reader = InProcessReader(card)
    s = CardSession(reader, SYSTEM_ID)
    card.arm(TearPlan(4, "after"))  # SELECT, AUTH, AUTH, PUT KEYS: power gone after the keys
    with pytest.raises(CardRemoved):
        issue(s, masters)
    card = VirtualCard(card.uid, card.state_path)
    s = CardSession(InProcessReader(card), SYSTEM_ID)
    issue(s, masters)  # resumed with the new personalisation key
    sel = s.select()
    assert sel.locked and sel.personalised


def test_the_last_transaction_before_the_purse_blocks_can_be_recovered(session, masters,
                                                                         card) -> None:  # type: ignore[no-untyped-def]
    from readers.errors import CardRemoved
    from simulators.card import TearPlan, VirtualCard
    issue(session, masters)
    load(session, masters, 100, 1)
    card.state["purse"]["counter"] = p.COUNTER_MAX - 1
    card.arm(TearPlan(4, "after"))
    with pytest.raises(CardRemoved):
        debit_session(session, masters)
        session.debit(5, 1, 77, 1)
    session = CardSession(InProcessReader(VirtualCard(card.uid, card.state_path)), SYSTEM_ID)
    debit_session(session, masters)
    result = session.debit(5, 1, 77, 1)
    assert result.recovered and result.record.counter == p.COUNTER_MAX
    assert masters.verify_certificate(session.uid, CARD_NUMBER, result.record)


def test_card_data_must_be_decimal(session) -> None:  # type: ignore[no-untyped-def]
    session.select()
    session.authenticate(KeyPurpose.PERSONALISATION, p.TRANSPORT_KEY, 0)
    info = bytes.fromhex("8902ABCD12345678") + bytes([1]) + (20361231).to_bytes(4, "big")
    with pytest.raises(WrongData):
        session._secure(p.INS_WRITE_INFO, info, name="WRITE INFO")


def test_wrong_p1_p2_is_refused(session, masters) -> None:  # type: ignore[no-untyped-def]
    from readers.errors import WrongParameters
    issue(session, masters)
    debit_session(session, masters)
    with pytest.raises(WrongParameters):
        session._secure(p.INS_READ_PURSE, b"", p1=1, name="READ PURSE")
