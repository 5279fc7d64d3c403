"""The card key store: master keys per purpose (identity, debit, load, personalisation) and
version, wrapped under the KEK from the secrets file.

Master keys leave this module only as diversified card keys (for personalisation and the
backend's own MACs) or, for the debit purpose alone, as a terminal provisioning export. They
never appear in logs, errors or API responses.
"""

from __future__ import annotations

import base64
import os
import secrets

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from sqlalchemy import select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from cardsvc.audit import service as audit
from cardsvc.context import Actor
from cardsvc.errors import ConfigurationError, NotFound
from cardsvc.keystore.models import CardMasterKey
from readers import crypto, profiles
from readers import protocol as p
from readers.protocol import PURPOSE_NAMES, KeyPurpose

TRANSPORT = "transport"  # master of the blank cards' transport keys (version 0 on the card)


def _aad(purpose: str, version: int) -> bytes:
    return f"card-master:{purpose}:{version}".encode()


def _wrap(kek: bytes, purpose: str, version: int, key: bytes) -> str:
    nonce = os.urandom(12)
    return base64.b64encode(nonce + AESGCM(kek).encrypt(nonce, key, _aad(purpose, version))
                            ).decode()


def _unwrap(kek: bytes, row: CardMasterKey) -> bytes:
    return unwrap_master(kek, row.purpose, row.version, row.wrapped)


def unwrap_master(kek: bytes, purpose: str, version: int, wrapped: str) -> bytes:
    raw = base64.b64decode(wrapped)
    try:
        return AESGCM(kek).decrypt(raw[:12], raw[12:], _aad(purpose, version))
    except InvalidTag:
        # Say which key, never anything of the key.
        raise ConfigurationError(
            f"card master key {purpose} v{version} does not unwrap with this KEK"
        ) from None


# Per card, for the life of the process: its diversified load key ready to MAC, and the
# card-number prefix of its certificates. Diversifying a key costs more than checking a
# certificate, and a card's records arrive many times (every purchase online; many merchants'
# partitions in clearing). Master key versions never change, so entries never go stale.
_CERT_KEYS: dict[tuple[bytes, bytes, str, str], tuple[crypto.CmacKey, bytes]] = {}
_CERT_KEYS_MAX = 500_000
_DEBIT = int(p.TxType.DEBIT)


def debit_certificate(master: bytes, system_id: bytes, uid_hex: str, card_number: str,
                      counter: int, amount: int, balance_after: int, terminal_id: int,
                      terminal_seq: int, when: int) -> bytes:
    """The certificate a genuine card computes for this DEBIT (same as `verify_certificate`,
    with the card's key kept for its next record)."""
    cache_key = (master, system_id, uid_hex, card_number)
    card = _CERT_KEYS.get(cache_key)
    if card is None:
        if len(_CERT_KEYS) >= _CERT_KEYS_MAX:
            _CERT_KEYS.clear()
        card = (crypto.CmacKey(crypto.diversify_key(master, bytes.fromhex(uid_hex), p.AID,
                                                    system_id)),
                p.certificate_prefix(card_number))
        _CERT_KEYS[cache_key] = card
    key, prefix = card
    return key.mac8(prefix + p.CERTIFICATE_FIELDS.pack(
        _DEBIT, counter, amount, balance_after, terminal_id, terminal_seq, when))


class KeyStore:
    """Bound to one unit of work and the KEK."""

    def __init__(self, db: Session, kek: bytes, system_id: bytes) -> None:
        self.db, self._kek, self.system_id = db, kek, system_id

    def ensure_initial(self, actor: Actor) -> bool:
        """Create version 1 of every purpose, and the transport master, when missing."""
        created = False
        if self.db.scalar(select(CardMasterKey.id).where(
                CardMasterKey.purpose != TRANSPORT).limit(1)) is None:
            for purpose in KeyPurpose:
                self._add(PURPOSE_NAMES[purpose], 1, actor)
            created = True
        if self.db.scalar(select(CardMasterKey.id).where(
                CardMasterKey.purpose == TRANSPORT).limit(1)) is None:
            self._add(TRANSPORT, 1, actor)
            created = True
        return created

    def transport_key(self, uid: bytes) -> bytes:
        """A blank card's transport key, diversified per card from the transport master that
        the card supplier was given: watching one personalisation reveals nothing of another
        card, and without this master the session keys of a personalisation stay secret."""
        row = self.db.scalar(select(CardMasterKey).where(CardMasterKey.purpose == TRANSPORT)
                             .order_by(CardMasterKey.version.desc()).limit(1))
        if row is None:
            raise NotFound("no transport master key")
        return crypto.diversify_key(_unwrap(self._kek, row), uid, p.AID, self.system_id)

    def _add(self, name: str, version: int, actor: Actor) -> None:
        try:
            with self.db.begin_nested():
                self.db.add(CardMasterKey(purpose=name, version=version, active=True,
                                          wrapped=_wrap(self._kek, name, version,
                                                        secrets.token_bytes(16))))
                self.db.flush()
        except IntegrityError:
            return  # another process created it first
        audit.record_for(self.db, actor, "keys.card_master_create", target_type="key",
                         target_id=f"{name}:v{version}")

    def active_version(self, purpose: KeyPurpose) -> int:
        version = self.db.scalar(
            select(CardMasterKey.version).where(CardMasterKey.purpose == PURPOSE_NAMES[purpose],
                                                CardMasterKey.active.is_(True))
            .order_by(CardMasterKey.version.desc()).limit(1))
        if version is None:
            raise NotFound(f"no active {PURPOSE_NAMES[purpose]} master key")
        return int(version)

    def master(self, purpose: KeyPurpose, version: int) -> bytes:
        row = self.db.scalar(select(CardMasterKey).where(
            CardMasterKey.purpose == PURPOSE_NAMES[purpose], CardMasterKey.version == version))
        if row is None:
            raise NotFound(f"no {PURPOSE_NAMES[purpose]} master key version {version}")
        return _unwrap(self._kek, row)

    def masters(self, purpose: KeyPurpose) -> dict[int, bytes]:
        rows = self.db.scalars(select(CardMasterKey).where(
            CardMasterKey.purpose == PURPOSE_NAMES[purpose]))
        return {r.version: _unwrap(self._kek, r) for r in rows}

    def card_key(self, purpose: KeyPurpose, version: int, uid: bytes) -> bytes:
        return crypto.diversify_key(self.master(purpose, version), uid, p.AID, self.system_id)

    def personalisation_keys(self, uid: bytes) -> dict[KeyPurpose, tuple[int, bytes]]:
        out = {}
        for purpose in KeyPurpose:
            version = self.active_version(purpose)
            out[purpose] = (version, self.card_key(purpose, version, uid))
        return out

    def rotate(self, purpose: KeyPurpose, actor: Actor) -> int:
        """A new version becomes active for new cards; old versions stay for existing ones."""
        name = PURPOSE_NAMES[purpose]
        version = self.active_version(purpose) + 1
        self._add(name, version, actor)
        audit.record_for(self.db, actor, "keys.card_master_rotate", target_type="key",
                         target_id=f"{name}:v{version}")
        return version

    def retire(self, purpose: KeyPurpose, version: int, actor: Actor) -> None:
        self.db.execute(update(CardMasterKey).where(
            CardMasterKey.purpose == PURPOSE_NAMES[purpose], CardMasterKey.version == version
        ).values(active=False))
        audit.record_for(self.db, actor, "keys.card_master_retire", target_type="key",
                         target_id=f"{PURPOSE_NAMES[purpose]}:v{version}")

    def load_authorisation(self, uid: bytes, card_number: str, counter: int, amount: int,
                           load_id: int, load_key_version: int) -> bytes:
        """The MAC a card checks before it loads value: computed here and only here."""
        key = self.card_key(KeyPurpose.LOAD, load_key_version, uid)
        return crypto.mac8(key, p.load_authorisation_input(uid, card_number, counter, amount,
                                                           load_id))

    def verify_certificate(self, uid: bytes, card_number: str, record: p.TxRecord,
                           load_key_version: int) -> bool:
        """Check a card's transaction certificate without the card."""
        try:
            key = self.card_key(KeyPurpose.LOAD, load_key_version, uid)
        except NotFound:
            return False
        expected = crypto.mac8(key, p.record_certificate_input(card_number, record))
        return secrets.compare_digest(expected, record.certificate)

    def seal_profile(self, uid: bytes, card_number: str, profile: p.CardProfile,
                     load_key_version: int) -> bytes:
        """A concession profile sealed for one card: only that card opens and accepts it."""
        return profiles.seal(self.card_key(KeyPurpose.LOAD, load_key_version, uid), uid,
                             card_number, profile)
