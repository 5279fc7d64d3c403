"""The Reader interface: what every card reader implementation offers."""

from __future__ import annotations

from typing import Protocol, runtime_checkable


@runtime_checkable
class Reader(Protocol):
    """A card reader slot. Implementations: `readers.pcsc.PcscReader` (real PC/SC stack, real
    or virtual cards) and `readers.memory.InProcessReader` (a simulator in this process)."""

    @property
    def name(self) -> str:
        """The reader's name, as the user would see it."""
        ...

    def wait_for_card(self, timeout: float) -> bool:
        """Block until a card is present and powered (True) or the timeout passes (False)."""
        ...

    def wait_for_removal(self, timeout: float) -> bool:
        """Block until no card is present (True) or the timeout passes (False)."""
        ...

    def transmit(self, apdu: bytes) -> bytes:
        """Send a C-APDU, return the R-APDU including SW1 SW2.

        Raises `readers.errors.CardRemoved` when the card left the field, `NoCard` when no
        card is connected."""
        ...

    def close(self) -> None:
        ...


class CardApplet(Protocol):
    """What an in-process card must offer (satisfied by simulators.card.VirtualCard, which
    this package does not import)."""

    def power_on(self) -> bytes: ...

    def power_off(self) -> None: ...

    def process(self, apdu: bytes) -> bytes: ...
