"""What the counter's card reader offers the card services. Which reader it is (simulated
cards, a PC/SC reader, none) is the composition root's choice (`cardsvc.app.hardware`)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Protocol

from cardsvc.cards.errors import ReaderUnavailable
from readers.base import Reader


class CounterReader(Protocol):
    description: str

    def present(self, chip_uid: str | None = None,
                transport_key_for: Callable[[bytes], bytes] | None = None) -> Reader:
        """The reader with a card on it: the card with `chip_uid`, or a blank card to
        personalise when None (a simulated blank card is made with the transport key
        `transport_key_for(uid)`, as its supplier would). Raises CardNotPresented when no card
        comes, ReaderBusy when another card session holds the reader (or the card) longer
        than the reader timeout. The session ends, and the reader is free again, when the
        returned reader is closed."""
        ...


class NoReader:
    description = "no reader"

    def present(self, chip_uid: str | None = None,
                transport_key_for: Callable[[bytes], bytes] | None = None) -> Reader:
        raise ReaderUnavailable("this installation has no card reader (CARDSVC_READER=none)")


NO_READER = NoReader()
