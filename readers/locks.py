"""Exclusive use of a reader (or of one simulated card) for the length of a card session.

A card session is a sequence of commands (SELECT, AUTHENTICATE, LOAD, ...) that only means
something when nobody else talks to the card in between: a second session on the same card
resets the first one's authentication on a real chip, and on a simulated card (a JSON file)
two sessions would each write their own copy of the purse. So a session holds the reader from
the first command to the last: against other threads of this process (a lock) and against
other processes on this host (an advisory file lock, released by the kernel if the process
dies).
"""

from __future__ import annotations

import fcntl
import hashlib
import os
import tempfile
import threading
import time
from pathlib import Path

from readers.base import Reader
from readers.errors import ReaderBusy

_registry_lock = threading.Lock()
_thread_locks: dict[str, threading.Lock] = {}


def _thread_lock(path: Path) -> threading.Lock:
    key = str(path.resolve())
    with _registry_lock:
        lock = _thread_locks.get(key)
        if lock is None:
            lock = _thread_locks[key] = threading.Lock()
        return lock


def default_lock_dir() -> Path:
    """This account's own directory under the system's temporary one (another account's
    files there could not be opened). Processes that share a reader must share the directory:
    under systemd's PrivateTmp each service has its own /tmp, so name one in the settings."""
    return Path(tempfile.gettempdir()) / f"cardsvc-locks-{os.getuid()}"


def lock_path_for_reader(reader_name: str, directory: Path | None = None) -> Path:
    """A lock file per PC/SC reader name, shared by every process that uses `directory`."""
    directory = directory or default_lock_dir()
    directory.mkdir(mode=0o700, parents=True, exist_ok=True)
    digest = hashlib.sha256(reader_name.encode()).hexdigest()[:16]
    return directory / f"reader-{digest}.lock"


class SessionLock:
    """Held for one card session; `release()` (or the context manager) ends it."""

    POLL_SECONDS = 0.01

    def __init__(self, path: Path, what: str) -> None:
        self.path, self.what = path, what
        self._thread = _thread_lock(path)
        self._fd: int | None = None

    def acquire(self, timeout: float) -> SessionLock:
        deadline = time.monotonic() + timeout
        if not self._thread.acquire(timeout=max(timeout, 0)):
            raise ReaderBusy(f"{self.what} is in use by another card session")
        try:
            try:
                fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o600)
            except OSError as exc:
                raise ReaderBusy(f"{self.what}: cannot open its lock file ({exc.strerror})"
                                 ) from None
            while True:
                try:
                    fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                    break
                except BlockingIOError:
                    if time.monotonic() >= deadline:
                        os.close(fd)
                        raise ReaderBusy(f"{self.what} is in use by another process") from None
                    time.sleep(self.POLL_SECONDS)
        except BaseException:
            self._thread.release()
            raise
        self._fd = fd
        return self

    def release(self) -> None:
        fd, self._fd = self._fd, None
        if fd is None:
            return
        try:
            fcntl.flock(fd, fcntl.LOCK_UN)
        finally:
            os.close(fd)
            self._thread.release()

    def __enter__(self) -> SessionLock:
        return self

    def __exit__(self, *_exc: object) -> None:
        self.release()


class LockedReader:
    """A reader held by one card session: closing it ends the session and frees the reader."""

    def __init__(self, reader: Reader, lock: SessionLock) -> None:
        self._reader, self._lock = reader, lock

    @property
    def name(self) -> str:
        return self._reader.name

    def wait_for_card(self, timeout: float) -> bool:
        return self._reader.wait_for_card(timeout)

    def wait_for_removal(self, timeout: float) -> bool:
        return self._reader.wait_for_removal(timeout)

    def transmit(self, apdu: bytes) -> bytes:
        return self._reader.transmit(apdu)

    def close(self) -> None:
        try:
            self._reader.close()
        finally:
            self._lock.release()
