"""Ledger refusals: a purse would go below zero or above its cap."""

from __future__ import annotations

from cardsvc.errors import Conflict


class InsufficientFunds(Conflict):
    code = "insufficient_funds"
    title = "Purse balance too low"


class PurseLimitExceeded(Conflict):
    code = "purse_limit_exceeded"
    title = "Purse would exceed its maximum balance"
