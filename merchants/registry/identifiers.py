"""Taiwan's unified business number (統一編號) check."""

from __future__ import annotations

_WEIGHTS = (1, 2, 1, 2, 1, 2, 4, 1)


def valid_tax_id(value: str) -> bool:
    """8 digits; each times its weight, the digits of each product summed; the total divisible
    by 5 (the Ministry of Finance widened the rule from 10 to 5 when numbers ran short, and
    every number valid under the old rule stays valid). When the 7th digit is 7 its product 28
    gives 2 + 8 = 10, which is read as 1 + 0 = 1 or as 0: either total may pass (with 10
    counted as 10, the "1" reading is total − 9, divisible by 5 exactly when total + 1 is)."""
    if len(value) != 8 or not (value.isascii() and value.isdigit()):  # not "٣" or "²"
        return False
    sums = [(int(d) * w) // 10 + (int(d) * w) % 10 for d, w in zip(value, _WEIGHTS, strict=True)]
    total = sum(sums)
    if value[6] == "7":
        return total % 5 == 0 or (total + 1) % 5 == 0
    return total % 5 == 0
