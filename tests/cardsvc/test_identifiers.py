import pytest

from cardsvc.identifiers import (
    luhn_check_digit,
    luhn_valid,
    mask_person_id,
    new_card_number,
    normalize_chip_uid,
    person_id_check_digit,
    person_id_kind,
)


@pytest.mark.parametrize("value,kind", [
    ("A123456789", "national"),  # the textbook example
    ("a123456789", "national"),  # lower case is normalised
    ("W100000014", None),        # wrong check digit
    ("AA00000009", "resident"),  # pre-2021 resident certificate
    ("A800000014", "resident"),  # 2021 resident certificate
    ("A323456789", None),        # 3 is not a valid second character
    ("1234567890", None),
    ("A12345678", None),
])
def test_person_id(value: str, kind: str | None) -> None:
    assert person_id_kind(value) == kind


def test_every_wrong_check_digit_is_refused() -> None:
    head = "W12345678"
    good = person_id_check_digit(head)
    for d in "0123456789":
        assert (person_id_kind(head + d) is not None) == (d == good)


def test_mask() -> None:
    assert mask_person_id("A123456789") == "A12****789"


def test_luhn() -> None:
    assert luhn_valid("79927398713")
    assert not luhn_valid("79927398710")
    assert luhn_check_digit("7992739871") == "3"


def test_card_numbers_are_16_digit_luhn_with_product_digit() -> None:
    for product, digit in (("general", "1"), ("senior", "2"), ("student", "3"),
                           ("mobile", "4")):
        n = new_card_number(product)
        assert len(n) == 16 and n.isdigit() and luhn_valid(n) and n[4] == digit


@pytest.mark.parametrize("raw,norm", [("04a1b2c3", "04A1B2C3"), ("04:A1:B2:C3:D4:E5:F6",
                                      "04A1B2C3D4E5F6"), ("04A1B2", None), ("zz11aa22", None)])
def test_chip_uid(raw: str, norm: str | None) -> None:
    assert normalize_chip_uid(raw) == norm
