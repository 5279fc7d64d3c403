"""The demo's library chapter: two libraries linked at the counter, a kiosk asking the county's
SIP2 server over a real socket, and what each library's feed says when the card is lost and
replaced."""

from __future__ import annotations

import base64
import socket
from typing import Any

from cardsvc.app.story import Story
from cardsvc.db import utcnow
from cardsvc.library.sip2 import codec
from cardsvc.library.sip2.server import InThread, Sip2Server, sip_date
from cardsvc.runtime import Runtime

CATEGORIES = {"general": "AD", "senior": "SR", "disability": "SR", "companion": "SR",
              "student": "ST", "default": "AD"}
KIOSK_PASSWORD = "kiosk-Passw0rd-1"  # noqa: S105 - the demo's throw-away kiosk account


class Kiosk:
    """A self-check kiosk of the culture bureau's library, speaking SIP2 to our server."""

    def __init__(self, rt: Runtime) -> None:
        self.server = InThread(Sip2Server(rt.sessions, rt.ctx))
        self.sock = socket.create_connection(("127.0.0.1", self.server.port), timeout=10)
        self.seq = 0
        self.buffer = b""

    def ask(self, body: str) -> codec.Message:
        self.seq = (self.seq + 1) % 10
        data = f"{body}AY{self.seq}AZ".encode()
        self.sock.sendall(data + codec.checksum(data).encode() + b"\r")
        while b"\r" not in self.buffer:
            self.buffer += self.sock.recv(4096)
        frame, _, self.buffer = self.buffer.partition(b"\r")
        return codec.decode(frame)

    def login(self, username: str) -> bool:
        return self.ask(f"9300CN{username}|CO{KIOSK_PASSWORD}|").fixed == "1"

    def patron(self, number: str) -> tuple[str, codec.Message]:
        answer = self.ask(f"63000{sip_date(utcnow())}{' ' * 10}AOKMCCL|AA{number}|")
        status = answer.fixed[:14]
        if answer.get("BL") == "Y":
            verdict = "[green]valid[/]"
        elif status[4] == "Y":
            verdict = "[yellow]lost[/]"
        else:
            verdict = f"[yellow]not valid[/] ({answer.get('AF')})"
        return verdict, answer

    def close(self) -> None:
        self.sock.close()
        self.server.stop()


class Libraries:
    def __init__(self, st: Story, rt: Runtime) -> None:
        self.st = st
        self.rt = rt
        self.libs: dict[str, dict[str, Any]] = {}
        self.kiosk: Kiosk | None = None

    def feed_tail(self, code: str) -> dict[str, Any]:
        lib = self.libs[code]
        token = base64.b64encode(f"{lib['feed_key_id']}:{lib['feed_key']}".encode()).decode()
        r = self.st.client.get("/library/v1/feed", headers={"Authorization": f"Basic {token}"})
        events: list[dict[str, Any]] = r.json()["events"]
        return events[-1]

    def link(self, holder_id: int, card: dict[str, Any], admin_password: str) -> None:
        st = self.st
        st.step("Library cards: one card borrows at every library in the county")
        st.login("admin", admin_password)
        for code, name, ils, optional in (("KMCCL", "金門縣文化局圖書館", "koha", ["name"]),
                                          ("NQUL", "國立金門大學圖書館", "other", [])):
            self.libs[code] = st.call("POST", "/libraries", {
                "code": code, "name": name, "ils": ils, "categories": CATEGORIES,
                "home_branch": code, "optional_fields": optional}, expect=201)
            st.say(f"admin registers {name} ({ils}); it pulls its feed with key "
                   f"{self.libs[code]['feed_key_id']}")
        st.call("POST", f"/libraries/{self.libs['KMCCL']['id']}/sip-logins",
                {"username": "kmccl-kiosk1", "password": KIOSK_PASSWORD}, expect=201)
        st.login("clerk.lin", "clerk.lin-Passw0rd")
        for code, shared in (("KMCCL", ["name"]), ("NQUL", [])):
            link = st.call("POST", f"/cardholders/{holder_id}/library-links",
                           {"library_id": self.libs[code]["id"], "shared_fields": shared},
                           expect=201)
            self.libs[code]["patron_id"] = link["patron_id"]
            st.say(f"陳志明 agrees to {link['library_name']} (shares "
                   f"{', '.join(['card number, category, expiry, status', *shared])}) → "
                   f"patron id {link['patron_id']}; a consent receipt is printed")
        self.kiosk = Kiosk(self.rt)
        if not self.kiosk.login("kmccl-kiosk1"):
            raise RuntimeError("the kiosk's SIP2 login failed")
        verdict, answer = self.kiosk.patron(card["card_number"])
        st.say(f"the culture bureau's kiosk asks over SIP2 (63) for card {card['card_number']}"
               f" → {verdict}, name {answer.get('AE') or '—'}")

    def after_lost(self, card: dict[str, Any]) -> None:
        assert self.kiosk is not None  # noqa: S101 - linked first
        tail = self.feed_tail("KMCCL")
        self.st.say(f"KMCCL's feed, event {tail['seq']}: patron {tail['patron_id']} → "
                    f"[yellow]{tail['record']['status']}[/]")
        verdict, _ = self.kiosk.patron(card["card_number"])
        self.st.say(f"the kiosk asks again → {verdict}")

    def after_replacement(self, old: dict[str, Any], new: dict[str, Any]) -> None:
        assert self.kiosk is not None  # noqa: S101 - linked first
        for code in ("KMCCL", "NQUL"):
            tail = self.feed_tail(code)
            same = "same" if tail["patron_id"] == self.libs[code]["patron_id"] else "NEW"
            self.st.say(f"{code}'s feed: patron {tail['patron_id']} ({same} patron id) now "
                        f"card {tail['record']['card_number']}, {tail['record']['status']}")
        for label, number in (("new", new["card_number"]), ("old", old["card_number"])):
            verdict, _ = self.kiosk.patron(number)
            self.st.say(f"the kiosk asks for the {label} card {number} → {verdict}")
        self.kiosk.close()
