"""Audit refusals, each with its stable code."""

from __future__ import annotations

from cardsvc.errors import InvalidInput


class ReviewPeriodReversed(InvalidInput):
    code = "review_period_reversed"
    title = "The period ends before it starts"


class ReviewPeriodTooLong(InvalidInput):
    code = "review_period_too_long"
    title = "The period is longer than a year"
