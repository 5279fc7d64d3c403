"""Connect a virtual card to pcscd through vsmartcard's vpcd driver.

pcscd loads libifdvpcd, which listens on TCP (port 35963 for the first slot). The card side —
this module — connects to it. Every message either way is a 2-byte big-endian length and a
payload. From vpcd: a 1-byte payload is a control code (0 power off, 1 power on, 2 reset,
4 "send your ATR"); anything longer is a C-APDU to answer with the R-APDU.

When the card tears (the simulator cuts its power mid-command) the client closes the
connection: pcscd sees the card leave the field, exactly as when a real card is pulled away.
It then reconnects after `reinsert_delay`, like the card being tapped again. pcscd needs about
a second to notice a card that vanished in the middle of an APDU; a card that comes back
sooner is not seen at all (observed with pcsc-lite 1.9 and vpcd), hence the 1.5 s default.
"""

from __future__ import annotations

import logging
import socket
import struct
import threading
import time

from simulators.card import CardTorn, VirtualCard

log = logging.getLogger("cardsvc.sim.vpcd")

POWER_OFF, POWER_ON, RESET, GET_ATR = 0, 1, 2, 4
DEFAULT_PORT = 35963


_QUICKACK = getattr(socket, "TCP_QUICKACK", None)


def _recv_exact(sock: socket.socket, n: int) -> bytes | None:
    buf = b""
    while len(buf) < n:
        if _QUICKACK is not None:
            # Linux drops quick-ACK mode after a while; re-arm it before every read, or the
            # driver's two-part writes (length, then payload) wait 40 ms for our ACK.
            sock.setsockopt(socket.IPPROTO_TCP, _QUICKACK, 1)
        chunk = sock.recv(n - len(buf))
        if not chunk:
            return None
        buf += chunk
    return buf


def _send(sock: socket.socket, payload: bytes) -> None:
    sock.sendall(struct.pack(">H", len(payload)) + payload)


def _tune(sock: socket.socket) -> None:
    # Without these every APDU waits ~40 ms for a delayed ACK.
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    if _QUICKACK is not None:
        sock.setsockopt(socket.IPPROTO_TCP, _QUICKACK, 1)


class VpcdCard:
    """Runs a VirtualCard in a vpcd reader slot until `stop()`."""

    def __init__(self, card: VirtualCard, host: str = "127.0.0.1", port: int = DEFAULT_PORT,
                 reinsert_delay: float = 1.5) -> None:
        self.card = card
        self.host, self.port = host, port
        self.reinsert_delay = reinsert_delay
        self._stop = threading.Event()
        self._sock: socket.socket | None = None
        self._thread: threading.Thread | None = None
        self.connected = threading.Event()
        self.tears = 0
        self.last_tear: float | None = None  # time.monotonic() of the last tear

    # --- lifecycle -------------------------------------------------------------------------

    def start(self) -> VpcdCard:
        self._thread = threading.Thread(target=self.run, name="vpcd-card", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        sock = self._sock
        if sock is not None:
            try:
                sock.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
        if self._thread is not None:
            self._thread.join(timeout=5)

    def remove(self) -> None:
        """Take the card out of the field (it comes back after reinsert_delay)."""
        sock = self._sock
        if sock is not None:
            try:
                sock.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass

    def run(self) -> None:
        while not self._stop.is_set():
            try:
                sock = socket.create_connection((self.host, self.port), timeout=2)
            except OSError:
                self._stop.wait(0.2)
                continue
            _tune(sock)
            sock.settimeout(None)
            self._sock = sock
            self.connected.set()
            try:
                self._serve(sock)
            except OSError:
                pass
            finally:
                self.connected.clear()
                self._sock = None
                sock.close()
                self.card.power_off()
            self._stop.wait(self.reinsert_delay)

    def _serve(self, sock: socket.socket) -> None:
        while not self._stop.is_set():
            head = _recv_exact(sock, 2)
            if head is None:
                return
            (length,) = struct.unpack(">H", head)
            payload = _recv_exact(sock, length)
            if payload is None:
                return
            if length == 1:
                code = payload[0]
                if code == POWER_OFF:
                    self.card.power_off()
                elif code in (POWER_ON, RESET):
                    self.card.power_on()
                elif code == GET_ATR:
                    _send(sock, self.card.atr)
                continue
            try:
                response = self.card.process(payload)
            except CardTorn:
                self.tears += 1
                self.last_tear = time.monotonic()
                log.info("card torn: leaving the field")
                return
            except Exception:  # a bug in the card code: answer "no precise diagnosis"
                log.exception("card failed on an APDU")
                response = b"\x6F\x00"
            _send(sock, response)
