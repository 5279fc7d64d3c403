"""The county's SIP2 server: "is this card good?" for kiosks, proxies and library systems.

Implemented: 93/94 login (per library account), 99/98 status, 23/24 patron status, 63/64
patron information, 35/36 end session, 97 resend. Circulation (checkout, checkin, renew, item
information, fees, holds, ...) belongs to each library's own system: those messages get their
response with "not ok" and a screen message that says so. A frame that cannot be read, or
whose checksum is wrong, gets 96.

Each connection is a small state machine on the event loop; database work runs in worker
threads, one unit of work per request.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import logging
import ssl
import threading
from collections.abc import Callable
from dataclasses import dataclass, field

from sqlalchemy import Engine
from sqlalchemy.orm import Session, sessionmaker

from cardsvc.context import TAIPEI, Actor, Ctx
from cardsvc.db import unit_of_work, utcnow
from cardsvc.library.models import Library, PatronStatus, SipLogin
from cardsvc.library.sip2 import codec, lookup

log = logging.getLogger("cardsvc.sip2")

# Messages this server implements, in the order of the 98's "supported messages" field:
# patron status, checkout, checkin, block patron, SC/ACS status, request resend, login,
# patron information, end patron session, fee paid, item information, item status update,
# patron enable, hold, renew, renew all.
SUPPORTED = "YNNNYYYYYNNNNNNN"
NOT_HERE = ("借還書請使用本館系統 / Loans, returns, renewals, holds and fees are handled by "
            "the library's own system")
IDLE_SECONDS = 300
MAX_FAILED_LOGINS = 3
PROTOCOL = "2.00"

CtxFactory = Callable[[Session, Actor], Ctx]


def sip_date(when: dt.datetime) -> str:
    """YYYYMMDDZZZZHHMMSS in local (Asia/Taipei) time, the zone left blank."""
    local = when.astimezone(TAIPEI)
    return f"{local:%Y%m%d}    {local:%H%M%S}"


def expiry_date(day: dt.date) -> str:
    return f"{day:%Y%m%d}    235959"


def patron_status(p: lookup.Patron) -> str:
    """The 14-character patron status: 0-3 charge/renew/recall/hold denied, 4 lost."""
    flags = [" "] * 14
    if not p.found or p.status != PatronStatus.VALID:
        flags[0:4] = ["Y"] * 4
    if p.status == PatronStatus.LOST:
        flags[4] = "Y"
    return "".join(flags)


@dataclass
class Connection:
    login: SipLogin | None = None
    library: Library | None = None
    last: bytes | None = None
    failed_logins: int = 0
    encoding: str = "utf-8"
    closing: bool = False
    peer: str = "unknown"  # the client's address: login failures are counted by it
    extra: dict[str, str] = field(default_factory=dict)


class Sip2Server:
    def __init__(self, sessions: sessionmaker[Session], make_ctx: CtxFactory,
                 own_engine: Engine | None = None) -> None:
        self.sessions = sessions
        self.make_ctx = make_ctx
        self.own_engine = own_engine  # disposed by close(): an engine made for this server

    def close(self) -> None:
        if self.own_engine is not None:
            self.own_engine.dispose()

    # --- the protocol ------------------------------------------------------------------------

    async def answer(self, conn: Connection, raw: bytes) -> bytes:
        """The response to one frame (without its terminator)."""
        try:
            msg = codec.decode(raw, encoding=conn.encoding)
        except codec.FrameError:
            return self._frame(conn, "96", "", [], None)
        if msg.command == "97":
            return conn.last or self._frame(conn, "96", "", [], None)
        handler = {"93": self._login, "99": self._status, "23": self._patron_status,
                   "63": self._patron_information, "35": self._end_session}.get(msg.command)
        if handler is not None:
            out = await handler(conn, msg)
        else:
            out = self._refuse(conn, msg)
        conn.last = out
        return out

    def _frame(self, conn: Connection, command: str, fixed: str, fields: list[tuple[str, str]],
               seq: str | None) -> bytes:
        return codec.encode(command, fixed, fields, seq, encoding=conn.encoding)

    def _institution(self, conn: Connection, msg: codec.Message) -> str:
        return conn.library.code if conn.library is not None else msg.get("AO")

    async def _login(self, conn: Connection, msg: codec.Message) -> bytes:
        found = await asyncio.to_thread(self._check_login, msg.get("CN"), msg.get("CO"),
                                        conn.peer)
        if found is None:
            conn.failed_logins += 1
            conn.closing = conn.failed_logins >= MAX_FAILED_LOGINS
            return self._frame(conn, "94", "0", [], msg.seq)
        conn.login, conn.library = found
        conn.encoding = found[0].encoding
        return self._frame(conn, "94", "1", [], msg.seq)

    def _check_login(self, username: str, password: str, source: str
                     ) -> tuple[SipLogin, Library] | None:
        with unit_of_work(self.sessions) as db:
            found = lookup.login(self.make_ctx(db, Actor.system("sip2")), username, password,
                                 source)
            if found is not None:
                db.expunge(found[0])
                db.expunge(found[1])
            return found

    async def _status(self, conn: Connection, msg: codec.Message) -> bytes:
        fixed = ("Y" + "N" + "N" + "N" + "N" + "N" + "030" + "003" + sip_date(utcnow())
                 + PROTOCOL)
        fields = [("AO", self._institution(conn, msg))]
        if conn.library is not None:
            fields.append(("AM", conn.library.name))
        fields += [("BX", SUPPORTED)]
        if conn.library is None:
            fields.append(("AF", "請先登入 (93) / Log in first (93)"))
        return self._frame(conn, "98", fixed, fields, msg.seq)

    async def _lookup(self, conn: Connection, msg: codec.Message) -> lookup.Patron:
        if conn.login is None or conn.library is None:
            return lookup.Patron(False, message="請先登入 (93) / Log in first (93)")
        pin = msg.fields.get("AD", [None])[0]
        login_, library = conn.login, conn.library
        return await asyncio.to_thread(self._check_patron, login_, library, msg.get("AA"), pin)

    def _check_patron(self, login_: SipLogin, library: Library, identifier: str,
                      pin: str | None) -> lookup.Patron:
        with unit_of_work(self.sessions) as db:
            actor = Actor(None, f"sip2:{login_.username}", "library")
            return lookup.patron(self.make_ctx(db, actor), login_, library, identifier, pin)

    def _patron_fields(self, conn: Connection, msg: codec.Message, p: lookup.Patron
                       ) -> list[tuple[str, str]]:
        fields = [("AO", self._institution(conn, msg)), ("AA", msg.get("AA")),
                  ("AE", p.name or "")]
        fields.append(("BL", "Y" if p.found and p.status == PatronStatus.VALID else "N"))
        if p.pin_ok is not None:
            fields.append(("CQ", "Y" if p.pin_ok else "N"))
        return fields

    async def _patron_status(self, conn: Connection, msg: codec.Message) -> bytes:
        p = await self._lookup(conn, msg)
        fixed = patron_status(p) + _language(msg) + sip_date(utcnow())
        fields = self._patron_fields(conn, msg, p)
        if p.message:
            fields.append(("AF", p.message))
        return self._frame(conn, "24", fixed, fields, msg.seq)

    async def _patron_information(self, conn: Connection, msg: codec.Message) -> bytes:
        p = await self._lookup(conn, msg)
        # Loans, holds and fines live in the library's own system: counts unknown here.
        fixed = patron_status(p) + _language(msg) + sip_date(utcnow()) + " " * 24
        fields = self._patron_fields(conn, msg, p)
        if p.expires_on is not None and conn.login is not None:
            fields.append((conn.login.expiry_field, expiry_date(p.expires_on)))
        if p.message:
            fields.append(("AF", p.message))
        return self._frame(conn, "64", fixed, fields, msg.seq)

    async def _end_session(self, conn: Connection, msg: codec.Message) -> bytes:
        fields = [("AO", self._institution(conn, msg)), ("AA", msg.get("AA"))]
        return self._frame(conn, "36", "Y" + sip_date(utcnow()), fields, msg.seq)

    def _refuse(self, conn: Connection, msg: codec.Message) -> bytes:
        now = sip_date(utcnow())
        ao = ("AO", self._institution(conn, msg))
        af = ("AF", NOT_HERE)
        aa, ab = ("AA", msg.get("AA")), ("AB", msg.get("AB"))
        responses: dict[str, tuple[str, str, list[tuple[str, str]]]] = {
            "11": ("12", "0NUN" + now, [ao, aa, ab, ("AJ", ""), ("AH", ""), af]),
            "09": ("10", "0NUN" + now, [ao, ab, ("AQ", ""), ("AJ", ""), af]),
            "29": ("30", "0NUN" + now, [ao, aa, ab, ("AJ", ""), ("AH", ""), af]),
            "17": ("18", "010001" + now, [ab, ("AJ", ""), af]),
            "37": ("38", "N" + now, [ao, aa, af]),
            "15": ("16", "0N" + now, [ao, aa, af]),
            "65": ("66", "0" + "0000" + "0000" + now, [ao, af]),
            "19": ("20", "0" + now, [ab, af]),
            "25": ("26", "Y" * 4 + " " * 10 + _language(msg) + now,
                   [ao, aa, ("AE", ""), ("BL", "N"), af]),
            "01": ("24", "Y" * 4 + " " * 10 + _language(msg) + now,
                   [ao, aa, ("AE", ""), ("BL", "N"), af]),
        }
        found = responses.get(msg.command)
        if found is None:
            return self._frame(conn, "96", "", [], msg.seq)
        command, fixed, fields = found
        return self._frame(conn, command, fixed, fields, msg.seq)

    # --- the connection ----------------------------------------------------------------------

    async def handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        conn = Connection()
        frames = FrameReader(reader)
        peer = writer.get_extra_info("peername")
        if isinstance(peer, tuple) and peer:
            conn.peer = str(peer[0])
        try:
            while not conn.closing:
                try:
                    line = await asyncio.wait_for(frames.next(), IDLE_SECONDS)
                except TimeoutError:
                    break
                if line is None:
                    break
                if not line:
                    continue  # the LF of a CRLF, or a keep-alive
                writer.write(await self.answer(conn, line))
                await writer.drain()
        except (ConnectionError, asyncio.IncompleteReadError):
            pass
        except asyncio.CancelledError:
            pass  # the server is stopping: the connection ends quietly
        except Exception:  # one connection's failure must not take the server down
            log.exception("SIP2 connection from %s failed", peer)
        finally:
            writer.close()
            with contextlib.suppress(Exception):
                await writer.wait_closed()

    async def start(self, host: str, port: int, tls: ssl.SSLContext | None = None
                    ) -> asyncio.Server:
        return await asyncio.start_server(self.handle, host, port, ssl=tls,
                                          limit=codec.MAX_FRAME * 2)

    async def serve(self, host: str, port: int, tls: ssl.SSLContext | None = None,
                    ready: Callable[[int], None] | None = None) -> None:
        server = await self.start(host, port, tls)
        bound = server.sockets[0].getsockname()[1]
        log.info("SIP2 server listening on %s:%s%s", host, bound, " (TLS)" if tls else "")
        if ready is not None:
            ready(bound)
        async with server:
            await server.serve_forever()


class InThread:
    """The server on an event loop of its own thread, for a caller that is not async (the
    demo, tests): listening once constructed, until `stop()`."""

    def __init__(self, server: Sip2Server, host: str = "127.0.0.1", port: int = 0,
                 tls: ssl.SSLContext | None = None) -> None:
        self.sip2 = server
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, name="sip2",
                                       daemon=True)
        self.thread.start()
        self.server = asyncio.run_coroutine_threadsafe(server.start(host, port, tls),
                                                       self.loop).result(10)
        self.port: int = self.server.sockets[0].getsockname()[1]

    def stop(self) -> None:
        async def close() -> None:
            self.server.close()
            await self.server.wait_closed()
            others = [t for t in asyncio.all_tasks() if t is not asyncio.current_task()]
            for task in others:
                task.cancel()
            await asyncio.gather(*others, return_exceptions=True)

        asyncio.run_coroutine_threadsafe(close(), self.loop).result(10)
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(10)
        self.loop.close()
        self.sip2.close()


def _language(msg: codec.Message) -> str:
    lang = msg.fixed[:3] if msg.command in ("23", "63", "25", "01") else ""
    return lang if len(lang) == 3 and lang.isdigit() else "000"


class FrameReader:
    """Frames up to CR or LF from a stream. A frame longer than the limit is read to its end
    and handed on cut to one byte over the limit (the codec refuses it with 96), so the next
    frame starts clean."""

    def __init__(self, reader: asyncio.StreamReader) -> None:
        self.reader = reader
        self.buffer = bytearray()
        self.overflow = False

    async def next(self) -> bytes | None:
        while True:
            ends = [i for i in (self.buffer.find(b"\r"), self.buffer.find(b"\n")) if i >= 0]
            if ends:
                end = min(ends)
                frame = bytes(self.buffer[:end])
                del self.buffer[:end + 1]
                if self.overflow:
                    self.overflow = False
                    return b"?" * (codec.MAX_FRAME + 1)
                return frame
            if len(self.buffer) > codec.MAX_FRAME:
                self.buffer.clear()
                self.overflow = True
            chunk = await self.reader.read(4096)
            if not chunk:
                return None
            self.buffer += chunk
