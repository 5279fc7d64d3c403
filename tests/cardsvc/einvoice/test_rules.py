"""The uniform-invoice rules with worked examples: every tier, leading zeros, the highest of
several matches, extra sixth prizes, period boundaries, the proof's QR code, withholding."""

from __future__ import annotations

import datetime as dt

import pytest

from cardsvc.einvoice import rules
from cardsvc.einvoice.rules import Draw, Tier
from cardsvc.einvoice.service import parse_draw
from cardsvc.errors import InvalidInput
from tests.support.einvoice import winning_list

AMOUNTS = {Tier.SPECIAL: 10_000_000, Tier.GRAND: 2_000_000, Tier.FIRST: 200_000,
           Tier.SECOND: 40_000, Tier.THIRD: 10_000, Tier.FOURTH: 4_000, Tier.FIFTH: 1_000,
           Tier.SIXTH: 200}
DRAW = Draw(11410, "12345678", "87654321", ("00507588", "40912336", "91286147"), ("765",),
            AMOUNTS)


@pytest.mark.parametrize(("digits", "tier"), [
    ("12345678", Tier.SPECIAL), ("87654321", Tier.GRAND),
    ("00507588", Tier.FIRST),  # leading zeros are digits like any other
    ("10507588", Tier.SECOND), ("11507588", Tier.THIRD), ("11107588", Tier.FOURTH),
    ("11117588", Tier.FIFTH), ("11111588", Tier.SIXTH), ("11111765", Tier.SIXTH),
    ("40912336", Tier.FIRST), ("99912336", Tier.THIRD), ("99992336", Tier.FIFTH),
    ("22345678", None),  # the special number's suffix wins nothing
    ("11111111", None), ("00507589", None)])
def test_each_tier(digits: str, tier: Tier | None) -> None:
    assert rules.regular_tier(digits, DRAW) is tier


def test_several_suffix_matches_win_the_highest_once() -> None:
    # One invoice matching two first-prize numbers at different lengths: one prize, the
    # highest.
    draw = Draw(11410, "12345678", "87654321", ("11223344", "99223344"), (), AMOUNTS)
    assert rules.regular_tier("09223344", draw) is Tier.SECOND  # 7 of 99223344, 6 of the other
    assert rules.regular_tier("99223344", draw) is Tier.FIRST


def test_periods_are_bimonthly_with_the_even_month() -> None:
    assert rules.period_of(dt.date(2025, 10, 31)) == 11410
    assert rules.period_of(dt.date(2025, 9, 1)) == 11410
    assert rules.period_of(dt.date(2025, 11, 1)) == 11412
    assert rules.period_of(dt.date(2026, 1, 1)) == 11502
    assert rules.period_label(11410) == "114年9-10月"
    assert rules.period_months(11412) == (dt.date(2025, 11, 1), dt.date(2025, 12, 31))
    assert rules.draw_date(11410) == dt.date(2025, 11, 25)
    assert rules.claim_window(11410) == (dt.date(2025, 12, 6), dt.date(2026, 3, 5))
    assert rules.claim_window(11412) == (dt.date(2026, 2, 6), dt.date(2026, 5, 5))
    assert rules.valid_period(11410) and not rules.valid_period(11409)
    assert not rules.valid_period(11414) and not rules.valid_period("abc")


def test_withholding_and_stamp_duty() -> None:
    assert rules.withholding(200) == (0, 0)
    assert rules.withholding(1_000) == (0, 4)
    assert rules.withholding(4_000) == (0, 16)
    assert rules.withholding(10_000) == (2_000, 40)
    assert rules.withholding(10_000_000) == (2_000_000, 40_000)
    assert rules.cloud_withholding(500) == (0, 2)
    assert rules.cloud_withholding(800) == (0, 3)
    assert rules.cloud_withholding(1_000_000) == (200_000, 4_000)


def proof(number: str = "AB12345678", date: str = "1141031", random_code: str = "1234",
          sales: int = 95, total: int = 100, buyer: str = "00000000",
          seller: str = "10458575") -> str:
    return (f"{number}{date}{random_code}{sales:08x}{total:08X}{buyer}{seller}"
            + "A" * 24 + ":**********:1:1:1:咖啡:1:100")


def test_a_proof_qr_is_read_field_by_field() -> None:
    qr = rules.parse_proof_qr(proof())
    assert (qr.number, qr.date, qr.random_code, qr.sales, qr.total, qr.buyer, qr.seller) == (
        "AB12345678", dt.date(2025, 10, 31), "1234", 95, 100, "00000000", "10458575")
    assert qr.period == 11410


@pytest.mark.parametrize("text", [
    proof()[:60], proof(number="ab12345678"), proof(date="1141332"), proof(random_code="12a4"),
    proof(buyer="0000000X"), proof().replace("0000005f", "zzzzzzzz", 1)])
def test_a_bad_proof_qr_is_refused(text: str) -> None:
    with pytest.raises(rules.QrError):
        rules.parse_proof_qr(text)


def test_the_winning_list_is_read_as_the_mof_writes_it() -> None:
    draw = parse_draw(winning_list())
    assert draw.period == 11410 and draw.first == ("00507588", "40912336", "91286147")
    assert draw.extra_sixth == ("765",) and draw.amounts[Tier.GRAND] == 2_000_000


@pytest.mark.parametrize("bad", [
    {"invoYm": "11409"}, {"invoYm": "1141"}, {"superPrizeNo": "1234567"},
    {"spcPrizeNo": "8765432a"}, {"firstPrizeNo1": "", "firstPrizeNo2": "", "firstPrizeNo3": ""},
    {"sixthPrizeNo2": "7654"}, {"thirdPrizeAmt": ""}, {"fifthPrizeAmt": "-1000"}])
def test_a_bad_winning_list_is_refused(bad: dict[str, str]) -> None:
    with pytest.raises(InvalidInput) as err:
        parse_draw(winning_list(**bad))
    assert err.value.code == "draw_invalid"
