"""Test kit for the card protocol: master keys, a blank virtual card, personalisation and the
backend's side of a load (the authorisation MAC), all without a database."""

from __future__ import annotations

import datetime as dt
import secrets
from pathlib import Path

from readers import crypto, profiles
from readers import protocol as p
from readers.protocol import KeyPurpose
from readers.session import CardSession, personalise
from simulators.card import VirtualCard

SYSTEM_ID = b"KINMEN01"
CARD_NUMBER = "8902112345678903"


class Masters:
    """Backend-side master keys, version 1 for every purpose."""

    def __init__(self) -> None:
        self.keys = {purpose: {1: secrets.token_bytes(16)} for purpose in KeyPurpose}

    def card_key(self, purpose: KeyPurpose, uid: bytes, version: int = 1) -> bytes:
        return crypto.diversify_key(self.keys[purpose][version], uid, p.AID, SYSTEM_ID)

    def card_keys(self, uid: bytes) -> dict[KeyPurpose, tuple[int, bytes]]:
        return {purpose: (1, self.card_key(purpose, uid)) for purpose in KeyPurpose}

    def load_authorisation(self, uid: bytes, card_number: str, counter: int, amount: int,
                           load_id: int) -> bytes:
        return crypto.mac8(self.card_key(KeyPurpose.LOAD, uid),
                           p.load_authorisation_input(uid, card_number, counter, amount,
                                                      load_id))

    def verify_certificate(self, uid: bytes, card_number: str, rec: p.TxRecord) -> bool:
        expected = crypto.mac8(self.card_key(KeyPurpose.LOAD, uid),
                               p.record_certificate_input(card_number, rec))
        return secrets.compare_digest(expected, rec.certificate)

    def seal_profile(self, uid: bytes, card_number: str, profile: p.CardProfile) -> bytes:
        return profiles.seal(self.card_key(KeyPurpose.LOAD, uid), uid, card_number, profile)


def new_uid() -> bytes:
    return b"\x04" + secrets.token_bytes(6)


def blank_card(tmp: Path | None = None, uid: bytes | None = None) -> VirtualCard:
    uid = uid or new_uid()
    return VirtualCard(uid, tmp / f"{uid.hex()}.json" if tmp else None)


def issue(session: CardSession, masters: Masters, number: str = CARD_NUMBER) -> None:
    info = p.CardInfo(number, "general", dt.date(2036, 11, 30))
    sel = session.select()
    personalise(session, info, masters.card_keys(sel.uid))


def load(session: CardSession, masters: Masters, amount: int, load_id: int) -> p.TxRecord:
    session.select()
    auth = session.authenticate_with_master(KeyPurpose.LOAD, masters.keys[KeyPurpose.LOAD])
    assert auth.info is not None
    mac = masters.load_authorisation(session.uid, auth.info.card_number, auth.purse.counter,
                                     amount, load_id)
    return session.load(amount, load_id, 7001, 1_790_000_000, mac).record
