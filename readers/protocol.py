"""The resident-card application's wire format, shared by terminals and the card.

Everything here is data: AID, instruction codes, status words and the byte layouts of the
messages. The full specification with rationale is docs/card-protocol.md.
"""

from __future__ import annotations

import datetime as dt
import enum
import struct
from dataclasses import dataclass

# Proprietary AID: F0 (unregistered RID range) ‖ "KMCARD" ‖ application version 01.
AID = bytes.fromhex("F04B4D4341524401")
APP_VERSION = 1

CLA_ISO = 0x00
CLA_PROP = 0x80

INS_SELECT = 0xA4
INS_GET_UID = 0xCA  # with CLA FF: the reader/card UID (PC/SC part 3 pseudo-APDU)
INS_AUTH_FIRST = 0xA0
INS_AUTH_SECOND = 0xA2
INS_READ_INFO = 0x10
INS_READ_PURSE = 0x20
INS_DEBIT = 0x30
INS_LOAD = 0x32
INS_READ_RECORDS = 0x40
INS_PUT_KEYS = 0xE0
INS_WRITE_INFO = 0xE2
INS_LOCK = 0xE4
INS_CHANGE_KEY = 0xC4

MAX_BALANCE = 10_000
MAX_AMOUNT = 10_000
COUNTER_MAX = 0xFFFFFF  # 3 bytes; a purse whose counter reaches it is blocked, never wraps
RECORDS_KEPT = 10
MAC_LEN = 8
CERT_LEN = 8
TRANSPORT_KEY = bytes(16)  # factory key of a blank card (version 0), like DESFire's default


class KeyPurpose(enum.IntEnum):
    IDENTITY = 1  # read card info (library desks, event check-in)
    DEBIT = 2  # purchases; the only master key a terminal holds
    LOAD = 3  # loads and transaction certificates; never leaves the backend
    PERSONALISATION = 4  # blank-card personalisation, key changes after issue


PURPOSE_NAMES = {KeyPurpose.IDENTITY: "identity", KeyPurpose.DEBIT: "debit",
                 KeyPurpose.LOAD: "load", KeyPurpose.PERSONALISATION: "personalisation"}


class SW(enum.IntEnum):
    OK = 0x9000
    AUTH_FAILED = 0x6300  # authentication cryptogram wrong
    WRONG_LENGTH = 0x6700
    SECURITY_STATUS = 0x6982  # not authenticated, or a MAC does not verify
    CONDITIONS = 0x6985  # locked card personalised again, purse blocked, card not personalised
    WRONG_DATA = 0x6A80  # bad amount, or a load over the NT$10,000 limit
    NOT_FOUND = 0x6A82  # application not found
    NOT_ENOUGH_VALUE = 0x6A84  # debit above the balance
    WRONG_P1P2 = 0x6A86
    KEY_NOT_FOUND = 0x6A88  # key purpose/version not on the card
    INS_NOT_SUPPORTED = 0x6D00
    CLA_NOT_SUPPORTED = 0x6E00


class TxType(enum.IntEnum):
    DEBIT = 1
    LOAD = 2


@dataclass(frozen=True)
class SelectInfo:
    """Answer to SELECT: enough to choose keys, nothing personal."""

    uid: bytes
    app_version: int
    personalised: bool
    locked: bool
    key_versions: dict[int, int]  # purpose -> version

    def encode(self) -> bytes:
        flags = (1 if self.personalised else 0) | (2 if self.locked else 0)
        kv = b"".join(bytes([p, v]) for p, v in sorted(self.key_versions.items()))
        return bytes([self.app_version, flags, len(self.uid)]) + self.uid + kv

    @classmethod
    def decode(cls, data: bytes) -> SelectInfo:
        version, flags, n = data[0], data[1], data[2]
        uid = data[3:3 + n]
        kv_raw = data[3 + n:]
        kv = {kv_raw[i]: kv_raw[i + 1] for i in range(0, len(kv_raw), 2)}
        return cls(uid, version, bool(flags & 1), bool(flags & 2), kv)


def encode_card_number(number: str) -> bytes:
    if len(number) != 16 or not (number.isascii() and number.isdigit()):
        raise ValueError("card number must be 16 digits")
    return bytes.fromhex(number)  # packed BCD


def decode_card_number(raw: bytes) -> str:
    return raw.hex()


PRODUCT_CODES = {"general": 1, "senior": 2, "student": 3, "mobile": 4}
PRODUCT_NAMES = {v: k for k, v in PRODUCT_CODES.items()}


@dataclass(frozen=True)
class CardInfo:
    card_number: str
    product: str
    expires_on: dt.date

    LAYOUT = ">8sBI"  # BCD card number, product code, expiry as YYYYMMDD

    def encode(self) -> bytes:
        return struct.pack(self.LAYOUT, encode_card_number(self.card_number),
                           PRODUCT_CODES[self.product],
                           int(self.expires_on.strftime("%Y%m%d")))

    @classmethod
    def decode(cls, data: bytes) -> CardInfo:
        number, product, expiry = struct.unpack(cls.LAYOUT, data[:13])
        return cls(decode_card_number(number), PRODUCT_NAMES.get(product, "unknown"),
                   dt.datetime.strptime(str(expiry), "%Y%m%d").date())


@dataclass(frozen=True)
class PurseState:
    balance: int
    counter: int
    blocked: bool

    LAYOUT = ">IIB"

    def encode(self) -> bytes:
        return struct.pack(self.LAYOUT, self.balance, self.counter, 1 if self.blocked else 0)

    @classmethod
    def decode(cls, data: bytes) -> PurseState:
        balance, counter, blocked = struct.unpack(cls.LAYOUT, data[:9])
        return cls(balance, counter, bool(blocked))


@dataclass(frozen=True)
class TxRecord:
    """One purse transaction, as the card keeps it and as the certificate covers it."""

    tx_type: TxType
    counter: int
    amount: int
    balance_after: int
    terminal_id: int
    terminal_seq: int
    time: int  # Unix seconds, UTC
    certificate: bytes

    LAYOUT = ">BIIIIII8s"
    SIZE = struct.calcsize(LAYOUT)

    def encode(self) -> bytes:
        return struct.pack(self.LAYOUT, self.tx_type, self.counter, self.amount,
                           self.balance_after, self.terminal_id, self.terminal_seq, self.time,
                           self.certificate)

    @classmethod
    def decode(cls, data: bytes) -> TxRecord:
        t, c, a, b, tid, seq, ts, cert = struct.unpack(cls.LAYOUT, data[:cls.SIZE])
        return cls(TxType(t), c, a, b, tid, seq, ts, cert)


CERTIFICATE_FIELDS = struct.Struct(">BIIIIII")


def certificate_prefix(card_number: str) -> bytes:
    return b"TC" + encode_card_number(card_number)


def certificate_input(card_number: str, rec_type: int, counter: int, amount: int,
                      balance_after: int, terminal_id: int, terminal_seq: int,
                      time: int) -> bytes:
    """What a transaction certificate authenticates (MACed with the card's load key, which
    only the backend holds, so a terminal can neither create value nor forge a certificate)."""
    return certificate_prefix(card_number) + CERTIFICATE_FIELDS.pack(
        rec_type, counter, amount, balance_after, terminal_id, terminal_seq, time)


def load_authorisation_input(uid: bytes, card_number: str, counter: int, amount: int,
                             load_id: int) -> bytes:
    """What the backend's load authorisation MAC covers: bound to the card, to its current
    counter (so it works once) and to the amount."""
    return b"LA" + uid + encode_card_number(card_number) + struct.pack(
        ">III", counter, amount, load_id)


def apdu(cla: int, ins: int, p1: int = 0, p2: int = 0, data: bytes = b"",
         le: int | None = None) -> bytes:
    """A short C-APDU (case 1-4)."""
    if len(data) > 255:
        raise ValueError("short APDUs carry at most 255 bytes")
    out = bytes([cla, ins, p1, p2])
    if data:
        out += bytes([len(data)]) + data
    if le is not None:
        out += bytes([le & 0xFF])
    return out


def command_mac_input(cla: int, ins: int, p1: int, p2: int, counter: int,
                      data: bytes) -> bytes:
    return bytes([cla, ins, p1, p2]) + counter.to_bytes(2, "big") + data


def response_mac_input(sw: int, counter: int, data: bytes) -> bytes:
    return sw.to_bytes(2, "big") + counter.to_bytes(2, "big") + data
