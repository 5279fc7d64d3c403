"""The three Code 39 barcodes of a Taiwan convenience-store payment slip (三段式條碼).

    segment 1 (9):  payment deadline, ROC YYMMDD  + a 3-character collection code
    segment 2 (16): the bill number
    segment 3 (15): the period, ROC YYMM + 2 check characters + the amount, 9 digits

The check characters: letters count as digits (A–I → 1–9, J–R → 1–9, S–Z → 2–9); sum the
characters at odd positions and at even positions over the three segments, each segment
counted from its own first character and the two check positions of segment 3 left out; take
each sum mod 11. The first character is A for 0, B for 10, else the digit; the second is X for
0, Y for 10, else the digit.
"""

from __future__ import annotations

import datetime as dt
import re
import struct
import zlib
from dataclasses import dataclass

from cardsvc.errors import InvalidInput
from cardsvc.roc import ROC_OFFSET

SEGMENT_LENGTHS = (9, 16, 15)
CHECK_POSITIONS = (5, 6)  # 1-based, in segment 3
_SEGMENT_RE = (re.compile(r"[0-9]{6}[0-9A-Z]{3}"), re.compile(r"[0-9A-Z]{16}"),
               re.compile(r"[0-9]{4}[0-9A-Z]{2}[0-9]{9}"))


class SlipError(InvalidInput):
    """A mistyped or altered slip; `segment` says which barcode (1, 2 or 3)."""

    code = "bad_barcode"
    title = "Bad payment slip barcode"

    def __init__(self, segment: int, detail: str) -> None:
        super().__init__(f"segment {segment}: {detail}", segment=segment)
        self.segment = segment


def char_value(c: str) -> int:
    """A barcode character as a digit for the check sum."""
    if c.isdigit():
        return int(c)
    if "A" <= c <= "I":
        return ord(c) - ord("A") + 1
    if "J" <= c <= "R":
        return ord(c) - ord("J") + 1
    if "S" <= c <= "Z":
        return ord(c) - ord("S") + 2
    raise ValueError(f"{c!r} is not a payment slip character")


def check_code(segment1: str, segment2: str, segment3: str) -> str:
    """The two check characters of a slip; positions 5-6 of segment 3 are ignored."""
    odd = even = 0
    for number, segment in enumerate((segment1, segment2, segment3), start=1):
        for position, c in enumerate(segment.upper(), start=1):
            if number == 3 and position in CHECK_POSITIONS:
                continue
            if position % 2:
                odd += char_value(c)
            else:
                even += char_value(c)
    first, second = odd % 11, even % 11
    return ({0: "A", 10: "B"}.get(first, str(first))
            + {0: "X", 10: "Y"}.get(second, str(second)))


def roc_date(yymmdd: str) -> dt.date:
    """ROC YYMMDD with a two-digit year: years 100-199 of the ROC (2011-2110)."""
    return dt.date(100 + int(yymmdd[:2]) + ROC_OFFSET, int(yymmdd[2:4]), int(yymmdd[4:6]))


def roc_yymmdd(day: dt.date) -> str:
    return f"{(day.year - ROC_OFFSET) % 100:02d}{day.month:02d}{day.day:02d}"


@dataclass(frozen=True)
class Slip:
    deadline: dt.date
    collection_code: str
    bill_number: str
    period: str  # ROC YYMM, as printed
    amount: int

    @property
    def segments(self) -> tuple[str, str, str]:
        return make_segments(self.deadline, self.collection_code, self.bill_number,
                             self.period, self.amount)


def make_segments(deadline: dt.date, collection_code: str, bill_number: str, period: str,
                  amount: int) -> tuple[str, str, str]:
    if not 0 <= amount <= 999_999_999:
        raise ValueError("a slip's amount has 9 digits")
    s1 = roc_yymmdd(deadline) + collection_code.upper()
    s2 = bill_number.upper()
    s3 = f"{period}00{amount:09d}"
    s3 = s3[:4] + check_code(s1, s2, s3) + s3[6:]
    for i, (s, pattern) in enumerate(zip((s1, s2, s3), _SEGMENT_RE, strict=True), start=1):
        if not pattern.fullmatch(s):
            raise ValueError(f"segment {i} would be malformed: {s!r}")
    return s1, s2, s3


def parse(segment1: str, segment2: str, segment3: str) -> Slip:
    """Validate a scanned or typed slip; a SlipError names the segment that is wrong."""
    segs = [s.strip().upper() for s in (segment1, segment2, segment3)]
    for i, (s, n, pattern) in enumerate(zip(segs, SEGMENT_LENGTHS, _SEGMENT_RE, strict=True),
                                        start=1):
        if len(s) != n:
            raise SlipError(i, f"has {len(s)} characters; a slip's segment {i} has {n}")
        if not pattern.fullmatch(s):
            raise SlipError(i, "has a character that does not belong there")
    s1, s2, s3 = segs
    try:
        deadline = roc_date(s1[:6])
    except ValueError:
        raise SlipError(1, f"{s1[:6]} is not a date (ROC YYMMDD)") from None
    if not 1 <= int(s3[2:4]) <= 12:
        raise SlipError(3, f"{s3[:4]} is not a period (ROC YYMM)")
    expected = check_code(s1, s2, s3)
    if s3[4:6] != expected:
        raise SlipError(3, f"check characters {s3[4:6]} do not match the slip (expected "
                        f"{expected}): a segment was mistyped or altered")
    return Slip(deadline, s1[6:], s2, s3[:4], int(s3[6:]))


# --- Code 39 images ---------------------------------------------------------------------------

# Each character: nine elements, bar and space alternating from a bar; 1 = wide.
CODE39 = {
    "0": "000110100", "1": "100100001", "2": "001100001", "3": "101100000",
    "4": "000110001", "5": "100110000", "6": "001110000", "7": "000100101",
    "8": "100100100", "9": "001100100", "A": "100001001", "B": "001001001",
    "C": "101001000", "D": "000011001", "E": "100011000", "F": "001011000",
    "G": "000001101", "H": "100001100", "I": "001001100", "J": "000011100",
    "K": "100000011", "L": "001000011", "M": "101000010", "N": "000010011",
    "O": "100010010", "P": "001010010", "Q": "000000111", "R": "100000110",
    "S": "001000110", "T": "000010110", "U": "110000001", "V": "011000001",
    "W": "111000000", "X": "010010001", "Y": "110010000", "Z": "011010000",
    "-": "010000101", ".": "110000100", " ": "011000100", "*": "010010100",
    "$": "010101000", "/": "010100010", "+": "010001010", "%": "000101010",
}
NARROW, WIDE = 1, 3  # module widths; a 1:3 ratio reads on every scanner


def modules(value: str) -> list[bool]:
    """The barcode as modules (True = bar), with start/stop characters and quiet zones."""
    out = [False] * 10
    for c in f"*{value.upper()}*":
        pattern = CODE39[c]
        for i, wide in enumerate(pattern):
            out += [i % 2 == 0] * (WIDE if wide == "1" else NARROW)
        out.append(False)  # inter-character gap
    return out + [False] * 9


def svg(value: str, height: int = 60, scale: int = 2) -> str:
    bars = modules(value)
    rects, x = [], 0
    while x < len(bars):
        if bars[x]:
            start = x
            while x < len(bars) and bars[x]:
                x += 1
            rects.append(f'<rect x="{start * scale}" y="0" width="{(x - start) * scale}" '
                         f'height="{height}"/>')
        else:
            x += 1
    width = len(bars) * scale
    return (f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height + 16}" '
            f'viewBox="0 0 {width} {height + 16}"><rect width="100%" height="100%" '
            f'fill="#fff"/><g fill="#000">{"".join(rects)}</g>'
            f'<text x="{width // 2}" y="{height + 13}" font-family="monospace" '
            f'font-size="12" text-anchor="middle">{value}</text></svg>')


def png(value: str, height: int = 60, scale: int = 2) -> bytes:
    """A 1-bit PNG of the barcode (no text line), for printing slips."""
    bars = modules(value)
    row = bytearray()
    bits = [0 if b else 1 for b in bars for _ in range(scale)]  # 1 = white
    for i in range(0, len(bits), 8):
        byte = bits[i:i + 8] + [1] * (8 - len(bits[i:i + 8]))
        row.append(int("".join(map(str, byte)), 2))
    raw = b"".join(b"\x00" + bytes(row) for _ in range(height))

    def chunk(tag: bytes, data: bytes) -> bytes:
        return (struct.pack(">I", len(data)) + tag + data
                + struct.pack(">I", zlib.crc32(tag + data) & 0xFFFFFFFF))

    header = struct.pack(">IIBBBBB", len(bits), height, 1, 0, 0, 0, 0)
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(raw))
            + chunk(b"IEND", b""))
