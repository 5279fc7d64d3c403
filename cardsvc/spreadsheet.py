"""Cells of the CSV files people open in a spreadsheet."""

from __future__ import annotations


def cell(value: object) -> str:
    """Text a spreadsheet would run as a formula (first character = + - @) kept as text by
    a leading apostrophe; None is an empty cell, and an empty cell stays empty."""
    text = "" if value is None else str(value)
    return f"'{text}" if text[:1] and text[0] in "=+-@" else text
