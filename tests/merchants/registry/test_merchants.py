"""Merchant and terminal registry; signed POS requests."""

from __future__ import annotations

import json
import time

import pytest
from sqlalchemy import select, text

from cardsvc.audit.models import AuditEvent
from merchants.pos.client import PosClient

MERCHANT = {"legal_name": "金門縣自來水廠", "tax_id": "53212539", "category": "utility",
            "fee_bps": 0, "bank_account": "004-123456789012"}


@pytest.fixture
def terminal(clerk):  # type: ignore[no-untyped-def]
    m = clerk.ok("POST", "/merchants", MERCHANT, status=201)
    return clerk.ok("POST", f"/merchants/{m['id']}/terminals", {"label": "Counter 1",
                                                                "location": "金城鎮"}, status=201)


@pytest.fixture
def pos(app_client, terminal) -> PosClient:  # type: ignore[no-untyped-def]
    return PosClient(app_client, terminal["key_id"], terminal["secret"])


def test_register_merchant_validates_tax_id_and_encrypts_the_account(clerk, rt) -> None:  # type: ignore[no-untyped-def]
    m = clerk.ok("POST", "/merchants", MERCHANT, status=201)
    assert m["bank_account_masked"] == "*" * 11 + "9012"  # 15 digits, last 4 shown
    for wrong in ("53212538", "５３２１２５３９", "5321253²"):  # checksum, full-width, superscript
        bad = clerk.post("/merchants", dict(MERCHANT, tax_id=wrong))
        assert bad.status_code == 422 and bad.json()["field"] == "tax_id", (wrong, bad.text)
    dup = clerk.post("/merchants", MERCHANT)
    assert dup.status_code == 409
    with rt.engine.connect() as conn:
        stored = conn.execute(text("SELECT bank_account_enc FROM merchants")).scalar_one()
    assert "123456789012" not in stored
    with rt.sessions() as db:
        assert db.scalar(select(AuditEvent.id).where(AuditEvent.action == "merchant.create"))


def test_terminal_secret_is_shown_once(clerk, terminal) -> None:  # type: ignore[no-untyped-def]
    assert len(terminal["secret"]) >= 40 and terminal["key_id"].startswith("tk_")
    listed = clerk.ok("GET", f"/merchants/{terminal['merchant_id']}/terminals")
    assert "secret" not in listed[0] and terminal["secret"] not in str(listed)


def test_signed_ping(pos, terminal) -> None:  # type: ignore[no-untyped-def]
    r = pos.request("POST", "/pos/v1/ping", {})
    assert r.status_code == 200, r.text
    assert r.json()["terminal_id"] == terminal["id"]


def test_bad_signature(pos) -> None:  # type: ignore[no-untyped-def]
    body = b"{}"
    headers = pos.signed_headers("POST", "/pos/v1/ping", body)
    headers["X-Signature"] = "0" * 64
    r = pos.http.post("/pos/v1/ping", content=body, headers=headers)
    assert r.status_code == 401 and r.json()["code"] == "bad_signature"
    # Signed for another body.
    headers = pos.signed_headers("POST", "/pos/v1/ping", b'{"x":1}')
    r = pos.http.post("/pos/v1/ping", content=body, headers=headers)
    assert r.json()["code"] == "bad_signature"


def test_old_timestamp(pos) -> None:  # type: ignore[no-untyped-def]
    r = pos.request("POST", "/pos/v1/ping", {}, timestamp=str(int(time.time()) - 301))
    assert r.status_code == 401 and r.json()["code"] == "stale_timestamp"
    r = pos.request("POST", "/pos/v1/ping", {}, timestamp=str(int(time.time()) + 3600))
    assert r.json()["code"] == "stale_timestamp"


@pytest.mark.parametrize("path", ["/pos/v1/ping", "/pos/v1/purchases"])
def test_timestamps_that_are_not_unix_seconds(pos, path: str) -> None:  # type: ignore[no-untyped-def]
    """Not a 500: a superscript digit (isdigit but no int), an endless number."""
    body = b"{}" if path.endswith("ping") else json.dumps({
        "card_number": "8902100000000008", "chip_uid": "04A1B2C3", "amount": 1,
        "card_counter": 1, "balance_after": 0, "terminal_seq": 1, "time": 1,
        "certificate": "00" * 8}).encode()
    for stamp, codes in ((b"\xb2", {"stale_timestamp"}),
                         (b"9" * 5000, {"bad_signature", "invalid_input"})):
        headers = pos.signed_headers("POST", path, body, idempotency_key="stamp-test-1")
        r = pos.http.post(path, content=body, headers={**headers, "X-Timestamp": stamp})
        assert r.status_code in (401, 422) and r.json()["code"] in codes, r.text


def test_reused_nonce(pos) -> None:  # type: ignore[no-untyped-def]
    body = b"{}"
    headers = pos.signed_headers("POST", "/pos/v1/ping", body, nonce="n0nce-n0nce-n0nce-1")
    assert pos.http.post("/pos/v1/ping", content=body, headers=headers).status_code == 200
    r = pos.http.post("/pos/v1/ping", content=body, headers=headers)
    assert r.status_code == 401 and r.json()["code"] == "nonce_reused"


def test_rotate_and_revoke(clerk, app_client, terminal, pos) -> None:  # type: ignore[no-untyped-def]
    new = clerk.ok("POST", f"/merchants/terminals/{terminal['id']}/rotate")
    assert pos.request("POST", "/pos/v1/ping", {}).json()["code"] == "unknown_terminal"
    rotated = PosClient(app_client, new["key_id"], new["secret"])
    assert rotated.request("POST", "/pos/v1/ping", {}).status_code == 200
    clerk.ok("POST", f"/merchants/terminals/{terminal['id']}/revoke",
             {"reason": "terminal stolen"})
    r = rotated.request("POST", "/pos/v1/ping", {})
    assert r.status_code == 403 and r.json()["code"] == "terminal_revoked"
