"""A reader whose card lives in this process: fast unit tests of the host protocol."""

from __future__ import annotations

from readers.base import CardApplet
from readers.errors import CardRemoved, NoCard


class InProcessReader:
    """Transmits straight to a card object. `insert()`/`remove()` stand for a card entering
    and leaving the field; a card that tears (raises during `process`) counts as removed."""

    def __init__(self, card: CardApplet | None = None, name: str = "In-process reader") -> None:
        self._name = name
        self._card: CardApplet | None = None
        self._last: CardApplet | None = None
        if card is not None:
            self.insert(card)

    @property
    def name(self) -> str:
        return self._name

    def insert(self, card: CardApplet) -> None:
        self._card = self._last = card
        card.power_on()

    def remove(self) -> None:
        if self._card is not None:
            self._card.power_off()
        self._card = None

    def reinsert(self) -> None:
        """The same card taken out of the field and tapped again."""
        if self._last is None:
            raise NoCard("no card was ever inserted")
        self.insert(self._last)

    def wait_for_card(self, timeout: float) -> bool:
        return self._card is not None

    def wait_for_removal(self, timeout: float) -> bool:
        return self._card is None

    def transmit(self, apdu: bytes) -> bytes:
        if self._card is None:
            raise NoCard("no card in the field")
        try:
            return self._card.process(apdu)
        except ConnectionError as exc:  # the card lost power mid-command
            self._card = None
            raise CardRemoved("card left the field before answering") from exc

    def close(self) -> None:
        self.remove()
