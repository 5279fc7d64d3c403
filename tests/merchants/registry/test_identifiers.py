import pytest

from merchants.pos.signing import canonical, sign, verify
from merchants.registry.identifiers import valid_tax_id


@pytest.mark.parametrize("value,ok", [
    ("53212539", True), ("10458575", True), ("88117125", True),
    ("04595252", True),   # valid only under the widened divisible-by-5 rule
    ("12345675", True),   # 7th digit 7: valid through the 28 → 1 reading
    ("88117126", False), ("12345678", False), ("1234567", False), ("1234567a", False),
    ("１０４５８５７５", False), ("١٠٤٥٨٥٧٥", False),  # other scripts' digits: not a 統一編號
    ("1045857²", False),  # a superscript passes str.isdigit but is no digit to int()
])
def test_tax_id(value: str, ok: bool) -> None:
    assert valid_tax_id(value) is ok


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
