"""The host side of the card protocol: one card session through any Reader.

    session = CardSession(reader, system_id)
    session.select()
    session.authenticate_debit(debit_masters)      # mutual authentication, session keys
    result = session.debit(amount, terminal_id, seq, when)

Every command after authentication carries an 8-byte AES-CMAC over its header, a command
counter and its data; every answer carries one too, and a wrong answer MAC raises
ProtocolError (the card, or something between, is not what it claims).
"""

from __future__ import annotations

import secrets
import struct
from dataclasses import dataclass

from readers import crypto, profiles
from readers import protocol as p
from readers.base import Reader
from readers.errors import ProtocolError, check
from readers.protocol import SW, KeyPurpose


@dataclass(frozen=True)
class AuthResult:
    info: p.CardInfo | None  # None on a blank card
    purse: p.PurseState
    profile: p.CardProfile = p.NO_PROFILE


@dataclass(frozen=True)
class TxResult:
    record: p.TxRecord
    recovered: bool  # the card had already done this transaction; this is its original result


class CardSession:
    def __init__(self, reader: Reader, system_id: bytes) -> None:
        self.reader = reader
        self.system_id = system_id
        self.selected: p.SelectInfo | None = None
        self._enc: bytes | None = None
        self._mac: bytes | None = None
        self._counter = 0
        self.apdus = 0

    # --- plain commands --------------------------------------------------------------------

    def _transmit(self, apdu: bytes) -> bytes:
        self.apdus += 1
        return self.reader.transmit(apdu)

    def get_uid(self) -> bytes:
        """The chip UID through the PC/SC pseudo-APDU FF CA 00 00 00 (identity-only uses:
        no application, no keys)."""
        return check(self._transmit(bytes([0xFF, p.INS_GET_UID, 0, 0, 0])), "GET UID")

    def select(self) -> p.SelectInfo:
        out = check(self._transmit(p.apdu(p.CLA_ISO, p.INS_SELECT, 0x04, 0x00, p.AID, 0)),
                    "SELECT")
        self.selected = p.SelectInfo.decode(out)
        self._enc = self._mac = None
        return self.selected

    @property
    def uid(self) -> bytes:
        if self.selected is None:
            raise ProtocolError("select the application first")
        return self.selected.uid

    def card_key(self, master: bytes) -> bytes:
        return crypto.diversify_key(master, self.uid, p.AID, self.system_id)

    # --- authentication --------------------------------------------------------------------

    def authenticate(self, purpose: KeyPurpose, key: bytes, version: int) -> AuthResult:
        """Mutual authentication with an already diversified card key."""
        rnd_a = secrets.token_bytes(16)
        rnd_b, proof = self.prove(purpose, version, rnd_a)
        if not proof_valid(key, self.uid, rnd_a, rnd_b, proof):
            raise ProtocolError("the card does not hold the expected key (card not genuine?)")
        answer = crypto.aes_cmac(key, b"\x02" + rnd_b + rnd_a)
        out = check(self._transmit(p.apdu(p.CLA_PROP, p.INS_AUTH_SECOND, 0, 0, answer, 0)),
                    "AUTHENTICATE")
        enc, mac = crypto.session_keys(key, rnd_a, rnd_b)
        ct, tag = out[:-p.MAC_LEN], out[-p.MAC_LEN:]
        if not secrets.compare_digest(tag, crypto.mac8(mac, p.response_mac_input(SW.OK, 0,
                                                                                 ct))):
            raise ProtocolError("AUTHENTICATE: answer MAC does not verify")
        blob = crypto.decrypt(enc, 0, ct)
        self._enc, self._mac, self._counter = enc, mac, 0
        info = None if blob[:13] == bytes(13) else p.CardInfo.decode(blob[:13])
        purse_end = 13 + struct.calcsize(p.PurseState.LAYOUT)
        profile = blob[purse_end:purse_end + p.CardProfile.SIZE]
        return AuthResult(info, p.PurseState.decode(blob[13:purse_end]),
                          p.CardProfile.decode(profile) if len(profile) == p.CardProfile.SIZE
                          else p.NO_PROFILE)

    def prove(self, purpose: KeyPurpose, version: int, rnd_a: bytes) -> tuple[bytes, bytes]:
        """The card's half of authentication alone: its random and its proof over the host's
        challenge `rnd_a`. Whoever holds the card key checks it (`proof_valid`), later or
        elsewhere: a check-in station holds no key and passes the proof on. The card's
        session is left unfinished; the next SELECT starts afresh."""
        out = check(self._transmit(p.apdu(p.CLA_PROP, p.INS_AUTH_FIRST, int(purpose), version,
                                          rnd_a, 0)), "AUTHENTICATE")
        if len(out) != 32:
            raise ProtocolError("AUTHENTICATE: answer of the wrong length")
        return out[:16], out[16:]

    def authenticate_with_master(self, purpose: KeyPurpose, masters: dict[int, bytes]
                                 ) -> AuthResult:
        """Pick the master key version the card says it holds, diversify, authenticate."""
        selected = self.selected or self.select()
        version = selected.key_versions.get(int(purpose))
        if version is None or version not in masters:
            raise ProtocolError(f"no {p.PURPOSE_NAMES[purpose]} master key for key version "
                                f"{version} of this card")
        return self.authenticate(purpose, self.card_key(masters[version]), version)

    # --- secure messaging ------------------------------------------------------------------

    def _secure(self, ins: int, payload: bytes, p1: int = 0, p2: int = 0,
                name: str = "") -> bytes:
        if self._mac is None:
            raise ProtocolError("authenticate first")
        self._counter += 1
        tag = crypto.mac8(self._mac, p.command_mac_input(p.CLA_PROP, ins, p1, p2,
                                                         self._counter, payload))
        try:
            out = check(self._transmit(p.apdu(p.CLA_PROP, ins, p1, p2, payload + tag, 0)),
                        name)
        except Exception:
            self._mac = self._enc = None  # the card ended the session too
            raise
        data, rtag = out[:-p.MAC_LEN], out[-p.MAC_LEN:]
        if not secrets.compare_digest(rtag, crypto.mac8(self._mac, p.response_mac_input(
                SW.OK, self._counter, data))):
            raise ProtocolError(f"{name}: answer MAC does not verify")
        return data

    def _encrypt(self, plain: bytes) -> bytes:
        if self._enc is None:
            raise ProtocolError("authenticate first")
        # The card decrypts with the counter value of this command: the next one.
        return crypto.encrypt(self._enc, self._counter + 1, plain)

    # --- commands --------------------------------------------------------------------------

    def read_info(self) -> p.CardInfo:
        return p.CardInfo.decode(self._secure(p.INS_READ_INFO, b"", name="READ INFO"))

    def read_profile(self) -> tuple[str, p.CardProfile]:
        """The card's product and concession profile."""
        out = self._secure(p.INS_READ_PROFILE, b"", name="READ PROFILE")
        return p.PRODUCT_NAMES.get(out[0], "unknown"), p.CardProfile.decode(out[1:])

    def write_profile(self, sealed: bytes) -> tuple[p.CardProfile, bool]:
        """Write a concession profile the backend sealed for this card (`readers.profiles`:
        encrypted and MACed with keys of the card's load key; the terminal cannot read or
        change it). The card answers with the profile it now carries. Writing the same
        version again (after a tear) changes nothing and answers recovered; an older version
        is refused."""
        out = self._secure(p.INS_WRITE_PROFILE, sealed, name="WRITE PROFILE")
        return p.CardProfile.decode(out), bool(out[p.CardProfile.SIZE])

    def read_purse(self) -> p.PurseState:
        return p.PurseState.decode(self._secure(p.INS_READ_PURSE, b"", name="READ PURSE"))

    def read_records(self, n: int = p.RECORDS_KEPT) -> list[p.TxRecord]:
        raw = self._secure(p.INS_READ_RECORDS, b"", p2=n, name="READ RECORDS")
        try:
            return p.TxRecord.decode_many(raw)
        except (ValueError, KeyError, struct.error) as exc:
            raise ProtocolError(f"READ RECORDS: {exc}") from None

    def debit(self, amount: int, terminal_id: int, terminal_seq: int, when: int) -> TxResult:
        """Debit the purse. Repeating a debit with the same terminal id and sequence number
        (after a tear) returns the original result; it never debits twice."""
        out = self._secure(p.INS_DEBIT, struct.pack(">IIII", amount, terminal_id,
                                                    terminal_seq, when), name="DEBIT")
        return TxResult(p.TxRecord.decode(out), bool(out[-1]))

    def ride(self, amount: int, full_fare: int, terminal_id: int, terminal_seq: int,
             when: int) -> TxResult:
        """A fare debit: `amount` is the fare charged (0 for a free ride), `full_fare` the
        fare without concession. The card's record, and its certificate, carry both with the
        card's own product and concession. Repeated after a tear like `debit`."""
        out = self._secure(p.INS_DEBIT, struct.pack(">IIIII", amount, terminal_id,
                                                    terminal_seq, when, full_fare),
                           p1=p.DEBIT_RIDE, name="RIDE")
        return TxResult(p.TxRecord.decode(out), bool(out[-1]))

    def load(self, amount: int, load_id: int, terminal_id: int, when: int,
             authorisation: bytes) -> TxResult:
        """Load value authorised online, in a session opened with the card's load key (only
        the backend holds it): `authorisation` is the backend's MAC for this card, its current
        counter, the amount and the load id. Load ids only increase; an old one is refused
        unless the card still keeps its record (then the original result comes back)."""
        payload = struct.pack(">IIII", amount, load_id, terminal_id, when) + authorisation
        out = self._secure(p.INS_LOAD, payload, name="LOAD")
        return TxResult(p.TxRecord.decode(out), bool(out[-1]))

    def put_keys(self, keys: dict[KeyPurpose, tuple[int, bytes]]) -> None:
        plain = b"".join(bytes([int(purpose), version]) + key
                         for purpose, (version, key) in keys.items())
        self._secure(p.INS_PUT_KEYS, self._encrypt(plain), name="PUT KEYS")

    def write_info(self, info: p.CardInfo) -> None:
        self._secure(p.INS_WRITE_INFO, info.encode(), name="WRITE INFO")

    def lock(self) -> None:
        self._secure(p.INS_LOCK, b"", name="LOCK")

    def change_key(self, purpose: KeyPurpose, version: int, key: bytes) -> None:
        self._secure(p.INS_CHANGE_KEY, self._encrypt(bytes([int(purpose), version]) + key),
                     name="CHANGE KEY")


def proof_valid(key: bytes, uid: bytes, rnd_a: bytes, rnd_b: bytes, proof: bytes) -> bool:
    """Whether the card holding `key` (diversified for `uid`) answered challenge `rnd_a`."""
    return secrets.compare_digest(proof, crypto.aes_cmac(key, b"\x01" + rnd_a + rnd_b + uid))


def personalise(session: CardSession, info: p.CardInfo,
                keys: dict[KeyPurpose, tuple[int, bytes]],
                transport_key: bytes = p.TRANSPORT_KEY,
                profile: p.CardProfile | None = None) -> None:
    """Blank card → issued card: authenticate with the card's transport key, install the
    diversified keys, write the card data (and its concession profile), lock. A locked card
    refuses (ConditionsNotSatisfied).

    A personalisation cut short after PUT KEYS left the card unlocked with its new
    personalisation key instead of the transport key: it is resumed with that key."""
    sel = session.select()
    perso_version = sel.key_versions.get(int(KeyPurpose.PERSONALISATION), 0)
    if perso_version == 0 or sel.locked:
        session.authenticate(KeyPurpose.PERSONALISATION, transport_key, 0)
    else:
        version, key = keys[KeyPurpose.PERSONALISATION]
        session.authenticate(KeyPurpose.PERSONALISATION, key, version)
    session.put_keys(keys)
    session.write_info(info)
    if profile is not None and profile != p.NO_PROFILE:
        session.write_profile(profiles.seal(keys[KeyPurpose.LOAD][1], sel.uid,
                                            info.card_number, profile))
    session.lock()
