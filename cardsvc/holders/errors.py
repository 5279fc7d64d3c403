"""Cardholder refusals, each with its stable code."""

from __future__ import annotations

from cardsvc.errors import Conflict


class DuplicateCardholder(Conflict):
    code = "duplicate_cardholder"
    title = "Cardholder already registered"


class CompanionAlreadyRegistered(Conflict):
    code = "companion_already_registered"
    title = "A companion is already registered"


class CardholderErased(Conflict):
    code = "cardholder_erased"
    title = "The resident's personal data was erased"
