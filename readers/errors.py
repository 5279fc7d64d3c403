"""Card status words as typed exceptions that keep the raw SW1 SW2."""

from __future__ import annotations

from readers.protocol import SW


class ReaderError(Exception):
    """The reader or the link to the card failed (no card, card removed, reader gone)."""


class CardRemoved(ReaderError):
    """The card left the field before it answered."""


class NoCard(ReaderError):
    """No card arrived within the timeout."""


class ReaderBusy(ReaderError):
    """Another card session holds the reader (or the simulated card) and did not end in time."""


class ProtocolError(Exception):
    """The card answered something the protocol does not allow (e.g. a bad response MAC)."""


class CardError(Exception):
    """The card refused a command. `sw1`, `sw2` are the raw status bytes."""

    sw_value: int | None = None

    def __init__(self, sw1: int, sw2: int, command: str = "") -> None:
        self.sw1, self.sw2, self.command = sw1, sw2, command
        name = self.__class__.__name__
        super().__init__(f"{command or 'command'} refused: SW {sw1:02X}{sw2:02X} ({name})")

    @property
    def sw(self) -> int:
        return (self.sw1 << 8) | self.sw2


class AuthenticationFailed(CardError):
    sw_value = SW.AUTH_FAILED


class WrongLength(CardError):
    sw_value = SW.WRONG_LENGTH


class SecurityStatusNotSatisfied(CardError):
    sw_value = SW.SECURITY_STATUS


class ConditionsNotSatisfied(CardError):
    sw_value = SW.CONDITIONS


class WrongData(CardError):
    sw_value = SW.WRONG_DATA


class ApplicationNotFound(CardError):
    sw_value = SW.NOT_FOUND


class NotEnoughValue(CardError):
    sw_value = SW.NOT_ENOUGH_VALUE


class WrongParameters(CardError):
    sw_value = SW.WRONG_P1P2


class KeyNotFound(CardError):
    sw_value = SW.KEY_NOT_FOUND


class InstructionNotSupported(CardError):
    sw_value = SW.INS_NOT_SUPPORTED


class ClassNotSupported(CardError):
    sw_value = SW.CLA_NOT_SUPPORTED


_BY_SW: dict[int, type[CardError]] = {
    cls.sw_value: cls for cls in CardError.__subclasses__() if cls.sw_value is not None
}


def check(response: bytes, command: str = "") -> bytes:
    """Split an R-APDU; raise the typed error for anything but 9000; return the data."""
    if len(response) < 2:
        raise ProtocolError(f"{command}: response shorter than a status word")
    sw1, sw2 = response[-2], response[-1]
    sw = (sw1 << 8) | sw2
    if sw == SW.OK:
        return response[:-2]
    raise _BY_SW.get(sw, CardError)(sw1, sw2, command)
