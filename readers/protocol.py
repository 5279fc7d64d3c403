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
INS_READ_PROFILE = 0x12
INS_READ_PURSE = 0x20
INS_DEBIT = 0x30
INS_LOAD = 0x32
INS_WRITE_PROFILE = 0x34
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
    RIDE = 3  # a fare debit: the record also certifies product, concession and full fare


# DEBIT's P1: a plain purchase, or a ride whose data carries the full fare beside the amount.
DEBIT_PURCHASE = 0x00
DEBIT_RIDE = 0x01


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


PRODUCT_CODES = {"general": 1, "senior": 2, "student": 3, "mobile": 4, "staff": 5}
PRODUCT_NAMES = {v: k for k, v in PRODUCT_CODES.items()}
CONCESSION_CODES = {"none": 0, "senior": 1, "disability": 2, "companion": 3, "student": 4,
                    "staff": 5}
CONCESSION_NAMES = {v: k for k, v in CONCESSION_CODES.items()}


def _date_field(day: dt.date | None) -> int:
    return int(day.strftime("%Y%m%d")) if day else 0


def _field_date(value: int) -> dt.date | None:
    return dt.datetime.strptime(str(value), "%Y%m%d").date() if value else None


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
class CardProfile:
    """The concession the card carries: what a fare terminal reads to pick the fare.

    `ends_on` is the last day the concession holds (an enrolment's, a certificate's or an
    employment's end, or the card's expiry); None for no concession. `version` only
    increases: the card applies a profile update once and refuses an older one."""

    concession: str
    ends_on: dt.date | None
    version: int

    LAYOUT = ">BII"  # concession code, last day as YYYYMMDD (0: none), version
    SIZE = struct.calcsize(LAYOUT)

    def encode(self) -> bytes:
        return struct.pack(self.LAYOUT, CONCESSION_CODES[self.concession],
                           _date_field(self.ends_on), self.version)

    @classmethod
    def decode(cls, data: bytes) -> CardProfile:
        code, ends, version = struct.unpack(cls.LAYOUT, data[:cls.SIZE])
        return cls(CONCESSION_NAMES.get(code, "unknown"), _field_date(ends), version)

    def valid_on(self, day: dt.date) -> bool:
        """The concession holds on `day` (its last day included)."""
        return self.concession != "none" and (self.ends_on is None or day <= self.ends_on)


NO_PROFILE = CardProfile("none", None, 0)


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
    """One purse transaction, as the card keeps it and as the certificate covers it.

    A ride record carries three more fields (the card's product and concession, and the full
    fare beside the amount charged); purchase and load records keep their original layout."""

    tx_type: TxType
    counter: int
    amount: int
    balance_after: int
    terminal_id: int
    terminal_seq: int
    time: int  # Unix seconds, UTC
    certificate: bytes
    product: int = 0  # PRODUCT_CODES; rides only
    concession: int = 0  # CONCESSION_CODES; rides only
    full_fare: int = 0  # rides only

    LAYOUT = ">BIIIIII8s"
    SIZE = struct.calcsize(LAYOUT)
    RIDE_LAYOUT = ">BBI"
    RIDE_SIZE = SIZE + struct.calcsize(RIDE_LAYOUT)

    @property
    def ride_fields(self) -> tuple[int, int, int] | None:
        if self.tx_type != TxType.RIDE:
            return None
        return self.product, self.concession, self.full_fare

    def encode(self) -> bytes:
        out = struct.pack(self.LAYOUT, self.tx_type, self.counter, self.amount,
                          self.balance_after, self.terminal_id, self.terminal_seq, self.time,
                          self.certificate)
        ride = self.ride_fields
        return out + struct.pack(self.RIDE_LAYOUT, *ride) if ride else out

    @classmethod
    def size_of(cls, tx_type: int) -> int:
        return cls.RIDE_SIZE if tx_type == TxType.RIDE else cls.SIZE

    @classmethod
    def decode(cls, data: bytes) -> TxRecord:
        t, c, a, b, tid, seq, ts, cert = struct.unpack(cls.LAYOUT, data[:cls.SIZE])
        if t == TxType.RIDE:
            product, concession, full = struct.unpack(cls.RIDE_LAYOUT,
                                                      data[cls.SIZE:cls.RIDE_SIZE])
            return cls(TxType(t), c, a, b, tid, seq, ts, cert, product, concession, full)
        return cls(TxType(t), c, a, b, tid, seq, ts, cert)

    @classmethod
    def decode_many(cls, data: bytes) -> list[TxRecord]:
        """Records one after another (READ RECORDS): each one's type gives its size."""
        out, at = [], 0
        while at < len(data):
            size = cls.size_of(data[at])
            if at + size > len(data):
                raise ValueError("a record is cut short")
            out.append(cls.decode(data[at:at + size]))
            at += size
        return out


CERTIFICATE_FIELDS = struct.Struct(">BIIIIII")


def certificate_prefix(card_number: str) -> bytes:
    return b"TC" + encode_card_number(card_number)


RIDE_CERTIFICATE_FIELDS = struct.Struct(TxRecord.RIDE_LAYOUT)


def certificate_input(card_number: str, rec_type: int, counter: int, amount: int,
                      balance_after: int, terminal_id: int, terminal_seq: int,
                      time: int, ride: tuple[int, int, int] | None = None) -> bytes:
    """What a transaction certificate authenticates (MACed with the card's load key, which
    only the backend holds, so a terminal can neither create value nor forge a certificate).
    A ride's certificate also covers product, concession and full fare (`ride`); purchases
    and loads are certified as they always were, so their old certificates still verify."""
    out = certificate_prefix(card_number) + CERTIFICATE_FIELDS.pack(
        rec_type, counter, amount, balance_after, terminal_id, terminal_seq, time)
    if rec_type == TxType.RIDE:
        if ride is None:
            raise ValueError("a ride's certificate covers its product, concession and fare")
        out += RIDE_CERTIFICATE_FIELDS.pack(*ride)
    return out


def record_certificate_input(card_number: str, rec: TxRecord) -> bytes:
    return certificate_input(card_number, rec.tx_type, rec.counter, rec.amount,
                             rec.balance_after, rec.terminal_id, rec.terminal_seq, rec.time,
                             rec.ride_fields)


def load_authorisation_input(uid: bytes, card_number: str, counter: int, amount: int,
                             load_id: int) -> bytes:
    """What the backend's load authorisation MAC covers: bound to the card, to its current
    counter (so it works once) and to the amount."""
    return b"LA" + uid + encode_card_number(card_number) + struct.pack(
        ">III", counter, amount, load_id)


SEALED_PROFILE_LEN = 4 + 16 + MAC_LEN  # version ‖ encrypted profile ‖ MAC


def sealed_profile_mac_input(uid: bytes, card_number: str, version: int,
                             ciphertext: bytes) -> bytes:
    """What a sealed profile update's MAC covers: this card, the version and the encrypted
    profile (encrypt-then-MAC)."""
    return b"PA" + uid + encode_card_number(card_number) + struct.pack(">I", version) + \
        ciphertext


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
