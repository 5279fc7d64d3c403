"""The uniform-invoice rules the carrier works by (Ministry of Finance): invoice numbers,
bimonthly periods in the ROC calendar, prize tiers, the paper proof's QR code, withholding.

Everything here is a pure function; the set-based check in the database (`check.py`) states
the same tiers in SQL, and the tests hold the two to the same worked examples.
"""

from __future__ import annotations

import datetime as dt
import enum
import re
from dataclasses import dataclass

from cardsvc.roc import ROC_OFFSET

INVOICE_NUMBER = re.compile(r"^[A-Z]{2}[0-9]{8}$")
RANDOM_CODE = re.compile(r"^[0-9]{4}$")
MOBILE_BARCODE = re.compile(r"^/[0-9A-Z.+\-]{7}$")


def mask_barcode(barcode: str) -> str:
    """A mobile barcode as the audit trail names it: the barcode is the resident's own
    identifier at the tax platform, personal data the trail must not hold."""
    return barcode[:2] + "*" * (len(barcode) - 3) + barcode[-1:]
DONATION_CODE = re.compile(r"^[0-9]{3,7}$")
PERIOD = re.compile(r"^[0-9]{3}(02|04|06|08|10|12)$")
NO_BUYER = "00000000"  # the buyer of a consumer's invoice


class Tier(enum.StrEnum):
    """Prize tiers, highest first. An invoice wins one: the highest it matches."""

    SPECIAL = "special"  # 特別獎: all eight digits equal the special number
    GRAND = "grand"  # 特獎: all eight equal the grand number
    FIRST = "first"  # 頭獎: all eight equal a first-prize number
    SECOND = "second"  # 二獎: the last seven of a first-prize number
    THIRD = "third"  # 三獎: the last six
    FOURTH = "fourth"  # 四獎: the last five
    FIFTH = "fifth"  # 五獎: the last four
    SIXTH = "sixth"  # 六獎: the last three (of a first-prize number, or an extra sixth)
    CLOUD = "cloud"  # 雲端發票專屬獎: a carrier invoice on the period's cloud list


# How many trailing digits of a first-prize number each tier needs.
FIRST_SUFFIX = {Tier.FIRST: 8, Tier.SECOND: 7, Tier.THIRD: 6, Tier.FOURTH: 5, Tier.FIFTH: 4,
                Tier.SIXTH: 3}
TIER_NAMES = {Tier.SPECIAL: "特別獎", Tier.GRAND: "特獎", Tier.FIRST: "頭獎", Tier.SECOND: "二獎",
              Tier.THIRD: "三獎", Tier.FOURTH: "四獎", Tier.FIFTH: "五獎", Tier.SIXTH: "六獎",
              Tier.CLOUD: "雲端發票專屬獎"}


class Exclusion(enum.StrEnum):
    """Why an invoice cannot win (統一發票給獎辦法 第11條, the cases a carrier meets)."""

    VOIDED = "voided"  # 作廢
    NOT_POSITIVE = "not_positive"  # zero or negative amount (after allowances)
    BUSINESS_BUYER = "business_buyer"  # a buyer 統編: a business or agency
    AFTER_THE_FACT = "after_the_fact"  # 補開


# --- numbers and periods ------------------------------------------------------------------


def valid_invoice_number(value: str) -> bool:
    return bool(INVOICE_NUMBER.fullmatch(value))


def roc_year(day: dt.date) -> int:
    return day.year - ROC_OFFSET


def period_of(day: dt.date) -> int:
    """The bimonthly period a date falls in, as yyyMM with the even month: 2025-10-31 is
    11410 (114年9-10月), 2025-11-01 is 11412."""
    month = day.month if day.month % 2 == 0 else day.month + 1
    return roc_year(day) * 100 + month


def valid_period(period: int | str) -> bool:
    return bool(PERIOD.fullmatch(f"{int(period):05d}" if str(period).isdigit() else ""))


def period_months(period: int) -> tuple[dt.date, dt.date]:
    """First and last day of a period."""
    year, month = period // 100 + ROC_OFFSET, period % 100
    first = dt.date(year, month - 1, 1)
    last = (dt.date(year + 1, 1, 1) if month == 12 else dt.date(year, month + 1, 1)) \
        - dt.timedelta(days=1)
    return first, last


def draw_date(period: int) -> dt.date:
    """The draw: the 25th of the odd month after the period."""
    _, last = period_months(period)
    after = last + dt.timedelta(days=1)
    return after.replace(day=25)


def claim_window(period: int) -> tuple[dt.date, dt.date]:
    """Prizes are claimed from the 6th of the month after the draw, for three months."""
    drawn = draw_date(period)
    start = (drawn.replace(day=1) + dt.timedelta(days=32)).replace(day=6)
    end_month = start.month + 3
    end = dt.date(start.year + (end_month - 1) // 12, (end_month - 1) % 12 + 1, 5)
    return start, end


def period_label(period: int) -> str:
    month = period % 100
    return f"{period // 100}年{month - 1}-{month}月"


# --- prizes -------------------------------------------------------------------------------


@dataclass(frozen=True)
class Draw:
    period: int
    special: str
    grand: str
    first: tuple[str, ...]
    extra_sixth: tuple[str, ...]
    amounts: dict[Tier, int]


def regular_tier(digits: str, draw: Draw) -> Tier | None:
    """The highest regular prize eight digits win, if any."""
    if digits == draw.special:
        return Tier.SPECIAL
    if digits == draw.grand:
        return Tier.GRAND
    for tier, n in FIRST_SUFFIX.items():
        if any(digits[-n:] == number[-n:] for number in draw.first):
            return tier
    if any(digits[-3:] == extra for extra in draw.extra_sixth):
        return Tier.SIXTH
    return None


def withholding(amount: int) -> tuple[int, int]:
    """Income tax withheld and stamp duty on a prize: 20 % above NT$5,000; 0.4 % stamp duty
    on prizes of NT$1,000 and up (cloud prizes of 500 and up), rounded to whole dollars."""
    tax = amount * 20 // 100 if amount > 5_000 else 0
    stamp = round(amount * 4 / 1000) if amount >= 1_000 else 0
    return tax, stamp


def cloud_withholding(amount: int) -> tuple[int, int]:
    tax = amount * 20 // 100 if amount > 5_000 else 0
    stamp = round(amount * 4 / 1000) if amount >= 500 else 0
    return tax, stamp


def mask_donated(number: str) -> str:
    """A donated invoice as the resident sees it: the last three digits hidden."""
    return number[:-3] + "***"


# --- the paper proof's QR code ------------------------------------------------------------


class QrError(ValueError):
    pass


@dataclass(frozen=True)
class ProofQr:
    number: str
    date: dt.date
    random_code: str
    sales: int
    total: int
    buyer: str
    seller: str

    @property
    def period(self) -> int:
        return period_of(self.date)


def parse_proof_qr(text: str) -> ProofQr:
    """The left QR code of an e-invoice proof: 77 positional characters (number 10, ROC date
    yyyMMdd 7, random code 4, sales before tax 8 hex, total 8 hex, buyer 8, seller 8,
    encrypted check 24), then fields this system does not need."""
    text = text.strip()
    if len(text) < 77:
        raise QrError("an e-invoice QR code starts with 77 characters")
    number, roc, random_code = text[0:10], text[10:17], text[17:21]
    sales_hex, total_hex, buyer, seller = text[21:29], text[29:37], text[37:45], text[45:53]
    if not valid_invoice_number(number):
        raise QrError("the invoice number is two capital letters and eight digits")
    if not roc.isdigit():
        raise QrError("the date is yyyMMdd in the ROC calendar")
    try:
        date = dt.date(int(roc[:3]) + ROC_OFFSET, int(roc[3:5]), int(roc[5:7]))
    except ValueError:
        raise QrError("the date is not a real day") from None
    if not RANDOM_CODE.fullmatch(random_code):
        raise QrError("the random code is four digits")
    try:
        sales, total = int(sales_hex, 16), int(total_hex, 16)
    except ValueError:
        raise QrError("the amounts are eight hexadecimal digits") from None
    for value, what in ((buyer, "buyer"), (seller, "seller")):
        if not (value.isascii() and value.isdigit()):
            raise QrError(f"the {what}'s tax id is eight digits")
    return ProofQr(number, date, random_code, sales, total, buyer, seller)
