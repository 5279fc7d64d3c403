"""The business tax id (統一編號, merchants/registry/identifiers.py): its check digit and edge
cases."""

import pytest

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
