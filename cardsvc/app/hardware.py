"""The counter's card reader, chosen by configuration (`CARDSVC_READER`): the hardware the
root gives the core (`cardsvc.cards.reader.CounterReader`).

* `sim` (embedded default): virtual cards kept as JSON files in `CARDSVC_SIM_CARDS_DIR`. A
  new blank card is "placed on the reader" for each issuance; an issued card is found by its
  chip UID, like a resident handing it over.
* `pcsc` / `pcsc:<name>`: a real reader (or pcscd's vpcd slot) through pyscard; whatever card
  is on it.
* `none`: no reader; chip operations answer 503.
"""

from __future__ import annotations

import secrets
from collections.abc import Callable
from pathlib import Path

from cardsvc.cards.errors import CardNotPresented, ReaderBusy, ReaderUnavailable
from cardsvc.cards.reader import NO_READER, CounterReader
from cardsvc.config import Settings
from readers.base import Reader
from readers.errors import ReaderBusy as ReaderBusyError
from readers.errors import ReaderError
from readers.locks import LockedReader, SessionLock, lock_path_for_reader
from readers.memory import InProcessReader
from simulators.card import VirtualCard


class SimulatedCounter:
    def __init__(self, directory: Path, timeout: float = 15.0) -> None:
        self.directory = Path(directory)
        self.timeout = timeout
        self.description = f"simulated cards in {self.directory}"

    def present(self, chip_uid: str | None = None,
                transport_key_for: Callable[[bytes], bytes] | None = None) -> Reader:

        # The virtual cards hold their diversified keys: readable by this account only.
        self.directory.mkdir(mode=0o700, parents=True, exist_ok=True)
        if chip_uid is None:
            uid = b"\x04" + secrets.token_bytes(6)
            path = self.directory / f"{uid.hex().upper()}.json"
            key = transport_key_for(uid) if transport_key_for is not None else None
            lock = self._lock(uid.hex().upper())
            card = (VirtualCard(uid, path) if key is None
                    else VirtualCard(uid, path, transport_key=key))
            return LockedReader(InProcessReader(card, name="simulated counter reader"), lock)
        path = self.directory / f"{chip_uid.upper()}.json"
        if not path.exists():
            raise CardNotPresented(f"card {chip_uid} is not on the (simulated) reader")
        # The card's state is read only once the session holds the card: a session that
        # started earlier has written all it will write.
        lock = self._lock(chip_uid.upper())
        try:
            card = VirtualCard(bytes.fromhex(chip_uid), path)
        except BaseException:
            lock.release()
            raise
        return LockedReader(InProcessReader(card, name="simulated counter reader"), lock)

    def _lock(self, uid_hex: str) -> SessionLock:
        try:
            return SessionLock(self.directory / f"{uid_hex}.lock",
                               f"simulated card {uid_hex}").acquire(self.timeout)
        except ReaderBusyError as exc:
            raise ReaderBusy(f"{exc}; try again when it is done") from None


class PcscCounter:
    def __init__(self, name_contains: str, timeout: float,
                 lock_dir: Path | None = None) -> None:
        self.name_contains, self.timeout, self.lock_dir = name_contains, timeout, lock_dir
        self.description = f"PC/SC reader {name_contains or '(first)'}"

    def present(self, chip_uid: str | None = None,
                transport_key_for: Callable[[bytes], bytes] | None = None) -> Reader:
        try:
            from readers.pcsc import PcscReader  # pyscard: the pcsc extra (ImportError below)
            reader = PcscReader(self.name_contains)
        except (ReaderError, ImportError) as exc:
            raise ReaderUnavailable(f"card reader unavailable: {exc}") from None
        # One session on the reader at a time, from any thread or process of this host.
        try:
            lock = SessionLock(lock_path_for_reader(reader.name, self.lock_dir),
                               f"reader {reader.name}").acquire(self.timeout)
        except ReaderBusyError as exc:
            reader.close()
            raise ReaderBusy(f"{exc}; try again when it is done") from None
        if not reader.wait_for_card(self.timeout):
            reader.close()
            lock.release()
            raise CardNotPresented(f"no card on {reader.name} within {self.timeout:.0f} s")
        return LockedReader(reader, lock)


def make_counter_reader(settings: Settings) -> CounterReader:
    spec = settings.reader.strip()
    if spec == "sim":
        return SimulatedCounter(settings.sim_cards_dir, settings.reader_timeout_seconds)
    if spec == "pcsc" or spec.startswith("pcsc:"):
        return PcscCounter(spec[5:], settings.reader_timeout_seconds, settings.reader_lock_dir)
    if spec == "none":
        return NO_READER
    raise ValueError(f"CARDSVC_READER must be sim, pcsc, pcsc:<name> or none, not {spec!r}")
