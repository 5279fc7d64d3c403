"""Sealed profile updates: the backend encrypts a card's new concession profile under a key
derived from the card's load key and MACs the result, so a terminal that delivers it learns
nothing from it and can change nothing in it. Only the card opens it.

    sealed = version (4) ‖ AES-CBC(profile key, IV from version, profile) (16) ‖
             CMAC(load key, "PA" ‖ UID ‖ card number ‖ version ‖ ciphertext)[0:8]
"""

from __future__ import annotations

import secrets
import struct

from readers import crypto
from readers import protocol as p


def seal(load_key: bytes, uid: bytes, card_number: str, profile: p.CardProfile) -> bytes:
    ct = crypto.encrypt(crypto.profile_key(load_key), profile.version, profile.encode())
    mac = crypto.mac8(load_key, p.sealed_profile_mac_input(uid, card_number, profile.version,
                                                           ct))
    return struct.pack(">I", profile.version) + ct + mac


class SealBroken(ValueError):
    """The sealed update is not the backend's for this card (MAC), or does not open."""


def open_sealed(load_key: bytes, uid: bytes, card_number: str, sealed: bytes
                ) -> p.CardProfile:
    if len(sealed) != p.SEALED_PROFILE_LEN:
        raise SealBroken("a sealed profile is 28 bytes")
    version, ct, mac = struct.unpack(">I", sealed[:4])[0], sealed[4:20], sealed[20:]
    expected = crypto.mac8(load_key, p.sealed_profile_mac_input(uid, card_number, version, ct))
    if not secrets.compare_digest(mac, expected):
        raise SealBroken("the MAC does not verify")
    try:
        profile = p.CardProfile.decode(crypto.decrypt(crypto.profile_key(load_key), version,
                                                      ct))
    except (ValueError, struct.error):
        raise SealBroken("the profile does not open") from None
    if profile.version != version or profile.concession == "unknown":
        raise SealBroken("the profile inside is not the one announced")
    return profile
