"""Signed POS requests (merchants/pos/signing.py): the signature covers every part of the
request."""

from merchants.pos.signing import canonical, sign, verify


def test_signature_covers_every_part() -> None:
    secret = b"s" * 32
    args = ("POST", "/pos/v1/purchases", "1790000000", "n" * 16, b'{"amount":1}')
    sig = sign(secret, *args)
    assert verify(secret, sig, *args)
    assert canonical(*args).count(b"\n") == 4
    for i, changed in enumerate(("GET", "/pos/v1/refunds", "1790000001", "m" * 16,
                                 b'{"amount":2}')):
        altered = list(args)
        altered[i] = changed
        assert not verify(secret, sig, *altered)
    assert not verify(b"t" * 32, sig, *args)
