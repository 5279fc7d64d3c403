"""The POS API: card-present purchases through a real (simulated) chip and the signed API;
refunds, voids, status, hotlist; every refusal with its own code, and nothing dropped."""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import select

from cardsvc.context import TAIPEI
from cardsvc.db import unit_of_work
from cardsvc.keystore.service import KeyStore
from merchants.pos.interfaces import ClearingState, NothingCleared
from merchants.pos.models import PosTransaction
from readers.memory import InProcessReader
from readers.protocol import KeyPurpose
from simulators.card import VirtualCard
from tests.support import factories as f
from tests.support.worlds import Shop


def test_card_present_purchase(shop: Shop) -> None:
    r = shop.buy(shop.tap(120))
    assert r.status_code == 200, r.text
    out = r.json()
    assert out["status"] == "accepted" and out["purse_balance"] == 880
    status = shop.pos.request("GET", f"/pos/v1/transactions/{out['transaction_id']}").json()
    assert status["status"] == "accepted" and status["amount"] == 120


def test_retried_purchase_is_charged_once(shop: Shop) -> None:
    body, key = shop.tap(50), f.key()
    first, second = shop.buy(body, key), shop.buy(body, key)
    assert first.json() == second.json()
    assert second.headers["Idempotent-Replayed"] == "true"
    assert shop.clerk.ok("GET", f"/cards/{shop.card['id']}/purse")["balance"] == 950


def test_forged_or_altered_certificate(shop: Shop) -> None:
    body = shop.tap(80)
    for altered in (dict(body, amount=8), dict(body, certificate="00" * 8),
                    dict(body, terminal_seq=body["terminal_seq"] + 1),
                    dict(body, balance_after=body["balance_after"] + 80)):
        r = shop.buy(altered)
        assert r.status_code == 422 and r.json()["code"] == "bad_certificate", r.text
    assert shop.clerk.ok("GET", f"/cards/{shop.card['id']}/purse")["balance"] == 1_000


def test_replayed_certificate(shop: Shop) -> None:
    body = shop.tap(30)
    assert shop.buy(body).status_code == 200
    r = shop.buy(body)  # same card transaction, new idempotency key
    assert r.status_code == 409 and r.json()["code"] == "replayed_certificate"
    assert shop.clerk.ok("GET", f"/cards/{shop.card['id']}/purse")["balance"] == 970


def test_hotlisted_card(shop: Shop) -> None:
    body = shop.tap(10)  # the tap happened just before the report reached the terminal
    shop.clerk.ok("POST", f"/cards/{shop.card['id']}/suspend",
                  {"kind": "lost", "reason": "reported lost"})
    hot = shop.pos.request("GET", "/pos/v1/hotlist?since=0").json()
    assert [(e["card_number"], e["action"]) for e in hot["entries"]] == [
        (shop.card["card_number"], "add")]
    again = shop.pos.request("GET", f"/pos/v1/hotlist?since={hot['version']}").json()
    assert again["entries"] == [] and again["version"] == hot["version"]
    r = shop.buy(body)
    assert r.status_code == 409 and r.json()["code"] == "card_hotlisted"
    shop.clerk.ok("POST", f"/cards/{shop.card['id']}/reinstate", {"reason": "found it"})
    delta = shop.pos.request("GET", f"/pos/v1/hotlist?since={hot['version']}").json()
    assert [e["action"] for e in delta["entries"]] == ["remove"]


def test_unknown_card_and_over_limit(shop: Shop) -> None:
    body = shop.tap(10)
    r = shop.buy(dict(body, card_number="8902100000000008"))
    assert r.status_code == 404 and r.json()["code"] == "unknown_card"
    shop.rt.settings.pos_purchase_limit = 100  # the county lowers the per-purchase limit
    r = shop.buy(shop.tap(150))
    assert r.status_code == 422 and r.json()["code"] == "amount_over_limit"


def test_refused_records_are_kept_and_a_retry_gets_the_same_answer(shop: Shop) -> None:
    body, key = dict(shop.tap(20), certificate="11" * 8), f.key()
    first, second = shop.buy(body, key), shop.buy(body, key)
    assert first.status_code == second.status_code == 422
    assert first.json()["transaction_id"] == second.json()["transaction_id"]
    with shop.rt.sessions() as db:
        rows = db.scalars(select(PosTransaction).where(PosTransaction.status == "rejected")).all()
    assert [(r.reason, r.amount) for r in rows] == [("bad_certificate", 20)]


def test_refunds_never_exceed_the_original(shop: Shop) -> None:
    sale = shop.buy(shop.tap(300)).json()
    part = shop.pos.request("POST", "/pos/v1/refunds",
                            {"original_transaction_id": sale["transaction_id"], "amount": 100},
                            idempotency_key=f.key())
    assert part.status_code == 200 and part.json()["purse_balance"] == 800
    too_much = shop.pos.request("POST", "/pos/v1/refunds",
                                {"original_transaction_id": sale["transaction_id"],
                                 "amount": 201}, idempotency_key=f.key())
    assert too_much.status_code == 422 and too_much.json()["code"] == "refund_exceeds_original"
    rest = shop.pos.request("POST", "/pos/v1/refunds",
                            {"original_transaction_id": sale["transaction_id"], "amount": 200},
                            idempotency_key=f.key())
    assert rest.json()["purse_balance"] == 1_000
    loads = shop.clerk.ok("GET", f"/cards/{shop.card['id']}/card-loads")
    assert sorted(ld["amount"] for ld in loads if ld["status"] == "pending") == [100, 200]


def test_void_only_the_last_purchase(shop: Shop) -> None:
    first = shop.buy(shop.tap(40)).json()
    second = shop.buy(shop.tap(60)).json()
    r = shop.pos.request("POST", "/pos/v1/voids", {"transaction_id": first["transaction_id"]},
                         idempotency_key=f.key())
    assert r.status_code == 409 and r.json()["code"] == "not_voidable"
    r = shop.pos.request("POST", "/pos/v1/voids", {"transaction_id": second["transaction_id"]},
                         idempotency_key=f.key())
    assert r.status_code == 200 and r.json()["status"] == "voided"
    assert r.json()["purse_balance"] == 960


class EverythingCleared:
    """A ClearingState whose windows hold every transaction (what a void finds after the
    day's window closed)."""

    def holds(self, ctx: object, transaction_id: int) -> bool:
        return True


@pytest.mark.parametrize("clearing", [NothingCleared(), EverythingCleared()],
                         ids=["open", "cleared"])
def test_a_void_asks_clearing_whether_its_window_holds_the_purchase(  # type: ignore[no-untyped-def]
        shop: Shop, clearing) -> None:
    """The POS domain asks clearing through its own interface, bound by the root: bound to a
    fake, a purchase clearing holds is refunded instead of voided."""
    shop.rt.services.bind(ClearingState, clearing)
    sale = shop.buy(shop.tap(40)).json()
    r = shop.pos.request("POST", "/pos/v1/voids", {"transaction_id": sale["transaction_id"]},
                         idempotency_key=f.key())
    if isinstance(clearing, EverythingCleared):
        assert r.status_code == 409 and r.json()["code"] == "not_voidable"
    else:
        assert r.status_code == 200 and r.json()["status"] == "voided"


# --- QR with the mobile card ------------------------------------------------------------------


@pytest.fixture
def phone(shop: Shop) -> tuple[Any, dict[str, Any]]:
    return f.mobile_card(shop.clerk, "android-test-0001", 500)


def qr_buy(shop: Shop, token: str, amount: int, key: str | None = None) -> Any:
    return shop.pos.request("POST", "/pos/v1/qr-purchases", {"token": token, "amount": amount},
                            idempotency_key=key or f.key())


def test_qr_purchase_refund_and_void(shop: Shop, phone) -> None:  # type: ignore[no-untyped-def]
    from merchants.pos.qr import make_payment_token
    key, card = phone
    r = qr_buy(shop, make_payment_token(key, card["card_number"], 30), 120)
    assert r.status_code == 200, r.text
    sale = r.json()
    assert sale["kind"] == "qr_purchase" and sale["purse_balance"] == 380
    refund = shop.pos.request("POST", "/pos/v1/refunds",
                              {"original_transaction_id": sale["transaction_id"], "amount": 20},
                              idempotency_key=f.key())
    assert refund.json()["purse_balance"] == 400
    second = qr_buy(shop, make_payment_token(key, card["card_number"], 30), 50).json()
    void = shop.pos.request("POST", "/pos/v1/voids",
                            {"transaction_id": second["transaction_id"]}, idempotency_key=f.key())
    assert void.json()["status"] == "voided" and void.json()["purse_balance"] == 400
    status = shop.pos.request("GET", f"/pos/v1/transactions/{sale['transaction_id']}").json()
    assert status["refunded"] == 20


def test_qr_token_is_single_use(shop: Shop, phone) -> None:  # type: ignore[no-untyped-def]
    from merchants.pos.qr import make_payment_token
    key, card = phone
    token = make_payment_token(key, card["card_number"], 30)
    assert qr_buy(shop, token, 10).status_code == 200
    r = qr_buy(shop, token, 10)
    assert r.status_code == 409 and r.json()["code"] == "qr_token_spent"


def test_qr_token_expires(shop: Shop, phone) -> None:  # type: ignore[no-untyped-def]
    import time

    from merchants.pos.qr import make_payment_token
    key, card = phone
    old = make_payment_token(key, card["card_number"], 30, now=time.time() - 60)
    r = qr_buy(shop, old, 10)
    assert r.status_code == 409 and r.json()["code"] == "qr_token_expired"
    too_long = make_payment_token(key, card["card_number"], 3600)
    assert qr_buy(shop, too_long, 10).json()["code"] == "qr_token_expired"


def test_qr_token_must_be_the_phones(shop: Shop, phone) -> None:  # type: ignore[no-untyped-def]
    from cryptography.hazmat.primitives.asymmetric import ec

    from merchants.pos.qr import make_payment_token
    _, card = phone
    thief = make_payment_token(ec.generate_private_key(ec.SECP256R1()), card["card_number"], 30)
    for token in (thief, "KMQR1.bm9uc2Vuc2U.AAAA", "not a token at all"):
        r = qr_buy(shop, token, 10)
        assert r.status_code == 422 and r.json()["code"] == "qr_token_invalid", r.text
    assert shop.clerk.ok("GET", f"/cards/{card['id']}/purse")["balance"] == 500


def test_qr_purchase_above_the_balance(shop: Shop, phone) -> None:  # type: ignore[no-untyped-def]
    from merchants.pos.qr import make_payment_token
    key, card = phone
    r = qr_buy(shop, make_payment_token(key, card["card_number"], 30), 501)
    assert r.status_code == 409 and r.json()["code"] == "insufficient_funds"


# --- offline batches and the shop's QR code ----------------------------------------------------


def test_offline_batch_uploaded_twice_is_stored_once(shop: Shop) -> None:
    records = [shop.tap(10), shop.tap(20)]
    body = {"batch_ref": "T1-2026-11-23-01", "records": records}
    first = shop.pos.request("POST", "/pos/v1/batches", body).json()
    again = shop.pos.request("POST", "/pos/v1/batches", body).json()
    assert first["duplicate"] is False and again["duplicate"] is True
    assert again["batch_id"] == first["batch_id"]
    with shop.rt.sessions() as db:
        rows = db.scalars(select(PosTransaction).where(
            PosTransaction.kind == "offline_purchase")).all()
    assert sorted(r.amount for r in rows) == [10, 20]
    other = shop.pos.request("POST", "/pos/v1/batches",
                             {"batch_ref": "T1-2026-11-23-01", "records": [shop.tap(5)]})
    assert other.status_code == 409 and other.json()["code"] == "batch_conflict"


def test_merchant_static_qr(shop: Shop) -> None:
    from merchants.registry.qr import merchant_qr_payload
    mid = shop.terminal["merchant_id"]
    png = shop.clerk.req("GET", f"/merchants/{mid}/qr.png", location="金城鎮民生路 1 號")
    assert png.status_code == 200 and png.headers["content-type"] == "image/png"
    assert png.content.startswith(b"\x89PNG\r\n\x1a\n")
    svg = shop.clerk.req("GET", f"/merchants/{mid}/qr.svg")
    assert svg.headers["content-type"].startswith("image/svg+xml") and b"<svg" in svg.content
    assert merchant_qr_payload(mid, 3, "金城鎮").startswith(f"kinmencard://merchant/{mid}/terminal/3?loc=")


@pytest.mark.parametrize("location", ["0" * 150, "0" * 200, "1234567890" * 20, "A" * 200,
                                      "金" * 200, "%" * 200, "0" * 99 + "金" + "0" * 100])
def test_merchant_static_qr_for_any_location_text(shop: Shop, location: str) -> None:
    mid = shop.terminal["merchant_id"]
    for fmt in ("png", "svg"):
        r = shop.clerk.req("GET", f"/merchants/{mid}/qr.{fmt}", location=location,
                           terminal_id=2**62)
        assert r.status_code == 200, r.text
        assert r.content.startswith(b"\x89PNG" if fmt == "png" else b"<?xml")


def test_a_location_too_long_for_a_qr_code_is_refused_clearly(shop: Shop) -> None:
    mid = shop.terminal["merchant_id"]
    r = shop.clerk.req("GET", f"/merchants/{mid}/qr.png", location="\U00020000" * 200)
    assert r.status_code == 422 and r.json()["field"] == "location"
    ok = shop.clerk.req("GET", f"/merchants/{mid}/qr.png", location="\U00020000" * 150)
    assert ok.status_code == 200


def test_pos_simulator_online_offline_and_hotlist(shop: Shop, tmp_path: Path) -> None:
    from simulators.pos import SimulatedPos, TerminalRefusal
    with unit_of_work(shop.rt.sessions) as db:
        masters = KeyStore(db, shop.rt.keys.secrets.kek,
                           shop.rt.keys.secrets.system_id).masters(KeyPurpose.DEBIT)
    pos = SimulatedPos(shop.pos, shop.terminal["id"], masters, shop.rt.keys.secrets.system_id,
                       state_file=tmp_path / "pos.json")

    def reader() -> InProcessReader:
        uid = shop.card["chip_uid"]
        return InProcessReader(VirtualCard(bytes.fromhex(uid), shop.cards_dir / f"{uid}.json"))

    first = pos.tap(reader(), 100)
    assert first.status == "accepted", first.response
    assert pos.tap(reader(), 30, online=False).status == "stored"
    assert pos.tap(reader(), 40, online=False).status == "stored"
    batch = pos.upload_offline()
    assert batch is not None and batch["records"] == 2 and not batch["duplicate"]
    with pytest.raises(TerminalRefusal) as over:
        pos.tap(reader(), 1_001)
    assert over.value.code == "amount_over_limit"
    shop.clerk.ok("POST", f"/cards/{shop.card['id']}/suspend", {"kind": "lost",
                                                                 "reason": "lost"})
    assert pos.refresh_hotlist() == 1
    with pytest.raises(TerminalRefusal) as hot:
        pos.tap(reader(), 10)
    assert hot.value.code == "card_hotlisted"
    # The state survives a restart of the terminal.
    again = SimulatedPos(shop.pos, shop.terminal["id"], masters, shop.rt.keys.secrets.system_id,
                         state_file=tmp_path / "pos.json")
    assert again.seq == pos.seq and shop.card["card_number"] in again.hotlist


def test_the_simulated_pos_issues_an_invoice_for_every_purchase(shop: Shop,
                                                                tmp_path: Path) -> None:
    """A terminal with an invoice book puts an invoice onto the card for each purchase: on its
    own request online, inside the record offline; the numbers run on across a restart and
    the book's end is a refusal before the card is touched."""
    from simulators.pos import InvoiceBook, SimulatedPos, TerminalRefusal
    with unit_of_work(shop.rt.sessions) as db:
        masters = KeyStore(db, shop.rt.keys.secrets.kek,
                           shop.rt.keys.secrets.system_id).masters(KeyPurpose.DEBIT)
    book = InvoiceBook("10458575", "KM", 20_000_001, 20_000_003)

    def terminal() -> SimulatedPos:
        return SimulatedPos(shop.pos, shop.terminal["id"], masters,
                            shop.rt.keys.secrets.system_id, state_file=tmp_path / "pos.json",
                            invoice_book=book)

    def reader() -> InProcessReader:
        uid = shop.card["chip_uid"]
        return InProcessReader(VirtualCard(bytes.fromhex(uid), shop.cards_dir / f"{uid}.json"))

    pos = terminal()
    online = pos.tap(reader(), 120)
    assert online.status == "accepted" and online.invoice is not None
    assert online.invoice_response is not None
    assert online.invoice_response["number"] == "KM20000001", online.invoice_response
    offline = terminal().tap(reader(), 45, online=False)  # a restarted terminal
    assert offline.record is not None and offline.record["invoice"]["invoice_number"] \
        == "KM20000002"
    batch = terminal().upload_offline()
    assert batch is not None and batch["records"] == 1 and batch["invoices"] == 1, batch
    # The network fails as the third invoice is reported: the sale stands, the invoice is
    # kept and goes with the next purchase.
    flaky = terminal()
    real = flaky.client
    down = {"once": True}

    class Cut:
        def request(self, method: str, path: str, *args: Any, **kwargs: Any) -> Any:
            if path == "/pos/v1/invoices" and down.pop("once", False):
                raise httpx.ConnectError("the shop's line is down")
            return real.request(method, path, *args, **kwargs)

    flaky.client = Cut()  # type: ignore[assignment]
    third = flaky.tap(reader(), 10)
    assert third.status == "accepted" and third.invoice is not None
    assert third.invoice_response is None and terminal().unreported
    assert third.invoice["invoice_date"] == dt.datetime.fromtimestamp(
        third.record["time"], TAIPEI).date().isoformat()  # type: ignore[index]
    balance = shop.clerk.ok("GET", f"/cards/{shop.card['id']}/purse")["balance"]
    with pytest.raises(TerminalRefusal) as used_up:
        terminal().tap(reader(), 10)
    assert used_up.value.code == "invoice_book_used_up"
    assert shop.clerk.ok("GET", f"/cardholders/{shop.card['cardholder_id']}/invoices"
                         )["invoices"].__len__() == 2  # the third still waits
    assert terminal().upload_offline() is None  # nothing offline; the invoice goes now
    assert not terminal().unreported
    assert shop.clerk.ok("GET", f"/cards/{shop.card['id']}/purse")["balance"] == balance
    mine = shop.clerk.ok("GET", f"/cardholders/{shop.card['cardholder_id']}/invoices")
    assert sorted((i["number"], i["amount"]) for i in mine["invoices"]) == [
        ("KM20000001", 120), ("KM20000002", 45), ("KM20000003", 10)]
    # The next period's book starts at its own first number.
    book = InvoiceBook("10458575", "KN", 5, 9)
    assert terminal().tap(reader(), 10).invoice["invoice_number"] == "KN00000005"  # type: ignore[index]
    with pytest.raises(ValueError):
        InvoiceBook("1045857", "KM", 1, 2)


def test_malformed_or_mistyped_purchase_bodies(shop: Shop) -> None:
    """The purchase route reads its own body: the same problem codes as every other route."""
    raw = b'{"card_number": "12'
    headers = shop.pos.signed_headers("POST", "/pos/v1/purchases", raw, idempotency_key=f.key())
    r = shop.client.post("/pos/v1/purchases", content=raw, headers=headers)
    assert r.status_code == 400 and r.json()["code"] == "malformed_json", r.text
    r = shop.buy(dict(shop.tap(10), amount="10"))
    assert r.status_code == 422 and r.json()["code"] == "invalid_input", r.text
    assert ["body", "amount"] in [e["loc"] for e in r.json()["errors"]]
    r = shop.buy(dict(shop.tap(10), extra=1))
    assert r.status_code == 422 and ["body", "extra"] in [e["loc"] for e in r.json()["errors"]]
    missing = shop.pos.request("POST", "/pos/v1/purchases", shop.tap(10))  # no key
    assert missing.status_code == 422 and missing.json()["code"] == "invalid_input"
    # Who is asking comes first: a malformed body with a bad signature is refused as such.
    headers = shop.pos.signed_headers("POST", "/pos/v1/purchases", b"{}",
                                      idempotency_key=f.key())
    for bad in (raw, b"{}"):
        r = shop.client.post("/pos/v1/purchases", content=bad,
                             headers={**headers, "X-Signature": "A" * 43})
        assert r.status_code == 401 and r.json()["code"] == "bad_signature", r.text
    assert shop.clerk.ok("GET", f"/cards/{shop.card['id']}/purse")["balance"] == 1_000
