"""Readers through the PC/SC stack (pcscd) with pyscard: real NFC readers, and virtual cards
that pcscd shows through the vpcd driver.

pyscard is optional (`pip install '.[pcsc]'`; it builds with swig and the PC/SC headers): it
is imported where it is used, so this module loads, and says what is missing, without it."""

from __future__ import annotations

import time
from typing import Any

from readers.errors import CardRemoved, NoCard, ReaderError


def list_readers() -> list[str]:
    from smartcard.System import readers
    try:
        return [str(r) for r in readers()]
    except Exception as exc:  # pyscard raises its own types when pcscd is absent
        raise ReaderError(f"PC/SC not available: {exc}") from exc


class PcscReader:
    """One PC/SC reader slot, chosen by (a part of) its name."""

    def __init__(self, name_contains: str = "", poll_interval: float = 0.02) -> None:
        names = list_readers()
        matching = [n for n in names if name_contains in n]
        if not matching:
            raise ReaderError(f"no PC/SC reader matching {name_contains!r}; have: {names}")
        self._name = matching[0]
        self._poll = poll_interval
        self._conn: Any = None

    @property
    def name(self) -> str:
        return self._name

    def _reader(self) -> Any:
        from smartcard.System import readers
        for r in readers():
            if str(r) == self._name:
                return r
        raise ReaderError(f"reader {self._name!r} went away")

    def _connect(self) -> bool:
        from smartcard.Exceptions import CardConnectionException, NoCardException
        conn = self._reader().createConnection()
        try:
            conn.connect()
        except (NoCardException, CardConnectionException):
            return False
        self._conn = conn
        return True

    def _disconnect(self) -> None:
        if self._conn is not None:
            try:
                self._conn.disconnect()
            except Exception:  # noqa: S110 - the card is gone already; nothing to release
                pass
            self._conn = None

    def wait_for_card(self, timeout: float) -> bool:
        deadline = time.monotonic() + timeout
        while True:
            if self._conn is not None or self._connect():
                return True
            if time.monotonic() >= deadline:
                return False
            time.sleep(self._poll)

    def wait_for_removal(self, timeout: float) -> bool:
        deadline = time.monotonic() + timeout
        while True:
            if not self._card_present():
                self._disconnect()
                return True
            if time.monotonic() >= deadline:
                return False
            time.sleep(self._poll)

    def _card_present(self) -> bool:
        from smartcard.scard import (
            SCARD_S_SUCCESS,
            SCARD_STATE_PRESENT,
            SCARD_STATE_UNAWARE,
            SCardEstablishContext,
            SCardGetStatusChange,
            SCardReleaseContext,
        )
        from smartcard.scard import SCARD_SCOPE_USER as SCOPE
        rc, ctx = SCardEstablishContext(SCOPE)
        if rc != SCARD_S_SUCCESS:
            raise ReaderError("cannot reach pcscd")
        try:
            rc, states = SCardGetStatusChange(ctx, 0, [(self._name, SCARD_STATE_UNAWARE)])
            if rc != SCARD_S_SUCCESS:
                return False
            return bool(states[0][1] & SCARD_STATE_PRESENT)
        finally:
            SCardReleaseContext(ctx)

    def transmit(self, apdu: bytes) -> bytes:
        from smartcard.Exceptions import CardConnectionException
        if len(apdu) < 4:
            # A C-APDU has at least CLA INS P1 P2; vpcd would take a 1-byte message for a
            # control code and never answer.
            raise ValueError("a C-APDU has at least 4 bytes")
        if self._conn is None and not self._connect():
            raise NoCard(f"no card on {self._name}")
        try:
            data, sw1, sw2 = self._conn.transmit(list(apdu))
        except CardConnectionException as exc:
            self._disconnect()
            raise CardRemoved(f"card left {self._name}: {exc}") from exc
        return bytes(data) + bytes([sw1, sw2])

    def close(self) -> None:
        self._disconnect()
