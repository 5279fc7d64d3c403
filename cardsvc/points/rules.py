"""When awarded points expire: at the end of a year (Asia/Taipei business days), the award's
year plus the configured number of years (`CARDSVC_POINTS_EXPIRE_AFTER_YEARS`)."""

from __future__ import annotations

import datetime as dt


def expires_on(awarded: dt.date, after_years: int) -> dt.date:
    """The last day the points of an award made on `awarded` can be used."""
    return dt.date(awarded.year + after_years, 12, 31)


def unused_of_expired(expired_awards: int, consumed: int) -> int:
    """Points to expire now. Redemptions and earlier expiries use the earliest-expiring
    points first, so of the awards expired by today what is left unused is their total
    less everything consumed so far (never below zero)."""
    return max(0, expired_awards - consumed)
