"""The ROC (民國) calendar, as the county writes dates: year 1 is 1912, so 民國 115 is 2026."""

from __future__ import annotations

import datetime as dt
import re

ROC_OFFSET = 1911  # ROC year = Gregorian year - 1911

_ROC = re.compile(r"(?:民國)?\s*(\d{1,3})\s*[年/.-]\s*(\d{1,2})\s*[月/.-]\s*(\d{1,2})\s*日?")
_ISO = re.compile(r"(\d{4})-(\d{1,2})-(\d{1,2})")


def parse_date(text: str) -> dt.date:
    """A date typed at the counter: Gregorian (2026-12-06) or ROC (115/12/06, 115-12-06,
    115.12.06, 民國115年12月6日). ValueError with the reason otherwise."""
    text = text.strip()
    m = _ISO.fullmatch(text)
    if m:
        year, month, day = (int(g) for g in m.groups())
    else:
        m = _ROC.fullmatch(text)
        if not m:
            raise ValueError("write the date as 2026-12-06 or in the ROC calendar as 115/12/06")
        year, month, day = (int(g) for g in m.groups())
        year += ROC_OFFSET
    try:
        return dt.date(year, month, day)
    except ValueError:
        raise ValueError(f"there is no such day ({text})") from None


def format_roc(day: dt.date) -> str:
    return f"民國 {day.year - ROC_OFFSET} 年 {day.month} 月 {day.day} 日"
