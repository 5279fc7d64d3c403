"""The resident-card application in Python: what a Java Card applet does on a real card.

State lives in a JSON file per card (or in memory). Every purse change is journaled: the new
state is first written as a pending transaction, then committed; both writes are atomic file
replacements. Power can be cut (the card "leaves the field") before, between or after them;
the next power-up rolls a complete journal forward, so a debit or load happens wholly or not
at all. A terminal that lost the answer repeats the command with the same terminal sequence
number (or load id) and gets the original result back instead of a second debit.

Tearing is injected with `TearPlan`: after the N-th APDU since the plan was armed, at a chosen
stage of that command.
"""

from __future__ import annotations

import json
import os
import secrets
import struct
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from readers import crypto, profiles
from readers import protocol as p
from readers.protocol import SW, KeyPurpose, TxType

_KNOWN_INS = frozenset({
    p.INS_AUTH_FIRST, p.INS_AUTH_SECOND, p.INS_READ_INFO, p.INS_READ_PURSE, p.INS_DEBIT,
    p.INS_LOAD, p.INS_READ_RECORDS, p.INS_PUT_KEYS, p.INS_WRITE_INFO, p.INS_LOCK,
    p.INS_CHANGE_KEY, p.INS_READ_PROFILE, p.INS_WRITE_PROFILE,
})


class CardTorn(ConnectionError):
    """The card lost power mid-command: the terminal gets no answer. (A ConnectionError, so
    in-process readers tell a tear from a crash of the card code.)"""


@dataclass
class TearPlan:
    """Cut the power at APDU number `apdu_index` (1-based, counted from arming), at `stage`:
    'before' (nothing of the command happens), 'journaled' (purse commands: the journal is
    written, the purse not yet updated) or 'after' (the command completed, its answer is lost).
    """

    apdu_index: int
    stage: str = "after"
    seen: int = 0
    fired: bool = False


class _Reply(Exception):
    def __init__(self, sw: int, data: bytes = b"") -> None:
        self.sw, self.data = sw, data


@dataclass
class _Session:
    purpose: int
    enc: bytes
    mac: bytes
    counter: int = 0


@dataclass
class _PendingAuth:
    purpose: int
    key: bytes
    rnd_a: bytes
    rnd_b: bytes


def _blank_state(uid: bytes, transport_key: bytes) -> dict[str, Any]:
    return {
        "uid": uid.hex(),
        "personalised": False,
        "locked": False,
        "keys": {str(int(KeyPurpose.PERSONALISATION)): {"version": 0,
                                                        "key": transport_key.hex()}},
        "info": None,
        "purse": {"balance": 0, "counter": 0, "blocked": False},
        "records": [],
        "max_load_id": 0,  # loads are applied in increasing id order, each at most once
        "profile": p.NO_PROFILE.encode().hex(),
        "pending": None,
    }


@dataclass
class VirtualCard:
    uid: bytes
    state_path: Path | None = None
    transport_key: bytes = p.TRANSPORT_KEY
    tear: TearPlan | None = None
    state: dict[str, Any] = field(default_factory=dict)
    powered: bool = False
    apdus: int = 0

    def __post_init__(self) -> None:
        if self.state_path is not None and Path(self.state_path).exists():
            self.state = json.loads(Path(self.state_path).read_text())
            if bytes.fromhex(self.state["uid"]) != self.uid:
                raise ValueError("state file belongs to a card with another UID")
        else:
            self.state = _blank_state(self.uid, self.transport_key)
            self._save()
        self._selected = False
        self._session: _Session | None = None
        self._pending_auth: _PendingAuth | None = None

    # --- power and persistence -------------------------------------------------------------

    def _save(self) -> None:
        if self.state_path is None:
            return
        path = Path(self.state_path)
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
        with os.fdopen(fd, "w") as fh:
            json.dump(self.state, fh)
        os.replace(tmp, path)

    def power_on(self) -> bytes:
        """Field on: volatile state reset, an unfinished transaction rolled forward. Returns
        the ATR."""
        self.powered = True
        self._selected = False
        self._session = None
        self._pending_auth = None
        self._recover()
        return self.atr

    def power_off(self) -> None:
        self.powered = False
        self._selected = False
        self._session = None
        self._pending_auth = None

    @property
    def atr(self) -> bytes:
        # A contactless ISO 14443-4 card as PC/SC part 3 builds its ATR: 3B 8n 80 01 + the
        # historical bytes + TCK. Historical bytes: "KMCARD".
        hist = b"KMCARD"
        body = bytes([0x3B, 0x80 | len(hist), 0x80, 0x01]) + hist
        tck = 0
        for b in body[1:]:
            tck ^= b
        return body + bytes([tck])

    def _recover(self) -> None:
        pending = self.state.get("pending")
        if pending:
            self._commit(pending)

    def _commit(self, pending: dict[str, Any]) -> None:
        if "profile" in pending:
            self.state["profile"] = pending["profile"]
        if "purse" in pending:
            self.state["purse"] = pending["purse"]
            self.state["records"] = ([pending["record"]]
                                     + self.state["records"])[:p.RECORDS_KEPT]
        if "max_load_id" in pending:
            self.state["max_load_id"] = pending["max_load_id"]
        self.state["pending"] = None
        self._save()

    # --- key material ----------------------------------------------------------------------

    def _key(self, purpose: int, version: int | None = None) -> bytes:
        entry = self.state["keys"].get(str(purpose))
        if entry is None or (version is not None and entry["version"] != version):
            raise _Reply(SW.KEY_NOT_FOUND)
        return bytes.fromhex(entry["key"])

    def _key_versions(self) -> dict[int, int]:
        return {int(k): v["version"] for k, v in self.state["keys"].items()}

    # --- APDU processing -------------------------------------------------------------------

    def arm(self, plan: TearPlan | None) -> None:
        self.tear = plan

    def _tear_stage(self) -> str | None:
        plan = self.tear
        if plan is None or plan.fired:
            return None
        plan.seen += 1
        if plan.seen == plan.apdu_index:
            plan.fired = True
            return plan.stage
        return None

    def _torn(self) -> CardTorn:
        self.power_off()
        return CardTorn()

    def process(self, apdu: bytes) -> bytes:
        """One C-APDU in, one R-APDU out; raises CardTorn when the power is cut."""
        self.apdus += 1
        stage = self._tear_stage()
        if stage == "before":
            raise self._torn()
        self._stage = stage
        try:
            data = self._dispatch(apdu)
            out = data + SW.OK.to_bytes(2, "big")
        except _Reply as r:
            if r.sw != SW.OK:
                # A refused command ends the secure session, as on real cards.
                self._session = None
            out = r.data + int(r.sw).to_bytes(2, "big")
        if stage is not None:
            raise self._torn()
        return out

    def _dispatch(self, apdu: bytes) -> bytes:
        if len(apdu) < 4:
            raise _Reply(SW.WRONG_LENGTH)
        cla, ins, p1, p2 = apdu[0], apdu[1], apdu[2], apdu[3]
        body = apdu[4:]
        data = b""
        if len(body) > 1:
            lc = body[0]
            data = body[1:1 + lc]
            if len(data) != lc or len(body) not in (1 + lc, 2 + lc):
                raise _Reply(SW.WRONG_LENGTH)
        if cla == 0xFF and ins == p.INS_GET_UID:
            return self.uid
        if cla == p.CLA_ISO and ins == p.INS_SELECT:
            return self._select(p1, p2, data)
        if cla not in (p.CLA_ISO, p.CLA_PROP):
            raise _Reply(SW.CLA_NOT_SUPPORTED)
        if cla != p.CLA_PROP or ins not in _KNOWN_INS:
            raise _Reply(SW.INS_NOT_SUPPORTED)
        if not self._selected:
            raise _Reply(SW.CONDITIONS)
        if ins == p.INS_AUTH_FIRST:
            return self._auth_first(p1, p2, data)
        if ins == p.INS_AUTH_SECOND:
            return self._auth_second(data)
        readers = (KeyPurpose.IDENTITY, KeyPurpose.DEBIT, KeyPurpose.LOAD)
        handlers = {
            p.INS_READ_INFO: (self._read_info, readers),
            p.INS_READ_PURSE: (self._read_purse, readers),
            p.INS_READ_RECORDS: (self._read_records, readers),
            p.INS_READ_PROFILE: (self._read_profile, readers),
            # Any authenticated session may carry a profile update: its authorisation is the
            # backend's MAC with the load key, so a terminal delivers what it cannot forge.
            p.INS_WRITE_PROFILE: (self._write_profile, tuple(KeyPurpose)),
            p.INS_DEBIT: (self._debit, (KeyPurpose.DEBIT,)),
            # Loads only in a session opened with the load key, which only the backend holds:
            # a card emulator holding the debit key cannot fake the counter and records the
            # backend relies on to authorise a load exactly once.
            p.INS_LOAD: (self._load, (KeyPurpose.LOAD,)),
            p.INS_PUT_KEYS: (self._put_keys, (KeyPurpose.PERSONALISATION,)),
            p.INS_WRITE_INFO: (self._write_info, (KeyPurpose.PERSONALISATION,)),
            p.INS_LOCK: (self._lock, (KeyPurpose.PERSONALISATION,)),
            p.INS_CHANGE_KEY: (self._change_key, (KeyPurpose.PERSONALISATION,)),
        }
        handler, purposes = handlers[ins]
        session = self._session
        if session is None or session.purpose not in purposes:
            raise _Reply(SW.SECURITY_STATUS)
        if ins == p.INS_DEBIT:
            if p1 not in (p.DEBIT_PURCHASE, p.DEBIT_RIDE) or p2 != 0:
                raise _Reply(SW.WRONG_P1P2)
        elif ins != p.INS_READ_RECORDS and (p1, p2) != (0, 0):
            raise _Reply(SW.WRONG_P1P2)
        if len(data) < p.MAC_LEN:
            raise _Reply(SW.WRONG_LENGTH)
        if session.counter >= 0xFFFF:
            raise _Reply(SW.CONDITIONS)  # the 2-byte command counter never wraps: re-authenticate
        payload, mac = data[:-p.MAC_LEN], data[-p.MAC_LEN:]
        session.counter += 1
        expected = crypto.mac8(session.mac, p.command_mac_input(cla, ins, p1, p2,
                                                                session.counter, payload))
        if not secrets.compare_digest(mac, expected):
            raise _Reply(SW.SECURITY_STATUS)
        result = handler(p1, p2, payload)
        return result + crypto.mac8(session.mac, p.response_mac_input(SW.OK, session.counter,
                                                                      result))

    # --- commands --------------------------------------------------------------------------

    def _select(self, p1: int, p2: int, data: bytes) -> bytes:
        if p1 != 0x04:
            raise _Reply(SW.WRONG_P1P2)
        if data != p.AID:
            self._selected = False
            raise _Reply(SW.NOT_FOUND)
        self._recover()
        self._selected = True
        self._session = None
        return p.SelectInfo(self.uid, p.APP_VERSION, self.state["personalised"],
                            self.state["locked"], self._key_versions()).encode()

    def _auth_first(self, p1: int, p2: int, data: bytes) -> bytes:
        self._session = None
        if len(data) != 16:
            raise _Reply(SW.WRONG_LENGTH)
        if p1 not in KeyPurpose.__members__.values():
            raise _Reply(SW.WRONG_P1P2)
        key = self._key(p1, p2)
        rnd_b = secrets.token_bytes(16)
        self._pending_auth = _PendingAuth(p1, key, data, rnd_b)
        proof = crypto.aes_cmac(key, b"\x01" + data + rnd_b + self.uid)
        return rnd_b + proof

    def _auth_second(self, data: bytes) -> bytes:
        pending, self._pending_auth = self._pending_auth, None
        if pending is None:
            raise _Reply(SW.CONDITIONS)
        if len(data) != 16:
            raise _Reply(SW.WRONG_LENGTH)
        expected = crypto.aes_cmac(pending.key, b"\x02" + pending.rnd_b + pending.rnd_a)
        if not secrets.compare_digest(data, expected):
            raise _Reply(SW.AUTH_FAILED)
        enc, mac = crypto.session_keys(pending.key, pending.rnd_a, pending.rnd_b)
        self._session = _Session(pending.purpose, enc, mac)
        # Everything a terminal checks before a purchase or a ride, in this one answer.
        blob = self._info_bytes() + self._purse().encode() + self._profile_bytes()
        ct = crypto.encrypt(enc, 0, blob)
        return ct + crypto.mac8(mac, p.response_mac_input(SW.OK, 0, ct))

    def _info_bytes(self) -> bytes:
        return bytes.fromhex(self.state["info"]) if self.state["info"] else bytes(13)

    def _profile_bytes(self) -> bytes:
        return bytes.fromhex(self.state.get("profile") or p.NO_PROFILE.encode().hex())

    def _purse(self) -> p.PurseState:
        s = self.state["purse"]
        return p.PurseState(s["balance"], s["counter"], s["blocked"])

    def _read_info(self, _p1: int, _p2: int, _payload: bytes) -> bytes:
        return self._info_bytes()

    def _read_purse(self, _p1: int, _p2: int, _payload: bytes) -> bytes:
        return self._purse().encode()

    def _read_profile(self, _p1: int, _p2: int, _payload: bytes) -> bytes:
        return self._info_bytes()[8:9] + self._profile_bytes()

    def _write_profile(self, _p1: int, _p2: int, payload: bytes) -> bytes:
        if len(payload) != p.SEALED_PROFILE_LEN:
            raise _Reply(SW.WRONG_LENGTH)
        if not self.state["info"] or str(int(KeyPurpose.LOAD)) not in self.state["keys"]:
            raise _Reply(SW.CONDITIONS)  # nothing to bind the update to yet
        number = p.CardInfo.decode(self._info_bytes()).card_number
        try:
            profile = profiles.open_sealed(self._key(KeyPurpose.LOAD), self.uid, number,
                                           payload)
        except profiles.SealBroken:
            raise _Reply(SW.SECURITY_STATUS) from None
        raw = profile.encode()
        current = p.CardProfile.decode(self._profile_bytes())
        if profile.version == current.version and raw == self._profile_bytes():
            return raw + b"\x01"  # written before (a retry after a tear): nothing changes
        if profile.version <= current.version:
            raise _Reply(SW.WRONG_DATA)  # an old update never overwrites a newer profile
        pending = {"profile": raw.hex()}
        self.state["pending"] = pending
        self._save()
        if self._stage == "journaled":
            raise self._torn()
        self._commit(pending)
        return raw + b"\x00"

    def _read_records(self, _p1: int, p2: int, _payload: bytes) -> bytes:
        if not 1 <= p2 <= p.RECORDS_KEPT:
            raise _Reply(SW.WRONG_P1P2)
        return b"".join(bytes.fromhex(r) for r in self.state["records"][:p2])

    def _require_issued(self) -> None:
        if not (self.state["personalised"] and self.state["locked"]):
            raise _Reply(SW.CONDITIONS)

    def _require_purse_open(self) -> None:
        if self.state["purse"]["blocked"]:
            raise _Reply(SW.CONDITIONS)

    def _find_record(self, tx: tuple[TxType, ...], terminal_id: int | None,
                     seq: int) -> p.TxRecord | None:
        """A kept record of these transaction types with this terminal sequence (or load
        id)."""
        for raw in self.state["records"]:
            rec = p.TxRecord.decode(bytes.fromhex(raw))
            if rec.tx_type in tx and rec.terminal_seq == seq and (
                    terminal_id is None or rec.terminal_id == terminal_id):
                return rec
        return None

    def _purse_change(self, tx: TxType, amount: int, terminal_id: int, seq: int,
                      when: int, full_fare: int = 0) -> bytes:
        purse = self._purse()
        counter = purse.counter + 1
        balance = purse.balance + (amount if tx == TxType.LOAD else -amount)
        info = self._info_bytes()
        number = p.CardInfo.decode(info).card_number
        ride = None
        if tx == TxType.RIDE:
            # The card certifies its own product and concession: a terminal cannot claim
            # another one for the ride.
            ride = (info[8], self._profile_bytes()[0], full_fare)
        cert = crypto.mac8(self._key(KeyPurpose.LOAD), p.certificate_input(
            number, tx, counter, amount, balance, terminal_id, seq, when, ride))
        record = p.TxRecord(tx, counter, amount, balance, terminal_id, seq, when, cert,
                            *(ride or ()))
        pending: dict[str, Any] = {
            "purse": {"balance": balance, "counter": counter,
                      "blocked": counter >= p.COUNTER_MAX},
            "record": record.encode().hex(),
        }
        if tx == TxType.LOAD:
            pending["max_load_id"] = seq
        self.state["pending"] = pending
        self._save()
        if self._stage == "journaled":
            raise self._torn()
        self._commit(pending)
        return record.encode() + b"\x00"

    def _debit(self, p1: int, _p2: int, payload: bytes) -> bytes:
        ride = p1 == p.DEBIT_RIDE
        if len(payload) != (20 if ride else 16):
            raise _Reply(SW.WRONG_LENGTH)
        self._require_issued()
        amount, terminal_id, seq, when = struct.unpack(">IIII", payload[:16])
        full_fare = struct.unpack(">I", payload[16:])[0] if ride else 0
        tx = TxType.RIDE if ride else TxType.DEBIT
        done = self._find_record((TxType.DEBIT, TxType.RIDE), terminal_id, seq)
        if done is not None:
            if (done.tx_type, done.amount, done.full_fare) != (tx, amount, full_fare):
                raise _Reply(SW.WRONG_DATA)
            return done.encode() + b"\x01"  # the same debit again: its original result
        self._require_purse_open()
        if ride:
            # A free ride is still a transaction (amount 0 beside its full fare): it is what
            # the concession's subsidy is paid on.
            if not (0 <= amount <= full_fare and 0 < full_fare <= p.MAX_AMOUNT):
                raise _Reply(SW.WRONG_DATA)
        elif not 0 < amount <= p.MAX_AMOUNT:
            raise _Reply(SW.WRONG_DATA)
        if amount > self.state["purse"]["balance"]:
            raise _Reply(SW.NOT_ENOUGH_VALUE)
        return self._purse_change(tx, amount, terminal_id, seq, when, full_fare)

    def _load(self, _p1: int, _p2: int, payload: bytes) -> bytes:
        if len(payload) != 16 + p.MAC_LEN:
            raise _Reply(SW.WRONG_LENGTH)
        self._require_issued()
        amount, load_id, terminal_id, when = struct.unpack(">IIII", payload[:16])
        auth = payload[16:]
        done = self._find_record((TxType.LOAD,), None, load_id)
        if done is not None:
            if done.amount != amount:
                raise _Reply(SW.WRONG_DATA)
            return done.encode() + b"\x01"
        if load_id <= self.state.get("max_load_id", 0):
            raise _Reply(SW.WRONG_DATA)  # an old load id: applied before, or superseded
        self._require_purse_open()
        purse = self._purse()
        number = p.CardInfo.decode(self._info_bytes()).card_number
        expected = crypto.mac8(self._key(KeyPurpose.LOAD), p.load_authorisation_input(
            self.uid, number, purse.counter, amount, load_id))
        if not secrets.compare_digest(auth, expected):
            raise _Reply(SW.SECURITY_STATUS)
        if amount <= 0 or purse.balance + amount > p.MAX_BALANCE:
            raise _Reply(SW.WRONG_DATA)
        return self._purse_change(TxType.LOAD, amount, terminal_id, load_id, when)

    def _put_keys(self, _p1: int, _p2: int, payload: bytes) -> bytes:
        if self.state["locked"]:
            raise _Reply(SW.CONDITIONS)
        session = self._session
        if session is None:  # the dispatcher checked; keep the card safe regardless
            raise _Reply(SW.SECURITY_STATUS)
        try:
            plain = crypto.decrypt(session.enc, session.counter, payload)
        except ValueError:
            raise _Reply(SW.WRONG_DATA) from None
        if len(plain) % 18 or not plain:
            raise _Reply(SW.WRONG_LENGTH)
        keys = {}
        for i in range(0, len(plain), 18):
            purpose, version, key = plain[i], plain[i + 1], plain[i + 2:i + 18]
            if purpose not in KeyPurpose.__members__.values():
                raise _Reply(SW.WRONG_DATA)
            keys[str(purpose)] = {"version": version, "key": key.hex()}
        self.state["keys"].update(keys)
        self._save()
        return b""

    def _write_info(self, _p1: int, _p2: int, payload: bytes) -> bytes:
        if self.state["locked"]:
            raise _Reply(SW.CONDITIONS)
        if len(payload) != 13:
            raise _Reply(SW.WRONG_LENGTH)
        try:
            info = p.CardInfo.decode(payload)
        except (ValueError, KeyError):
            raise _Reply(SW.WRONG_DATA) from None
        if not info.card_number.isdigit() or info.product == "unknown":
            raise _Reply(SW.WRONG_DATA)
        self.state["info"] = payload.hex()
        self._save()
        return b""

    def _lock(self, _p1: int, _p2: int, _payload: bytes) -> bytes:
        if self.state["locked"]:
            raise _Reply(SW.CONDITIONS)
        have = {int(k) for k, v in self.state["keys"].items() if v["version"] > 0}
        if have != set(KeyPurpose) or not self.state["info"]:
            raise _Reply(SW.CONDITIONS)  # incomplete personalisation cannot be locked
        self.state["locked"] = True
        self.state["personalised"] = True
        self._save()
        return b""

    def _change_key(self, p1: int, p2: int, payload: bytes) -> bytes:
        if not self.state["locked"]:
            raise _Reply(SW.CONDITIONS)
        return self._put_keys_after_lock(payload)

    def _put_keys_after_lock(self, payload: bytes) -> bytes:
        session = self._session
        if session is None:  # the dispatcher checked; keep the card safe regardless
            raise _Reply(SW.SECURITY_STATUS)
        try:
            plain = crypto.decrypt(session.enc, session.counter, payload)
        except ValueError:
            raise _Reply(SW.WRONG_DATA) from None
        if len(plain) != 18 or plain[0] not in KeyPurpose.__members__.values():
            raise _Reply(SW.WRONG_DATA)
        current = self.state["keys"][str(plain[0])]["version"]
        if plain[1] <= current:
            raise _Reply(SW.WRONG_DATA)  # key versions only move forward
        self.state["keys"][str(plain[0])] = {"version": plain[1], "key": plain[2:].hex()}
        self._save()
        return b""
