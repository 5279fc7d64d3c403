"""三段式條碼: check characters worked out by hand, the parser's refusals, the images."""

from __future__ import annotations

import datetime as dt

import pytest

from settlement.bills.barcodes import (
    CODE39,
    SlipError,
    check_code,
    make_segments,
    modules,
    parse,
    png,
)

# Worked by hand (letters: K → 2, M → 4, W → 6, B → 2):
#   segment 1  1 5 1 2 3 1 K M 1          odd 1+1+3+2+1 = 8        even 5+2+1+4 = 12
#   segment 2  W B 0 0 0 1 2 3 4 5 6 7 8 9 0 1
#                                         odd 6+0+0+2+4+6+8+0 = 26 even 2+0+1+3+5+7+9+1 = 28
#   segment 3  1 5 1 1 _ _ 0 0 0 0 0 0 3 5 0 (positions 5-6 left out)
#                                         odd 1+1+0+0+0+3+0 = 5    even 5+1+0+0+0+5 = 11
#   odd 39 mod 11 = 6 → "6"; even 51 mod 11 = 7 → "7"
S1, S2 = "151231KM1", "WB00012345678901"
S3 = "151167000000350"
# The same bill for NT$880: amount digits add 8 to odd (position 13) and 8 to even (14):
#   odd 36 + 8 = 44 → 0 → "A"; even 46 + 8 = 54 → 10 → "Y"
S3_880 = "1511AY000000880"


def test_check_characters_worked_by_hand() -> None:
    assert check_code(S1, S2, S3) == "67"
    assert check_code(S1, S2, "1511??000000350") == "67"  # positions 5-6 are ignored
    assert check_code(S1, S2, S3_880) == "AY"


def test_letters_count_as_digits() -> None:
    # A-I → 1-9, J-R → 1-9, S-Z → 2-9: the same slip with letters swapped for their digits
    # (in the collection code) has the same check characters.
    assert check_code("151231AJS", S2, S3) == check_code("151231112", S2, S3)
    assert check_code("151231IRZ", S2, S3) == check_code("151231999", S2, S3)


def test_parse_a_slip() -> None:
    slip = parse(S1, S2, S3)
    assert slip.deadline == dt.date(2026, 12, 31)  # ROC 115
    assert (slip.collection_code, slip.bill_number, slip.period, slip.amount) == (
        "KM1", S2, "1511", 350)
    assert slip.segments == (S1, S2, S3)
    assert make_segments(dt.date(2026, 12, 31), "KM1", S2, "1511", 880) == (S1, S2, S3_880)


@pytest.mark.parametrize(("segments", "segment", "words"), [
    ((S1[:-1], S2, S3), 1, "8 characters"),
    (("151331KM1", S2, S3), 1, "not a date"),
    ((S1, S2 + "0", S3), 2, "17 characters"),
    ((S1, S2[:-1] + "-", S3), 2, "character"),
    ((S1, S2, "151367000000350"), 3, "not a period"),
    ((S1, S2, "151167000000530"), 3, "check characters 67"),  # two digits swapped
    ((S1, "WB00012345678902", S3), 3, "mistyped or altered"),  # an altered bill number
    ((S1, S2, "1511AY000000350"), 3, "expected 67"),
])
def test_a_mistyped_slip_names_its_segment(segments: tuple[str, str, str], segment: int,
                                           words: str) -> None:
    with pytest.raises(SlipError) as err:
        parse(*segments)
    assert err.value.segment == segment and words in err.value.detail
    assert err.value.code == "bad_barcode"


def test_code39_images() -> None:
    assert all(p.count("1") == 3 and len(p) == 9 for p in CODE39.values())
    assert len(set(CODE39.values())) == len(CODE39)
    bars = modules(S1)
    # Start and stop characters, 9 characters between: 11 × (6 narrow + 3 wide + 1 gap).
    assert len(bars) == 10 + 11 * (6 + 3 * 3 + 1) + 9
    image = png(S1)
    assert image.startswith(b"\x89PNG\r\n\x1a\n") and b"IEND" in image
