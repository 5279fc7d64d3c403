"""Water bills: import, look-up by account and by slip barcodes, payment once, receipts,
cash at a convenience store."""

from __future__ import annotations

import base64
import datetime as dt
import hashlib
import hmac
import json
import secrets
from collections.abc import Iterator
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from cardsvc.app.bootstrap import build_runtime
from cardsvc.app.http import create_app
from cardsvc.context import TAIPEI
from cardsvc.runtime import Runtime
from cardsvc.security import signing
from cardsvc.security.secrets import Secrets, write_secrets
from merchants.pos.client import PosClient
from settlement.bills import barcodes
from settlement.bills.service import FORGED, ReceiptRefused, open_receipt
from tests.support import factories as f
from tests.support.api import PASSWORD, Api
from tests.support.worlds import bills_csv, water_biller


@dataclass
class Plant:
    clerk: Api
    client: TestClient
    biller: dict[str, Any]
    store: PosClient


@pytest.fixture
def plant(runtime_factory) -> Iterator[Plant]:  # type: ignore[no-untyped-def]
    rt = runtime_factory()
    with TestClient(create_app(rt)) as client:
        token = client.post("/auth/login", json={"username": "t.clerk",
                                                 "password": PASSWORD}).json()["access_token"]
        clerk = Api(client, token)
        biller = water_biller(clerk)
        store = clerk.ok("POST", "/merchants", {
            "legal_name": "金城便利商店", "tax_id": "04595252", "category": "retail",
            "fee_bps": 0, "bank_account": "812-00011122233"}, status=201)
        t = clerk.ok("POST", f"/merchants/{store['id']}/terminals", {"label": "till"},
                     status=201)
        yield Plant(clerk, client, biller, PosClient(client, t["key_id"], t["secret"]))


def today() -> dt.date:
    return dt.datetime.now(TAIPEI).date()


def import_file(plant: Plant, content: bytes) -> Any:
    return plant.client.post(f"/billers/{plant.biller['id']}/bills/import", content=content,
                             headers={**plant.clerk.headers, "Content-Type": "text/csv"})


DUE = (dt.datetime.now(TAIPEI).date() + dt.timedelta(days=20)).isoformat()
GOOD = bills_csv(("A1234567", "WB00012345678901", "1511", "350", DUE, "陳志明"),
                 ("A1234567", "WB00012345678902", "1510", "420", DUE, "陳志明"),
                 ("B7654321", "WB00012345678903", "1511", "880", DUE, "林一"))


def test_import_and_look_up(plant: Plant) -> None:
    r = import_file(plant, GOOD)
    assert r.status_code == 200, r.text
    assert r.json() | {"import_id": 0} == {"import_id": 0, "rows": 3, "amount": 1650,
                                           "duplicate": False}
    again = import_file(plant, GOOD).json()
    assert again["duplicate"] and again["rows"] == 3  # the same file: nothing changes
    found = plant.clerk.ok("GET", "/bills", account_number="A1234567")
    assert sorted(b["amount"] for b in found) == [350, 420]
    assert {b["payer_name_masked"] for b in found} == {"陳○明"}
    bill = found[0]
    s1, s2, s3 = bill["barcodes"]
    # The slip's segments follow the rules: deadline + collection code, bill number, period +
    # check characters + amount; and they parse back to the bill.
    slip = barcodes.parse(s1, s2, s3)
    assert (slip.collection_code, slip.amount, slip.bill_number) == ("KW1", bill["amount"], s2)
    assert s3[4:6] == barcodes.check_code(s1, s2, s3)
    assert plant.clerk.ok("POST", "/bills/lookup", {"segment1": s1, "segment2": s2,
                                                    "segment3": s3})["id"] == bill["id"]
    svg = plant.clerk.req("GET", f"/bills/{bill['id']}/barcode-2.svg")
    assert svg.status_code == 200 and b"<svg" in svg.content


def test_a_bad_file_is_refused_by_line_and_nothing_is_imported(plant: Plant) -> None:
    bad = bills_csv(("A1234567", "WB00012345678901", "1511", "350", DUE, "陳志明"),
                    ("A1", "WB00012345678902", "1513", "-5", "2026-02-30", ""),
                    ("B7654321", "WB00012345678901", "1511", "880", DUE, "林一"))
    r = import_file(plant, bad)
    assert r.status_code == 422 and r.json()["code"] == "bill_import_refused"
    errors = {(e["line"], e["field"]) for e in r.json()["errors"]}
    assert errors == {(3, "account_number"), (3, "period"), (3, "amount"), (3, "due_date"),
                      (3, "payer_name"), (4, "bill_number")}
    assert plant.clerk.ok("GET", "/bills", account_number="A1234567") == []
    r = import_file(plant, b"number,amount\n1,2\n")
    assert r.status_code == 422 and r.json()["errors"][0]["message"] == "missing column"
    # A lone carriage return is a line break, not a server error; a field past the CSV
    # reader's size limit is a refusal naming its line.
    r = import_file(plant, b"account_number,bill_number\r\xc2\x91,period\n")
    assert r.status_code == 422 and r.json()["code"] == "bill_import_refused", r.text
    r = import_file(plant, GOOD.splitlines(keepends=True)[0] + b"A" * 200_000 + b"\n")
    assert r.status_code == 422 and r.json()["code"] == "bill_import_refused", r.text
    assert r.json()["errors"][0]["line"] == 2 and "field" in r.json()["errors"][0]["message"]
    from settlement.bills.reconcile import ConfirmationRefused, _parse
    with pytest.raises(ConfirmationRefused):
        _parse(b"bill_number,amount\n" + b"W" * 200_000 + b",1\n")


@pytest.mark.parametrize(("change", "segment"), [
    (lambda s: (s[0][:-1] + "2", s[1], s[2]), 1),  # another collection code
    (lambda s: (s[0], s[1][:-1] + "9", s[2]), 2),  # a bill number mistyped
    (lambda s: (s[0], s[1], s[2][:6] + "000000999"), 3),  # the amount altered
    (lambda s: (s[0][:5], s[1], s[2]), 1),  # a character missing
])
def test_an_altered_slip_names_its_segment(plant: Plant, change: Any, segment: int) -> None:
    import_file(plant, GOOD)
    bill = plant.clerk.ok("GET", "/bills", account_number="B7654321")[0]
    s1, s2, s3 = change(bill["barcodes"])
    r = plant.clerk.req("POST", "/bills/lookup", {"segment1": s1, "segment2": s2,
                                                  "segment3": s3})
    assert r.status_code == 422 and r.json()["code"] == "bad_barcode", r.text
    assert r.json()["segment"] == segment, r.json()


def test_pay_once_with_a_receipt_anyone_can_check(plant: Plant) -> None:
    import_file(plant, GOOD)
    bill = plant.clerk.ok("GET", "/bills", account_number="B7654321")[0]
    _, card = f.mobile_card(plant.clerk, "android-bills-0001", 1_000)
    partial = plant.clerk.req("POST", f"/bills/{bill['id']}/payments",
                              {"card_id": card["id"], "amount": 500}, key=f.key())
    assert partial.status_code == 422 and partial.json()["code"] == "partial_payment"
    paid = plant.clerk.ok("POST", f"/bills/{bill['id']}/payments", {"card_id": card["id"]},
                          key=f.key())
    assert paid["amount"] == 880 and paid["purse_balance"] == 120
    again = plant.clerk.req("POST", f"/bills/{bill['id']}/payments", {"card_id": card["id"]},
                            key=f.key())
    assert again.status_code == 409 and again.json()["code"] == "bill_already_paid"
    assert plant.clerk.ok("GET", f"/bills/{bill['id']}")["status"] == "paid"
    # The receipt: valid as issued; altered or forged, it fails.
    ok = plant.client.get("/receipts/verify", params={"receipt": paid["receipt"]}).json()
    assert ok["valid"] and ok["amount"] == 880 and ok["biller"] == "金門縣自來水廠"
    prefix, kid, payload, signature = paid["receipt"].split(".")
    assert prefix == "KMRC2" and kid == "s1"
    body = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
    body["a"] = 88
    forged = base64.urlsafe_b64encode(json.dumps(body).encode()).rstrip(b"=").decode()
    for token, reason in ((f"{prefix}.{kid}.{forged}.{signature}", FORGED),
                          (f"{prefix}.{kid}.{payload}.{signature[:-2]}AA", FORGED),
                          (f"{prefix}.s9.{payload}.{signature}", FORGED),
                          ("hello", "not a receipt")):
        check = plant.client.get("/receipts/verify", params={"receipt": token}).json()
        assert check["valid"] is False and check["reason"] == reason, token
    png = plant.clerk.req("GET", f"/bills/{bill['id']}/receipt.png")
    assert png.content.startswith(b"\x89PNG")


def test_cash_at_a_convenience_store_and_the_grace_period(plant: Plant,
                                                          runtime_factory: Any) -> None:
    overdue = (today() - dt.timedelta(days=5)).isoformat()
    too_late = (today() - dt.timedelta(days=11)).isoformat()
    import_file(plant, bills_csv(
        ("C1111111", "WB00000000000011", "1510", "300", overdue, "王小華"),
        ("C1111111", "WB00000000000012", "1509", "310", too_late, "王小華")))
    late, expired = sorted(plant.clerk.ok("GET", "/bills", account_number="C1111111"),
                           key=lambda b: b["bill_number"])
    s1, s2, s3 = late["barcodes"]
    body = {"segment1": s1, "segment2": s2, "segment3": s3, "amount": 300}
    r = plant.store.request("POST", "/pos/v1/bill-collections", body, idempotency_key=f.key())
    assert r.status_code == 200, r.text  # five days late, within the ten days of grace
    assert r.json()["channel"] == "store_cash"
    again = plant.store.request("POST", "/pos/v1/bill-collections", body,
                                idempotency_key=f.key())
    assert again.status_code == 409 and again.json()["code"] == "bill_already_paid"
    e1, e2, e3 = expired["barcodes"]
    r = plant.store.request("POST", "/pos/v1/bill-collections",
                            {"segment1": e1, "segment2": e2, "segment3": e3, "amount": 310},
                            idempotency_key=f.key())
    assert r.status_code == 409 and r.json()["code"] == "bill_overdue"


def test_two_concurrent_payments_cannot_both_succeed(plant: Plant, runtime_factory: Any) -> None:
    import threading

    from cardsvc.context import Actor, Ctx
    from cardsvc.db import unit_of_work
    from cardsvc.errors import DomainError
    from settlement.bills import service as bills
    import_file(plant, GOOD)
    bill = plant.clerk.ok("GET", "/bills", account_number="B7654321")[0]
    cards = []
    for i in range(2):
        cards.append(f.mobile_card(plant.clerk, f"android-race-{i:04d}", 1_000)[1])
    rt = runtime_factory()
    barrier = threading.Barrier(2)
    outcomes: list[str] = []

    def pay(card_id: int) -> None:
        barrier.wait()
        try:
            with unit_of_work(rt.sessions) as db:
                bills.pay_from_purse(Ctx(db, rt.settings, rt.keys, Actor.system("t")),
                                     bill["id"], card_id, "counter")
            outcomes.append("paid")
        except DomainError as exc:
            outcomes.append(exc.code)

    threads = [threading.Thread(target=pay, args=(c["id"],)) for c in cards]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(outcomes) == ["bill_already_paid", "paid"]
    balances = sorted(plant.clerk.ok("GET", f"/cards/{c['id']}/purse")["balance"]
                      for c in cards)
    assert balances == [120, 1_000]  # exactly one purse paid the NT$880


def test_bad_text_is_refused_not_a_crash(plant: Plant) -> None:
    r = import_file(plant, bills_csv(("A1234567", "WB00012345678901", "1511", "²", DUE,
                                      "陳志明")))
    assert r.status_code == 422 and r.json()["errors"][0]["field"] == "amount"
    for receipt in ("KMRC1.abc.éé", "KMRC1." + "a" * 500 + ".b", "..", ""):
        check = plant.client.get("/receipts/verify", params={"receipt": receipt})
        assert check.status_code in (200, 422) and check.json().get("valid") in (False, None)


def test_a_resident_pays_online_with_the_phone_signed_token(plant: Plant) -> None:
    """No login: the mobile card's payment token authorises the debit, once, while fresh."""
    import time

    from cryptography.hazmat.primitives.asymmetric import ec

    from merchants.pos.qr import make_payment_token
    import_file(plant, GOOD)
    water = {b["amount"]: b for acct in ("A1234567", "B7654321")
             for b in plant.clerk.ok("GET", "/bills", account_number=acct)}
    key, card = f.mobile_card(plant.clerk, "android-bills-0002", 2_000)

    def pay(bill: dict[str, Any], token: str, idem: str | None = None) -> Any:
        return plant.client.post(f"/bills/{bill['id']}/pay-online", json={"token": token},
                                 headers={"Idempotency-Key": idem or f.key()})

    def balance() -> int:
        return int(plant.clerk.ok("GET", f"/cards/{card['id']}/purse")["balance"])

    thief = make_payment_token(ec.generate_private_key(ec.SECP256R1()), card["card_number"], 30)
    for bad in (thief, "hello", make_payment_token(key, "8902000000000000", 30)):
        r = pay(water[880], bad)
        assert r.status_code == 422 and r.json()["code"] == "qr_token_invalid", r.text
    stale = make_payment_token(key, card["card_number"], 30, now=time.time() - 60)
    r = pay(water[880], stale)
    assert r.status_code == 409 and r.json()["code"] == "qr_token_expired", r.text
    assert balance() == 2_000

    token, idem = make_payment_token(key, card["card_number"], 30), f.key()
    paid = pay(water[880], token, idem)
    assert paid.status_code == 200, paid.text
    assert (paid.json()["amount"], paid.json()["channel"], paid.json()["purse_balance"]) == \
        (880, "online", 1_120)
    again = pay(water[880], token, idem)  # a retry: the stored answer, charged once
    assert again.headers["Idempotent-Replayed"] == "true" and again.json() == paid.json()
    spent = pay(water[350], token)
    assert spent.status_code == 409 and spent.json()["code"] == "qr_token_spent", spent.text
    # A bill that cannot be paid leaves the token unspent: it pays another bill.
    fresh = make_payment_token(key, card["card_number"], 30)
    r = pay(water[880], fresh)
    assert r.status_code == 409 and r.json()["code"] == "bill_already_paid", r.text
    assert pay(water[420], fresh).status_code == 200
    assert balance() == 1_120 - 420
    assert plant.clerk.ok("GET", f"/bills/{water[350]['id']}")["status"] == "unpaid"


def _with_secrets(rt: Runtime, value: Secrets, path: Path) -> Runtime:
    """The same database under another secrets file (a key rotated)."""
    write_secrets(path, value)
    return build_runtime(rt.settings.model_copy(update={"secrets_file": path}))


def _verify(rt: Runtime, receipt: str) -> dict[str, Any]:
    """What anyone who scans the receipt is told (no login)."""
    with TestClient(create_app(rt)) as client:
        out: dict[str, Any] = client.get("/receipts/verify", params={"receipt": receipt}).json()
    return out


def _legacy(token_key: bytes, receipt: str) -> str:
    """The same payment's receipt as issued before key ids (KMRC1, HMAC under the token key)."""
    payload = receipt.split(".")[2]
    key = hmac.new(token_key, b"cardsvc bill receipt v1", hashlib.sha256).digest()
    mac = hmac.new(key, f"KMRC1.{payload}".encode(), hashlib.sha256).digest()[:16]
    return f"KMRC1.{payload}.{base64.urlsafe_b64encode(mac).rstrip(b'=').decode()}"


def test_receipts_stay_verifiable_when_keys_rotate(plant: Plant, runtime_factory: Any,
                                                   tmp_path: Path) -> None:
    import_file(plant, GOOD)
    first, second = plant.clerk.ok("GET", "/bills", account_number="A1234567")
    _, card = f.mobile_card(plant.clerk, "android-receipts-01", 1_000)
    old = plant.clerk.ok("POST", f"/bills/{first['id']}/payments", {"card_id": card["id"]},
                         key=f.key())["receipt"]
    rt = runtime_factory()
    legacy = _legacy(rt.keys.secrets.token_key, old)
    assert _verify(rt, legacy)["valid"]  # the old format, while the token key is unchanged

    # The signing key rotated (`cardsvc keys new-signing-key`): new receipts name the new key,
    # the old ones still verify.
    rotated = rt.keys.secrets.with_new_signing_key()
    rt2 = _with_secrets(rt, rotated, tmp_path / "rotated.json")
    with TestClient(create_app(rt2)) as client:
        clerk = Api(client, plant.clerk.headers["Authorization"].split()[1])
        new = clerk.ok("POST", f"/bills/{second['id']}/payments", {"card_id": card["id"]},
                       key=f.key())["receipt"]
    assert (old.split(".")[1], new.split(".")[1]) == ("s1", "s2")
    for receipt, bill in ((old, first), (new, second), (legacy, first)):
        check = _verify(rt2, receipt)
        assert check["valid"] and check["amount"] == bill["amount"], receipt

    # The staff token key rotated: the receipts signed with the signing keys do not care; the
    # old format ends with the key it was derived from.
    rt3 = _with_secrets(rt, replace(rotated, token_key=secrets.token_bytes(32)),
                        tmp_path / "new-token-key.json")
    assert _verify(rt3, old)["valid"] and _verify(rt3, new)["valid"]
    assert _verify(rt3, legacy) == {"valid": False, "reason": FORGED, "bill_number": None,
                                    "amount": None, "paid_at": None, "biller": None}

    # The water company's check, with the public keys alone: what the receipt says, if the key
    # it names signed it.
    public = signing.public_keys(rotated)
    said = open_receipt(old, public)
    assert (said.bill_number, said.amount) == (first["bill_number"], first["amount"])
    with pytest.raises(ReceiptRefused) as refused:
        open_receipt(old, {"s2": public["s2"]})  # a key it does not know
    assert refused.value.reason == FORGED
    stranger = Secrets.generate()  # someone else's key, with the same key id
    signed = old.rsplit(".", 1)[0]
    _, sig = signing.sign(stranger, signed.encode())
    forged = f"{signed}.{base64.urlsafe_b64encode(base64.b64decode(sig)).rstrip(b'=').decode()}"
    assert _verify(rt3, forged)["reason"] == FORGED
    rt2.close()
    rt3.close()


def test_a_receipt_fits_a_readily_scanned_qr_code(plant: Plant) -> None:
    """The receipt's QR code is a phone's easy read: version 10 (57 modules a side) at most,
    for a payment id, bill number and amount far larger than the county's."""
    import qrcode

    import_file(plant, GOOD)
    bill = plant.clerk.ok("GET", "/bills", account_number="B7654321")[0]
    _, card = f.mobile_card(plant.clerk, "android-receipts-02", 1_000)
    receipt = plant.clerk.ok("POST", f"/bills/{bill['id']}/payments", {"card_id": card["id"]},
                             key=f.key())["receipt"]
    prefix, _, payload, signature = receipt.split(".")
    body = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
    body.update(p=99_999_999, a=99_999)
    payload = base64.urlsafe_b64encode(json.dumps(body, separators=(",", ":")).encode()
                                       ).rstrip(b"=").decode()
    code = qrcode.QRCode()
    code.add_data(f"kinmencard://receipt/{prefix}.s99.{payload}.{signature}", optimize=0)
    code.make(fit=True)
    assert code.version <= 10, code.version
