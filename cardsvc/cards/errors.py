"""Card refusals (lifecycle, eligibility, money on a card, the chip and its reader), each with its
stable code."""

from __future__ import annotations

from cardsvc.errors import Conflict, DomainError


class IllegalTransition(Conflict):
    code = "illegal_transition"
    title = "Illegal card state transition"


class CardLimitReached(Conflict):
    code = "card_limit_reached"
    title = "Cardholder already holds a card of this form"


class Ineligible(DomainError):
    status = 422
    code = "ineligible"
    title = "Not eligible for this card product"

    def __init__(self, rule: str, detail: str) -> None:
        super().__init__(detail, rule=rule)
        self.rule = rule


class ChipPurse(Conflict):
    code = "chip_purse"
    title = "This purse is on the chip"


class CardNotUsable(Conflict):
    code = "card_not_usable"
    title = "Card cannot be used in its current state"


class ReaderUnavailable(DomainError):
    status = 503
    code = "reader_unavailable"
    title = "Card reader unavailable"


class ReaderBusy(Conflict):
    code = "reader_busy"
    title = "The card reader is busy"


class CardNotPresented(Conflict):
    code = "card_not_presented"
    title = "No card on the reader"


class WrongCardOnReader(Conflict):
    code = "wrong_card_on_reader"
    title = "The card on the reader is not the expected one"


class LoadNotInReview(Conflict):
    code = "load_not_in_review"
    title = "Only a load in review is resolved"


class ChipRefused(Conflict):
    code = "chip_refused"
    title = "The card refused the command"
