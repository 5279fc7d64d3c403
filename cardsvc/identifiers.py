"""Check-digit algorithms: Taiwan national ID and resident certificate numbers, card numbers."""

from __future__ import annotations

import re
import secrets
import unicodedata

# Letter -> two-digit area code, in the order the household registration system assigns them
# (I, O, W, X, Y, Z were added later and so are out of alphabetical order).
_AREA_CODES = {
    "A": 10, "B": 11, "C": 12, "D": 13, "E": 14, "F": 15, "G": 16, "H": 17, "I": 34,
    "J": 18, "K": 19, "L": 20, "M": 21, "N": 22, "O": 35, "P": 23, "Q": 24, "R": 25,
    "S": 26, "T": 27, "U": 28, "V": 29, "W": 32, "X": 30, "Y": 31, "Z": 33,
}
_WEIGHTS = (8, 7, 6, 5, 4, 3, 2, 1)

_NATIONAL_ID = re.compile(r"[A-Z][12][0-9]{8}")
_NEW_RESIDENT = re.compile(r"[A-Z][89][0-9]{8}")  # resident certificate, 2021 format
_OLD_RESIDENT = re.compile(r"[A-Z][A-D][0-9]{8}")  # resident certificate, pre-2021 format


def normalize_person_id(value: str) -> str:
    """A national ID as a counter types it: full-width characters (a Chinese input method's
    default) become ASCII, lower case becomes upper, spaces go. Every route that takes a
    national ID reads it through here, so registration and search agree."""
    return "".join(unicodedata.normalize("NFKC", value).split()).upper()


def _checksum_ok(letter: str, second: int, rest: str) -> bool:
    area = _AREA_CODES[letter]
    total = area // 10 + (area % 10) * 9 + second * _WEIGHTS[0]
    for digit, weight in zip(rest[:7], _WEIGHTS[1:], strict=True):
        total += int(digit) * weight
    total += int(rest[7])
    return total % 10 == 0


def person_id_kind(value: str) -> str | None:
    """'national' or 'resident' when the number and its check digit are valid, else None."""
    v = normalize_person_id(value)
    if _NATIONAL_ID.fullmatch(v):
        return "national" if _checksum_ok(v[0], int(v[1]), v[2:]) else None
    if _NEW_RESIDENT.fullmatch(v):
        return "resident" if _checksum_ok(v[0], int(v[1]), v[2:]) else None
    if _OLD_RESIDENT.fullmatch(v):
        # The second letter counts with the last digit of its own area code.
        return "resident" if _checksum_ok(v[0], _AREA_CODES[v[1]] % 10, v[2:]) else None
    return None


def person_id_check_digit(first_nine: str) -> str:
    """The check digit that completes a 9-character prefix (for synthetic data and tests)."""
    for d in "0123456789":
        if person_id_kind(first_nine + d):
            return d
    raise ValueError("prefix cannot be completed")


def mask_person_id(value: str) -> str:
    """A12****789: enough for a clerk to confirm with the resident, not enough to misuse."""
    return value[:3] + "****" + value[-3:]


def luhn_check_digit(partial: str) -> str:
    total = 0
    for i, ch in enumerate(reversed(partial)):
        d = int(ch)
        if i % 2 == 0:
            d *= 2
            if d > 9:
                d -= 9
        total += d
    return str((10 - total % 10) % 10)


def luhn_valid(number: str) -> bool:
    return (number.isascii() and number.isdigit() and len(number) >= 2
            and luhn_check_digit(number[:-1]) == number[-1])


# Issuer prefix of the county's cards, then one digit for the product, then a random body.
CARD_NUMBER_PREFIX = "8902"
PRODUCT_DIGIT = {"general": "1", "senior": "2", "student": "3", "mobile": "4", "staff": "5"}


def new_card_number(product: str) -> str:
    body = CARD_NUMBER_PREFIX + PRODUCT_DIGIT[product] + f"{secrets.randbelow(10**10):010d}"
    return body + luhn_check_digit(body)


_UID = re.compile(r"(?:[0-9A-F]{8}|[0-9A-F]{14}|[0-9A-F]{20})")


def normalize_chip_uid(value: str) -> str | None:
    """A chip UID as upper-case hex: 4, 7 or 10 bytes (ISO 14443-3 single/double/triple)."""
    v = value.strip().replace(":", "").replace(" ", "").upper()
    return v if _UID.fullmatch(v) else None
