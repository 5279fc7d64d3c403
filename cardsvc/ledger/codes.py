"""Account codes: every shared account is found by its code, and every code is written here.

Python builds codes with the functions below; SQL that joins on a code (clearing's set-based
steps, the POS fast path's database function) uses the prefixes, and a test holds the
database function's literals to them.
"""

from __future__ import annotations

PURSE = "purse:"  # a card's purse: purse:<card id>
CASH = "cash:"  # a counter's cash drawer: cash:<counter>
MERCHANT = "merchant:"  # what the county owes a merchant: merchant:<merchant id>
TERMINAL = "terminal:"  # a terminal's takings until clearing sweeps them: terminal:<id>
BILLER = "biller:"  # what the county owes a biller: biller:<biller id>
FEE_INCOME = "fee_income:county"
PROGRAMME = "programme:"  # what a subsidy programme owes: programme:<programme code>


def purse_code(card_id: int) -> str:
    return f"{PURSE}{card_id}"


def cash_code(counter: str) -> str:
    return f"{CASH}{counter}"


def merchant_code(merchant_id: int) -> str:
    return f"{MERCHANT}{merchant_id}"


def terminal_code(terminal_id: int) -> str:
    return f"{TERMINAL}{terminal_id}"


def biller_code(biller_id: int) -> str:
    return f"{BILLER}{biller_id}"


def programme_code(programme: str) -> str:
    return f"{PROGRAMME}{programme}"
