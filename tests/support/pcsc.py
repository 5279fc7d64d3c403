"""PC/SC: a virtual card in pcscd's vpcd slot, reached through pyscard (the fixtures
vpcd_slot and pcsc_reader are in tests/conftest.py).

Needs pcscd running with vsmartcard's vpcd driver and pyscard installed (`.ci/run` provides
both). Elsewhere the tests using them skip with the reason; in CI a skip is a failure.
"""

from __future__ import annotations

import os
import time

from simulators.card import VirtualCard
from simulators.vpcd import VpcdCard
from tests.support.ci import need_service

VPCD = os.environ.get("CARDSVC_TEST_VPCD", "127.0.0.1:35963")
VPCD_READER = os.environ.get("CARDSVC_TEST_VPCD_READER", "Virtual PCD 00 00")


def pcsc_reader_name() -> str:
    try:
        from readers.pcsc import list_readers
    except ImportError:  # pragma: no cover
        need_service("readers.pcsc unavailable")
    try:
        import smartcard  # noqa: F401
    except ImportError:
        need_service("pyscard is not installed (pip install pyscard; needs swig and "
                     "libpcsclite-dev)")
    try:
        names = list_readers()
    except Exception as exc:
        need_service(f"pcscd is not running ({exc})")
    if VPCD_READER not in names:
        need_service(f"no '{VPCD_READER}' reader in pcscd (install vsmartcard-vpcd); "
                     f"readers: {names}")
    return VPCD_READER


class VpcdSlot:
    """Puts virtual cards into the vpcd slot, one at a time."""

    def __init__(self) -> None:
        host, _, port = VPCD.rpartition(":")
        self.host, self.port = host, int(port)
        self.runner: VpcdCard | None = None

    def insert(self, card: VirtualCard, reinsert_delay: float = 1.5) -> VpcdCard:
        self.eject()
        self.runner = VpcdCard(card, self.host, self.port, reinsert_delay).start()
        if not self.runner.connected.wait(10):
            need_service(f"vpcd driver not listening on {VPCD}")
        return self.runner

    def eject(self) -> None:
        if self.runner is not None:
            self.runner.stop()
            if self.runner.last_tear is not None:
                # Let pcscd notice the torn card before the next one arrives.
                time.sleep(max(0.0, 1.5 - (time.monotonic() - self.runner.last_tear)))
            self.runner = None

