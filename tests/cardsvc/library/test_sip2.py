"""The county SIP2 server over a real socket: through the independent `sip2` client a library
kiosk would use, and through raw frames the way real clients deviate."""

from __future__ import annotations

import datetime as dt
import ipaddress
import json
import socket
import ssl
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
from Sip2.sip2 import Sip2

from cardsvc.app.cli.library import make_server
from cardsvc.library.sip2 import codec
from cardsvc.library.sip2.server import InThread, Sip2Server
from tests.support import libraries as lib
from tests.support.api import Api


@dataclass
class Desk:
    port: int
    admin: Api
    clerk: Api
    library: dict[str, Any]
    login: dict[str, Any]


@pytest.fixture
def desk(rt, admin, clerk, tmp_path, monkeypatch) -> Iterator[Desk]:  # type: ignore[no-untyped-def]
    monkeypatch.chdir(tmp_path)  # the sip2 client writes its log file where it runs
    county = lib.register(admin, "KMCCL", optional=["name"])
    login = admin.ok("POST", f"/libraries/{county['id']}/sip-logins",
                     {"username": "kmccl-kiosk1", "password": "kiosk-pass-1"}, status=201)
    running = InThread(make_server(rt))  # as `cardsvc sip2 serve` builds it
    yield Desk(running.port, admin, clerk, county, login)
    running.stop()


def client(desk: Desk, patron: str = "", pin: str = "") -> Sip2:
    c = Sip2()
    c.hostName, c.hostPort, c.socketTimeout = "127.0.0.1", desk.port, 5
    c.institutionId, c.patron, c.patronpwd = "KMCCL", patron, pin
    c.connect()
    return c


def login(c: Sip2, password: str = "kiosk-pass-1") -> str:
    return str(c.sip_login_response(c.get_response(
        c.sip_login_request("kmccl-kiosk1", password)))["fixed"]["Ok"])


def info(c: Sip2, patron: str, pin: str = "") -> dict[str, Any]:
    c.patron, c.patronpwd = patron, pin
    raw = c.get_response(c.sip_patron_information_request("none"))
    assert_checksum(raw.encode())
    parsed: dict[str, Any] = c.sip_patron_information_response(raw)
    return parsed


def assert_checksum(frame: bytes) -> None:
    """The client library does not really check our checksums: we do."""
    frame = frame.rstrip(b"\r\n")
    assert frame[-6:-4] == b"AZ", frame
    assert codec.checksum(frame[:-4]) == frame[-4:].decode(), frame


def test_a_kiosk_asks_through_the_sip2_client(desk: Desk, auditor) -> None:  # type: ignore[no-untyped-def]
    holder, card = lib.resident_with_card(desk.clerk, name="陳金門")
    link = lib.link(desk.clerk, holder["id"], desk.library, ["name"], pin="2468")
    c = client(desk)
    assert login(c) == "1"
    status = c.sip_sc_status_response(c.get_response(c.sip_sc_status_request()))
    assert status["fixed"]["OnlineStatus"] == "Y"
    assert status["variable"]["BX"] == ["YNNNYYYYYNNNNNNN"]
    assert status["variable"]["AO"] == ["KMCCL"]

    valid = info(c, card["card_number"], "2468")
    assert valid["fixed"]["PatronStatus"] == " " * 14
    assert valid["variable"]["BL"] == ["Y"] and valid["variable"]["CQ"] == ["Y"]
    assert valid["variable"]["AE"] == ["陳金門"]
    assert valid["variable"]["PA"][0].startswith(card["expires_on"].replace("-", ""))
    assert info(c, card["card_number"], "1111")["variable"]["CQ"] == ["N"]
    by_patron_id = info(c, link["patron_id"])
    assert by_patron_id["variable"]["BL"] == ["Y"]

    desk.clerk.ok("POST", f"/cards/{card['id']}/suspend", {"reason": "resident lost it"})
    lost = info(c, card["card_number"])
    assert lost["fixed"]["PatronStatus"] == "YYYYY" + " " * 9
    assert lost["variable"]["BL"] == ["N"] and "lost" in lost["variable"]["AF"][0]

    new = lib.replace(desk.clerk, card["id"])["new_card"]
    assert info(c, new["card_number"])["variable"]["BL"] == ["Y"]
    old = info(c, card["card_number"])
    assert old["variable"]["BL"] == ["N"] and "replaced" in old["variable"]["AF"][0]

    status23 = c.sip_patron_status_response(c.get_response(c.sip_patron_status_request()))
    assert status23["variable"]["BL"] == ["N"]  # c.patron is still the old card
    c.disconnect()
    # Lookups are audited without waiting for the chain; the auditor reads them chained.
    lookups = auditor.ok("GET", "/audit/events", action="library.sip_lookup")
    assert len(lookups) == 7
    assert all(json.loads(r["detail"])["login"] == "kmccl-kiosk1" for r in lookups)
    assert auditor.ok("GET", "/audit/verify")["ok"]


def test_other_libraries_residents_and_unknown_cards_are_not_answered_for(desk: Desk) -> None:
    other_library = lib.register(desk.admin, "JCLIB")
    holder, card = lib.resident_with_card(desk.clerk, name="李烈嶼")
    lib.link(desk.clerk, holder["id"], other_library, [])
    c = client(desk)
    assert login(c) == "1"
    for patron in (card["card_number"], "8902000000000000", "KMPAAAAAAAAAAAA", "陳"):
        answer = info(c, patron)
        assert answer["variable"]["BL"] == ["N"] and answer["variable"]["AE"] == [""]
        assert answer["fixed"]["PatronStatus"][:4] == "YYYY"


def test_the_name_goes_only_where_it_was_agreed(desk: Desk) -> None:
    holder, card = lib.resident_with_card(desk.clerk, name="陳金門")
    lib.link(desk.clerk, holder["id"], desk.library, [])
    c = client(desk)
    login(c)
    answer = info(c, card["card_number"])
    assert answer["variable"]["BL"] == ["Y"] and answer["variable"]["AE"] == [""]


class Raw:
    def __init__(self, port: int) -> None:
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=5)
        self.buffer = b""

    def send(self, data: bytes) -> None:
        self.sock.sendall(data)

    def answer(self) -> bytes:
        while b"\r" not in self.buffer:
            chunk = self.sock.recv(4096)
            assert chunk, "the server closed the connection"
            self.buffer += chunk
        frame, _, self.buffer = self.buffer.partition(b"\r")
        assert_checksum(frame)
        return frame

    def ask(self, body: str, end: bytes = b"\r") -> bytes:
        data = body.encode()
        self.send(data + codec.checksum(data).encode() + end)
        return self.answer()


def test_raw_frames_as_real_clients_send_them(desk: Desk) -> None:
    holder, card = lib.resident_with_card(desk.clerk, born=dt.date(1958, 3, 2))
    lib.link(desk.clerk, holder["id"], desk.library)
    raw = Raw(desk.port)
    wrong = raw.ask("9300CNkmccl-kiosk1|COnope|AY0AZ")
    assert wrong.startswith(b"940")
    assert raw.ask("9300CNkmccl-kiosk1|COkiosk-pass-1|AY1AZ", b"\r\n").startswith(b"941")
    number = card["card_number"]
    # Fields out of order, a blank language, "0000" as the time zone, CRLF.
    out = raw.ask(f"63   202612050000101010          AA{number}|AOKMCCL|AY2AZ", b"\r\n")
    assert out.startswith(b"64" + b" " * 14) and b"BLY|" in out and b"AY2AZ" in out
    # Nothing but what the library may know: no national ID, chip UID or birth date.
    assert holder["_person_id"].encode() not in out and card["chip_uid"].encode() not in out
    # The birth year in no field (the fixed part before AO holds the transaction's own date
    # and time, which may read 1958 at 19:58).
    assert b"1958" not in out[out.index(b"AO"):]
    # A bad checksum: 96, and the connection goes on.
    raw.send(b"2300020261205    101010AOKMCCL|AA" + number.encode() + b"|AY3AZ0000\r")
    assert raw.answer().startswith(b"96")
    # A frame cut in half arrives in two pieces.
    body = f"2300020261205    101010AOKMCCL|AA{number}|AY4AZ".encode()
    whole = body + codec.checksum(body).encode() + b"\r"
    raw.send(whole[:20])
    time.sleep(0.2)
    raw.send(whole[20:])
    assert raw.answer().startswith(b"24" + b" " * 14)
    # 10 kB of one frame: 96, and the next frame is read cleanly.
    raw.send(b"23" + b"A" * 10_000 + b"\r")
    assert raw.answer().startswith(b"96")
    # An unknown message code: 96. Circulation: a refusal naming the library's own system.
    assert raw.ask("42XYZ|AY5AZ").startswith(b"96")
    checkout = raw.ask(f"11YN20261205    10101020261219    101010AOKMCCL|AA{number}|"
                       "AB39001|AY6AZ")
    assert checkout.startswith(b"120") and b"library's own system" in checkout
    # 97: the last answer again.
    raw.send(b"97\r")
    assert raw.answer().startswith(b"120")
    # End of session.
    assert raw.ask(f"3520261205    101010AOKMCCL|AA{number}|AY7AZ").startswith(b"36Y")


def test_patron_requests_before_a_login_learn_nothing(desk: Desk) -> None:
    holder, card = lib.resident_with_card(desk.clerk)
    lib.link(desk.clerk, holder["id"], desk.library)
    raw = Raw(desk.port)
    out = raw.ask(f"6300020261205    101010          AOKMCCL|AA{card['card_number']}|AY1AZ")
    assert out.startswith(b"64YYYY") and b"BLN|" in out


def test_three_wrong_logins_close_the_connection(desk: Desk) -> None:
    raw = Raw(desk.port)
    for seq in range(3):
        assert raw.ask(f"9300CNkmccl-kiosk1|COwrong|AY{seq}AZ").startswith(b"940")
    raw.sock.settimeout(5)
    assert raw.sock.recv(10) == b""


def self_signed(tmp: Path) -> tuple[Path, Path]:
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")])
    now = dt.datetime.now(dt.UTC)
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name)
            .public_key(key.public_key()).serial_number(x509.random_serial_number())
            .not_valid_before(now - dt.timedelta(minutes=1))
            .not_valid_after(now + dt.timedelta(days=1))
            .add_extension(x509.SubjectAlternativeName(
                [x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]), critical=False)
            .sign(key, hashes.SHA256()))
    cert_file, key_file = tmp / "sip2.crt", tmp / "sip2.key"
    cert_file.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_file.write_bytes(key.private_bytes(serialization.Encoding.PEM,
                                           serialization.PrivateFormat.PKCS8,
                                           serialization.NoEncryption()))
    return cert_file, key_file


def test_sip2_over_tls(rt, admin, tmp_path) -> None:  # type: ignore[no-untyped-def]
    county = lib.register(admin, "KMCCL")
    admin.ok("POST", f"/libraries/{county['id']}/sip-logins",
             {"username": "kmccl-proxy", "password": "proxy-pass-1"}, status=201)
    cert_file, key_file = self_signed(tmp_path)
    server_tls = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    server_tls.load_cert_chain(cert_file, key_file)
    running = InThread(Sip2Server(rt.sessions, rt.ctx), tls=server_tls)
    try:
        client_tls = ssl.create_default_context(cafile=str(cert_file))
        with socket.create_connection(("127.0.0.1", running.port), timeout=5) as plain, \
                client_tls.wrap_socket(plain, server_hostname="127.0.0.1") as sock:
            data = b"9300CNkmccl-proxy|COproxy-pass-1|AY1AZ"
            sock.sendall(data + codec.checksum(data).encode() + b"\r")
            answer = sock.recv(100)
        assert answer.startswith(b"941AY1AZ")
    finally:
        running.stop()


def test_a_switched_off_login_gets_no_more_answers_on_its_open_connection(desk: Desk) -> None:
    holder, card = lib.resident_with_card(desk.clerk)
    lib.link(desk.clerk, holder["id"], desk.library)
    raw = Raw(desk.port)
    assert raw.ask("9300CNkmccl-kiosk1|COkiosk-pass-1|AY1AZ").startswith(b"941")
    ask = f"6300020261205    101010          AOKMCCL|AA{card['card_number']}|AY2AZ"
    assert b"BLY|" in raw.ask(ask)
    desk.admin.ok("POST", f"/libraries/sip-logins/{desk.login['id']}/deactivate")
    after = raw.ask(ask)
    assert after.startswith(b"64YYYY") and b"BLN|" in after
    fresh = Raw(desk.port)
    assert fresh.ask("9300CNkmccl-kiosk1|COkiosk-pass-1|AY1AZ").startswith(b"940")


def test_frames_with_nul_or_foreign_bytes_get_96_and_the_connection_stays(desk: Desk) -> None:
    raw = Raw(desk.port)
    for frame in (b"9300CNkmccl\x00kiosk1|COx|AY1AZ", b"23000\x80\xffAY1AZFFFF"):
        raw.send(frame + b"\r")
        assert raw.answer().startswith(b"96")
    with pytest.raises(codec.FrameError):
        codec.decode(b"23000\x80AY1AZFFFF", encoding="big5")
    assert raw.ask("9300CNkmccl-kiosk1|COkiosk-pass-1|AY3AZ").startswith(b"941")


def test_wrong_passwords_are_throttled_across_connections(desk: Desk) -> None:
    for attempt in range(2):  # two connections of three wrong passwords each
        raw = Raw(desk.port)
        for seq in range(3):
            assert raw.ask(f"9300CNkmccl-kiosk1|COwrong-{attempt}{seq}|AY{seq}AZ").startswith(
                b"940")
    # Reconnecting does not reset the count: even the right password waits now.
    assert Raw(desk.port).ask("9300CNkmccl-kiosk1|COkiosk-pass-1|AY1AZ").startswith(b"940")


def test_pin_guesses_are_throttled(desk: Desk) -> None:
    holder, card = lib.resident_with_card(desk.clerk)
    lib.link(desk.clerk, holder["id"], desk.library, pin="2468")
    raw = Raw(desk.port)
    assert raw.ask("9300CNkmccl-kiosk1|COkiosk-pass-1|AY0AZ").startswith(b"941")

    def guess(pin: str, seq: int) -> bytes:
        return raw.ask(f"23000{'20261205    101010'}AOKMCCL|AA{card['card_number']}|AD{pin}|"
                       f"AY{seq % 10}AZ")

    for n in range(5):
        assert b"CQN|" in guess(f"{1000 + n}", n)
    assert b"CQN|" in guess("2468", 6)  # the right PIN, too soon after the guesses
