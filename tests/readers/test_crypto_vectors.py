"""Published test vectors: RFC 4493 (AES-CMAC) and NXP AN10922 (AES-128 diversification)."""

import pytest

from readers.crypto import CmacKey, aes_cmac, cmac_subkeys, decrypt, diversify_key, encrypt

RFC_KEY = bytes.fromhex("2b7e151628aed2a6abf7158809cf4f3c")
RFC_MSG = bytes.fromhex(
    "6bc1bee22e409f96e93d7e117393172a"
    "ae2d8a571e03ac9c9eb76fac45af8e51"
    "30c81c46a35ce411e5fbc1191a0a52ef"
    "f69f2445df4f9b17ad2b417be66c3710")


def test_rfc4493_subkeys() -> None:
    k1, k2 = cmac_subkeys(RFC_KEY)
    assert k1.hex() == "fbeed618357133667c85e08f7236a8de"
    assert k2.hex() == "f7ddac306ae266ccf90bc11ee46d513b"


@pytest.mark.parametrize("length,tag", [
    (0, "bb1d6929e95937287fa37d129b756746"),
    (16, "070a16b46b4d4144f79bdd9dd04a287c"),
    (40, "dfa66747de9ae63030ca32611497c827"),
    (64, "51f0bebf7e3b9d92fc49741779363cfe"),
])
def test_rfc4493_examples(length: int, tag: str) -> None:
    assert aes_cmac(RFC_KEY, RFC_MSG[:length]).hex() == tag
    assert CmacKey(RFC_KEY).mac(RFC_MSG[:length]).hex() == tag  # the reusable form too


def test_reusable_cmac_key_agrees_for_every_length() -> None:
    import os
    key = os.urandom(16)
    reusable = CmacKey(key)
    for length in range(0, 70):
        data = os.urandom(length)
        assert reusable.mac(data) == aes_cmac(key, data), length
        assert reusable.mac8(data) == aes_cmac(key, data)[:8]


def test_an10922_aes128_example() -> None:
    """AN10922 section 2.2.1: master 00..FF, UID 04782E21801D80, AID 3042F5,
    system identifier "NXP Abu"."""
    master = bytes.fromhex("00112233445566778899AABBCCDDEEFF")
    k1, k2 = cmac_subkeys(master)
    assert k1.hex().upper() == "FBC9F75C9413C041DFEE452D3F0706D1"
    assert k2.hex().upper() == "F793EEB928278083BFDC8A5A7E0E0D25"
    key = diversify_key(master, bytes.fromhex("04782E21801D80"), bytes.fromhex("3042F5"),
                        b"NXP Abu")
    assert key.hex().upper() == "A8DD63A3B89D54B37CA802473FDA9175"


def test_an10922_full_block_input_uses_k1_and_differs_by_input() -> None:
    master = bytes(16)
    a = diversify_key(master, b"\x04" * 7, b"\xA0" * 8, b"S" * 16)  # 1+31 = 32 bytes: K1
    b = diversify_key(master, b"\x04" * 7, b"\xA0" * 8, b"T" * 16)
    assert len(a) == 16 and a != b
    with pytest.raises(ValueError):
        diversify_key(master, b"\x04" * 7, b"\xA0" * 8, b"S" * 17)


def test_session_encryption_round_trip() -> None:
    key = bytes(range(16))
    for n in (0, 1, 15, 16, 40):
        data = bytes(range(n))
        ct = encrypt(key, 7, data)
        assert decrypt(key, 7, ct) == data
        assert ct != encrypt(key, 8, data)  # the counter changes the IV
