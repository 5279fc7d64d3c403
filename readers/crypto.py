"""Symmetric cryptography of the card protocol: AES-CMAC (RFC 4493), NXP AN10922 key
diversification, session keys and secure-messaging encryption.

Shared by the terminal side (readers.session), the card application (simulators.card) and the
backend (certificate verification, load authorisation), so all three compute the same bytes.
"""

from __future__ import annotations

from cryptography.hazmat.primitives import cmac as _cmac
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes

BLOCK = 16
_RB = 0x87  # the constant of the AES-CMAC subkey doubling (RFC 4493, section 2.3)


def _aes_ecb(key: bytes, block: bytes) -> bytes:
    enc = Cipher(algorithms.AES(key), modes.ECB()).encryptor()  # noqa: S305 - one block, by design
    return enc.update(block) + enc.finalize()


def _double(block: bytes) -> bytes:
    value = int.from_bytes(block, "big") << 1
    if block[0] & 0x80:
        value ^= _RB
    return (value & ((1 << 128) - 1)).to_bytes(BLOCK, "big")


def cmac_subkeys(key: bytes) -> tuple[bytes, bytes]:
    """K1 and K2 of AES-CMAC for `key`."""
    k1 = _double(_aes_ecb(key, bytes(BLOCK)))
    return k1, _double(k1)


def aes_cmac(key: bytes, data: bytes) -> bytes:
    """AES-CMAC (RFC 4493), the full 16-byte tag."""
    c = _cmac.CMAC(algorithms.AES(key))
    c.update(data)
    return c.finalize()


class CmacKey:
    """AES-CMAC under one key, for many messages: the key schedule and the subkeys are made
    once (a backend checking a million certificates spends most of its time there otherwise).
    Same results as `aes_cmac`."""

    def __init__(self, key: bytes) -> None:
        self._enc = Cipher(algorithms.AES(key), modes.ECB()).encryptor()  # noqa: S305 - block by block, chained below
        k1, k2 = cmac_subkeys(key)
        self._k1, self._k2 = int.from_bytes(k1, "big"), int.from_bytes(k2, "big")

    def mac(self, data: bytes) -> bytes:
        n = max(1, -(-len(data) // BLOCK))
        last = data[(n - 1) * BLOCK:]
        if len(last) == BLOCK:
            final = int.from_bytes(last, "big") ^ self._k1
        else:
            padded = last + b"\x80" + bytes(BLOCK - len(last) - 1)
            final = int.from_bytes(padded, "big") ^ self._k2
        x = 0
        update = self._enc.update
        for i in range(n - 1):
            block = int.from_bytes(data[i * BLOCK:(i + 1) * BLOCK], "big")
            x = int.from_bytes(update((x ^ block).to_bytes(BLOCK, "big")), "big")
        return update((x ^ final).to_bytes(BLOCK, "big"))

    def mac8(self, data: bytes) -> bytes:
        return self.mac(data)[:8]


def mac8(key: bytes, data: bytes) -> bytes:
    """The 8-byte truncated CMAC used on the wire (as DESFire EV2 truncates)."""
    return aes_cmac(key, data)[:8]


def diversify_key(master_key: bytes, uid: bytes, aid: bytes, system_id: bytes) -> bytes:
    """NXP AN10922 AES-128 key diversification.

    D = 0x01 ‖ UID ‖ AID ‖ system identifier, padded with 80 00.. to 32 bytes; the diversified
    key is the CMAC-style CBC-MAC of the two blocks with the last block XORed with K2 (K1 when
    the input was exactly 32 bytes and needed no padding). Unlike plain CMAC, a short input is
    always padded to two blocks.
    """
    if len(master_key) != 16:
        raise ValueError("AN10922 AES-128 diversification needs a 16-byte master key")
    m = uid + aid + system_id
    if not 1 <= len(m) <= 31:
        raise ValueError("diversification input (UID ‖ AID ‖ system id) must be 1..31 bytes")
    d = b"\x01" + m
    k1, k2 = cmac_subkeys(master_key)
    if len(d) == 32:
        last_key = k1
    else:
        d = d + b"\x80" + bytes(31 - len(d))
        last_key = k2
    d = d[:16] + bytes(a ^ b for a, b in zip(d[16:], last_key, strict=True))
    enc = Cipher(algorithms.AES(master_key), modes.CBC(bytes(BLOCK))).encryptor()
    out = enc.update(d) + enc.finalize()
    return out[16:]


def session_keys(key: bytes, rnd_a: bytes, rnd_b: bytes) -> tuple[bytes, bytes]:
    """(encryption key, MAC key) of one authenticated session, from both challenges.

    AES-CMAC as a pseudo-random function (NIST SP 800-108 counter-mode style), with distinct
    labels so the two keys are independent.
    """
    ctx = rnd_a + rnd_b
    return aes_cmac(key, b"\x01SESENC" + ctx), aes_cmac(key, b"\x02SESMAC" + ctx)


def pad(data: bytes) -> bytes:
    """ISO/IEC 9797-1 method 2: 80 then zeros up to a block boundary."""
    n = BLOCK - (len(data) + 1) % BLOCK
    return data + b"\x80" + bytes(n % BLOCK)


def unpad(data: bytes) -> bytes:
    stripped = data.rstrip(b"\x00")
    if not stripped or stripped[-1] != 0x80:
        raise ValueError("bad padding")
    return stripped[:-1]


def _iv(key: bytes, counter: int) -> bytes:
    return _aes_ecb(key, b"IV" + counter.to_bytes(4, "big") + bytes(10))


def encrypt(key: bytes, counter: int, data: bytes) -> bytes:
    """AES-CBC under the session encryption key; the IV is derived from the command counter,
    so no two messages of a session share one."""
    enc = Cipher(algorithms.AES(key), modes.CBC(_iv(key, counter))).encryptor()
    return enc.update(pad(data)) + enc.finalize()


def decrypt(key: bytes, counter: int, data: bytes) -> bytes:
    if not data or len(data) % BLOCK:
        raise ValueError("ciphertext is not whole blocks")
    dec = Cipher(algorithms.AES(key), modes.CBC(_iv(key, counter))).decryptor()
    return unpad(dec.update(data) + dec.finalize())


def profile_key(load_key: bytes) -> bytes:
    """The key a card's profile updates are encrypted under, derived from its load key (a
    separate key for encryption and for the MAC)."""
    return aes_cmac(load_key, b"\x04PROFILE-ENCRYPTION")
