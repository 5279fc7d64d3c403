"""What the API does before it reads a request: size limits on headers and bodies (through
the real server, so "before" is measured, not assumed), malformed bodies, the access log that
nobody can forge lines into, and an unhandled error logged once and answered with a 500."""

from __future__ import annotations

import logging
import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from cardsvc.app.http import create_app
from tests.support.net import free_port


def post_raw(client: TestClient, path: str, body: bytes, headers: dict[str, str]):  # type: ignore[no-untyped-def]
    return client.post(path, content=body, headers={"Content-Type": "application/json",
                                                    **headers})


@pytest.mark.parametrize("body", [
    b'{"username": "\xff\xfe", "password": "x"}',  # not UTF-8
    b"[" * 100_000 + b"]" * 100_000,  # nested past any parser's depth
    b'{"username": "a", "password": "b", "n": ' + b"9" * 5000 + b"}",  # 5,000 digits
    b'{"username": "a", "password": "b"',  # cut short
])
def test_bodies_that_are_not_json_are_malformed_json(app_client, body: bytes) -> None:  # type: ignore[no-untyped-def]
    for path in ("/auth/login", "/cardholders"):
        r = post_raw(app_client, path, body, {})
        assert r.status_code == 400, (path, r.text)
        assert r.headers["content-type"].startswith("application/problem+json")
        assert r.json()["code"] == "malformed_json"


def test_an_oversized_body_is_refused_with_413(app_client, clerk, rt) -> None:  # type: ignore[no-untyped-def]
    big = b'{"username": "' + b"a" * (rt.settings.max_body_bytes + 10) + b'", "password": "x"}'
    r = post_raw(app_client, "/auth/login", big, {})
    assert r.status_code == 413 and r.json()["code"] == "body_too_large"
    assert r.headers["connection"] == "close"
    # Staff uploads (a biller's CSV file) may be larger; a stranger's may not.
    csv = b"account,amount\n" + b"x" * (rt.settings.max_body_bytes + 10)
    r = app_client.post("/billers/1/bills/import", content=csv,
                        headers={"Content-Type": "text/csv"})
    assert r.status_code == 413
    r = app_client.post("/billers/1/bills/import", content=csv,
                        headers={"Content-Type": "text/csv", **clerk.headers})
    assert r.status_code != 413, r.text


def test_oversized_headers_are_refused_with_431(app_client) -> None:  # type: ignore[no-untyped-def]
    r = app_client.get("/health", headers={"X-Filler": "a" * 20_000})
    assert r.status_code == 431 and r.json()["code"] == "headers_too_large"
    assert app_client.get("/health", headers={"X-Filler": "a" * 2_000}).status_code == 200


def test_a_query_parameter_given_twice_is_refused(app_client, auditor) -> None:  # type: ignore[no-untyped-def]
    # The framework would keep one of the two values: the filter the caller meant is unknown.
    r = auditor.client.get("/audit/events?action=card.issue&action=card.block",
                           headers=auditor.headers)
    assert (r.status_code, r.json()["code"]) == (422, "invalid_input")
    assert auditor.client.get("/audit/events?action=card.issue&limit=5",
                              headers=auditor.headers).status_code == 200


def test_the_access_log_cannot_be_forged(app_client, caplog) -> None:  # type: ignore[no-untyped-def]
    caplog.set_level(logging.INFO, logger="cardsvc.access")
    app_client.get("/health%0A2026-12-01 12:00:00 INFO cardsvc.access GET /admin 200%1b[31m"
                   "%E2%80%A8x\\y")
    lines = [r.getMessage() for r in caplog.records if r.name == "cardsvc.access"]
    assert len(lines) == 1
    line = lines[0]
    assert "\n" not in line and "\x1b" not in line and "\u2028" not in line
    assert "\\x0a2026-12-01" in line and "\\x1b[31m" in line and "x\\\\y" in line
    assert line.endswith("ms") and " 404 " in line


def test_an_unhandled_error_is_logged_once_and_in_the_access_log(rt, caplog) -> None:  # type: ignore[no-untyped-def]
    app = create_app(rt)

    @app.get("/boom")
    def boom() -> None:
        raise RuntimeError("a bug")

    caplog.set_level(logging.INFO)
    # raise_server_exceptions=True: had the error reached the server, this would raise here
    # (and uvicorn would log its own traceback, a second one).
    with TestClient(app) as client:
        r = client.get("/boom")
    assert r.status_code == 500 and r.json()["code"] == "internal_error"
    tracebacks = [rec for rec in caplog.records if rec.exc_info]
    assert len(tracebacks) == 1 and "a bug" in str(tracebacks[0].exc_info[1])  # type: ignore[index]
    access = [rec.getMessage() for rec in caplog.records if rec.name == "cardsvc.access"]
    assert access and access[0].startswith("GET /boom 500 ")


# --- through the real server ------------------------------------------------------------


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[int, Path]]:
    work = tmp_path_factory.mktemp("serve")
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("CARDSVC_")}
    log = work / "server.log"
    with log.open("w") as out:
        proc = subprocess.Popen([sys.executable, "-m", "cardsvc.app.cli", "serve", "--port",
                                 str(port)], cwd=work, env=env, stdout=out,
                                stderr=subprocess.STDOUT)
    try:
        for _ in range(200):
            try:
                with socket.create_connection(("127.0.0.1", port), timeout=1):
                    break
            except OSError:
                time.sleep(0.1)
        yield port, log
    finally:
        proc.terminate()
        proc.wait(10)


def _answer(sock: socket.socket) -> bytes:
    sock.settimeout(10)
    data = b""
    try:
        while b"\r\n\r\n" not in data:
            chunk = sock.recv(65536)
            if not chunk:
                break
            data += chunk
    except (ConnectionResetError, TimeoutError):
        pass
    return data


def test_a_huge_declared_body_is_refused_before_it_is_sent(server) -> None:  # type: ignore[no-untyped-def]
    port, _ = server
    with socket.create_connection(("127.0.0.1", port)) as sock:
        sock.sendall(b"POST /auth/login HTTP/1.1\r\nHost: x\r\nContent-Type: application/json"
                     b"\r\nContent-Length: 500000000\r\n\r\n")
        answer = _answer(sock)  # no byte of the 500 MB was sent
    assert answer.startswith(b"HTTP/1.1 413"), answer[:200]


def test_a_chunked_body_is_cut_off_at_the_limit(server) -> None:  # type: ignore[no-untyped-def]
    port, _ = server
    sent = 0
    with socket.create_connection(("127.0.0.1", port)) as sock:
        sock.sendall(b"POST /auth/login HTTP/1.1\r\nHost: x\r\nContent-Type: application/json"
                     b"\r\nTransfer-Encoding: chunked\r\n\r\n")
        chunk = b"a" * 65536
        sock.settimeout(0.05)
        answer = b""
        try:
            while sent < 200 * 1_048_576:
                sock.sendall(f"{len(chunk):x}\r\n".encode() + chunk + b"\r\n")
                sent += len(chunk)
                try:
                    answer += sock.recv(65536)
                    if answer:
                        break
                except TimeoutError:
                    pass
        except (BrokenPipeError, ConnectionResetError):
            pass
        answer += _answer(sock)
    assert answer.startswith(b"HTTP/1.1 413"), answer[:200]
    assert sent < 32 * 1_048_576  # refused long before the client was done


def test_a_huge_header_is_refused_while_it_arrives(server) -> None:  # type: ignore[no-untyped-def]
    port, _ = server
    sent = 0
    with socket.create_connection(("127.0.0.1", port)) as sock:
        sock.sendall(b"GET /health HTTP/1.1\r\nHost: x\r\nX-Filler: ")
        sock.settimeout(0.05)
        answer = b""
        try:
            while sent < 10 * 1_048_576:
                sock.sendall(b"a" * 65536)
                sent += 65536
                try:
                    answer += sock.recv(65536)
                    if answer:
                        break
                except TimeoutError:
                    pass
        except (BrokenPipeError, ConnectionResetError):
            pass
        answer += _answer(sock)
    assert answer.startswith(b"HTTP/1.1 431"), answer[:200]
    assert sent < 2 * 1_048_576


def test_the_server_log_has_one_line_per_request_and_no_forged_ones(server) -> None:  # type: ignore[no-untyped-def]
    port, log = server
    with socket.create_connection(("127.0.0.1", port)) as sock:
        sock.sendall(b"GET /health%0D%0A2026-12-01%20INFO%20forged HTTP/1.1\r\nHost: x\r\n"
                     b"Connection: close\r\n\r\n")
        _answer(sock)
    time.sleep(0.3)
    text = log.read_text()
    assert "forged" in text
    assert not any(line.lstrip().startswith("2026-12-01 INFO forged")
                   for line in text.splitlines())


def test_every_worker_writes_the_access_log(tmp_path: Path) -> None:
    """`cardsvc serve --workers 2`: the log configuration reaches the worker processes."""
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("CARDSVC_")}
    log = tmp_path / "server.log"
    with log.open("w") as out:
        proc = subprocess.Popen([sys.executable, "-m", "cardsvc.app.cli", "serve", "--port",
                                 str(port), "--workers", "2"], cwd=tmp_path, env=env,
                                stdout=out, stderr=subprocess.STDOUT)
    try:
        answered = False
        for _ in range(300):
            try:
                with socket.create_connection(("127.0.0.1", port), timeout=1) as sock:
                    sock.sendall(b"GET /health HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
                    answered = _answer(sock).startswith(b"HTTP/1.1 200")
                    break
            except OSError:
                time.sleep(0.1)
        assert answered, log.read_text()
        with socket.create_connection(("127.0.0.1", port)) as sock:
            sock.sendall(b"GET /nope%0Aforged HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
            _answer(sock)
        for _ in range(50):
            text = log.read_text()
            if "GET /nope" in text:
                break
            time.sleep(0.1)
    finally:
        proc.terminate()
        proc.wait(20)
    text = log.read_text()
    assert "cardsvc.access GET /health 200" in text, text
    assert "GET /nope\\x0aforged 404" in text, text
