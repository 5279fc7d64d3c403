"""The card as an e-invoice carrier: terminals report invoices for their purchases (each bad
report refused with its code), 歸戶 to a mobile barcode, a period's draw and cloud list, the
set-based check with planted winners of every kind, notices once per win, the resident's
view, paper invoices and the report."""

from __future__ import annotations

import datetime as dt
import json
from typing import Any

import pytest

from cardsvc.context import TAIPEI, Actor
from cardsvc.db import unit_of_work
from cardsvc.einvoice import rules
from cardsvc.einvoice.platform import CarrierPlatform, FakePlatform
from cardsvc.einvoice.service import sign_binding, sign_read
from cardsvc.notify.service import FakeSender, deliver
from tests.support import factories as f
from tests.support.api import Api
from tests.support.einvoice import winning_list
from tests.support.worlds import Shop

SELLER = "10458575"  # the shop's 統一編號 (tests/support/worlds.py)


def today() -> dt.date:
    return dt.datetime.now(TAIPEI).date()


def bought(shop: Shop, amount: int) -> dict[str, Any]:
    out: dict[str, Any] = shop.buy(shop.tap(amount)).json()
    assert out["status"] == "accepted", out
    return out


def report(shop: Shop, purchase: dict[str, Any], number: str, **over: Any) -> Any:
    body = {"transaction_id": purchase["transaction_id"], "invoice_number": number,
            "invoice_date": today().isoformat(), "random_code": "1234",
            "amount": purchase["amount"], "seller_tax_id": SELLER, **over}
    return shop.pos.request("POST", "/pos/v1/invoices", body, idempotency_key=f.key())


def issued(shop: Shop, number: str, amount: int = 10, **over: Any) -> dict[str, Any]:
    r = report(shop, bought(shop, amount), number, **over)
    assert r.status_code == 200, r.text
    out: dict[str, Any] = r.json()
    return out


def test_each_bad_invoice_report_is_refused_with_its_code(shop: Shop) -> None:
    sale = bought(shop, 30)
    cases = [
        ({"invoice_number": "ab12345678"}, 422, "invalid_input"),
        ({"seller_tax_id": "04595252"}, 422, "invoice_seller_mismatch"),
        ({"amount": 31}, 422, "invoice_amount_mismatch"),
        ({"invoice_date": (today() - dt.timedelta(days=70)).isoformat()}, 422,
         "invoice_period_mismatch"),
        ({"transaction_id": 999_999}, 404, "invoice_unknown_purchase"),
        ({"buyer_tax_id": "04595252", "donation_code": "8585"}, 422, "invoice_invalid"),
    ]
    for over, status, code in cases:
        r = report(shop, sale, "AB00000001", **over)
        assert r.status_code == status and r.json()["code"] == code, (over, r.text)
    assert report(shop, sale, "AB00000001").status_code == 200
    again = report(shop, bought(shop, 30), "AB00000001")
    assert again.status_code == 409 and again.json()["code"] == "invoice_number_used"
    # A retry with the same key is the same answer, not a second invoice.
    body = {"transaction_id": bought(shop, 5)["transaction_id"], "invoice_number": "AB00000002",
            "invoice_date": today().isoformat(), "random_code": "1234", "amount": 5,
            "seller_tax_id": SELLER}
    key = f.key()
    first = shop.pos.request("POST", "/pos/v1/invoices", body, idempotency_key=key)
    second = shop.pos.request("POST", "/pos/v1/invoices", body, idempotency_key=key)
    assert first.json() == second.json() and second.headers["Idempotent-Replayed"] == "true"


def test_binding_to_a_mobile_barcode(shop: Shop) -> None:
    card = shop.card
    bad = shop.clerk.post(f"/cards/{card['id']}/carrier/binding", {"mobile_barcode": "/abc"})
    assert bad.status_code == 422
    out = shop.clerk.ok("POST", f"/cards/{card['id']}/carrier/binding",
                        {"mobile_barcode": "/ABC+123"})
    assert out["carrier"] == card["card_number"] and out["unbound_at"] is None
    other = shop.clerk.post(f"/cards/{card['id']}/carrier/binding",
                            {"mobile_barcode": "/XYZ.789"})
    assert other.status_code == 409 and other.json()["code"] == "carrier_already_bound"
    done = shop.clerk.ok("POST", f"/cards/{card['id']}/carrier/unbind")
    assert done["unbound_at"] is not None
    assert shop.clerk.post(f"/cards/{card['id']}/carrier/unbind").status_code == 404


def draw_file(period: int, **over: str) -> bytes:
    return json.dumps(winning_list(period, **over)).encode()


def post_raw(api: Api, path: str, content: bytes, media: str) -> Any:
    return api.client.post(path, content=content,
                           headers={**api.headers, "Content-Type": media})


@pytest.fixture
def supervisor_of(shop: Shop, tokens: dict[str, str]) -> Api:
    return Api(shop.client, tokens["supervisor"])


def test_the_check_finds_every_planted_winner_once(shop: Shop, supervisor_of: Api) -> None:
    period = rules.period_of(today())
    planted = {  # number -> what it should win
        "XA12345678": ("special", 10_000_000), "XB87654321": ("grand", 2_000_000),
        "XC00507588": ("first", 200_000), "XD10507588": ("second", 40_000),
        "XE11507588": ("third", 10_000), "XF11107588": ("fourth", 4_000),
        "XG11117588": ("fifth", 1_000), "XH11111588": ("sixth", 200),
        "XI22222765": ("sixth", 200),  # the extra sixth prize
        "XJ99992336": ("fifth", 1_000),
        "XK33333333": ("cloud", 2_000),  # on the cloud list only
        "XL40912336": ("first", 200_000),  # on the cloud list too: one prize, the larger
    }
    for number in planted:
        issued(shop, number)
    issued(shop, "YA12345678", donation_code="8585")  # wins for the charity
    voided = issued(shop, "YB87654321")
    issued(shop, "YC00507588", buyer_tax_id="04595252")  # a business buyer never wins
    zero = issued(shop, "YD40912336", amount=7)
    issued(shop, "YE91286147", after_the_fact=True)
    issued(shop, "YF55555555")  # wins nothing
    pos = shop.pos
    assert pos.request("POST", "/pos/v1/invoices/void", {
        "invoice_number": voided["number"], "invoice_date": today().isoformat(),
        "reason": "wrong item"}, idempotency_key=f.key()).status_code == 200
    assert pos.request("POST", "/pos/v1/invoices/allowances", {
        "invoice_number": zero["number"], "invoice_date": today().isoformat(), "amount": 7,
        "reason": "returned"}, idempotency_key=f.key()).status_code == 200

    sup = supervisor_of
    assert post_raw(sup, "/einvoice/draws", draw_file(period),
                    "application/json").status_code == 201
    cloud = "invoice_number,amount\nXK33333333,2000\nXL40912336,800\n"
    assert post_raw(sup, f"/einvoice/periods/{period}/cloud-prizes", cloud.encode(),
                    "text/csv").json()["prizes"] == 2
    out = sup.ok("POST", f"/einvoice/periods/{period}/check")
    assert out["invoices"] == len(planted) + 6
    assert out["exclusions"] == {"voided": 1, "not_positive": 1, "business_buyer": 1,
                                 "after_the_fact": 1}
    assert out["winners"] == len(planted) + 1  # and the charity's
    assert out["notified"] == len(planted)  # the donated win is not the resident's to hear of

    mine = sup.ok("GET", f"/cardholders/{shop.card['cardholder_id']}/invoices")
    won = {w["invoice_number"]: (w["tier"], w["amount"]) for w in mine["winnings"]}
    assert {k: v for k, v in won.items() if not k.endswith("***")} == planted
    assert won["YA12345***"] == ("special", 10_000_000)  # the charity's, masked
    special = next(w for w in mine["winnings"] if w["invoice_number"] == "XA12345678")
    assert (special["income_tax"], special["stamp_duty"]) == (2_000_000, 40_000)
    assert (special["claim_from"], special["claim_until"]) == tuple(
        d.isoformat() for d in rules.claim_window(period))

    # Checking again changes nothing, and nobody hears twice.
    again = sup.ok("POST", f"/einvoice/periods/{period}/check")
    assert again["winners"] == out["winners"] and again["notified"] == 0
    assert sup.ok("GET", f"/cardholders/{shop.card['cardholder_id']}/invoices")["winnings"] \
        == mine["winnings"]

    # A corrected draw replaces the old one and checks the period again.
    assert post_raw(sup, "/einvoice/draws", draw_file(period, superPrizeNo="55555555"),
                    "application/json").status_code == 201
    corrected = sup.ok("GET", f"/cardholders/{shop.card['cardholder_id']}/invoices")
    tiers = {w["invoice_number"]: w["tier"] for w in corrected["winnings"]}
    assert tiers["YF55555555"] == "special" and "XA12345678" not in tiers

    report_ = sup.ok("GET", f"/einvoice/periods/{period}/report")
    assert report_["label"] == rules.period_label(period)
    assert {t["tier"]: t["winners"] for t in report_["tiers"]}["first"] == 2
    csv_text = sup.client.get(f"/einvoice/periods/{period}/report", params={"format": "csv"},
                              headers=sup.headers).text
    assert "excluded:voided" in csv_text


def test_tallies_agree_with_the_invoices(shop: Shop, supervisor_of: Api) -> None:
    """What a check reports it went through comes from the tallies the triggers keep: they
    agree with counting every invoice by the check's own rule, after reports, a void, an
    allowance, a bulk load and a removal, and the nightly fold leaves nothing pending."""
    from sqlalchemy import func, select, text

    from cardsvc.app.worker import make_app
    from cardsvc.einvoice import check, tasks
    from cardsvc.einvoice.models import InvoiceTallyChange
    from cardsvc.runtime import use_process_runtime

    period = rules.period_of(today())
    first = issued(shop, "TA00000001")
    issued(shop, "TA00000002", buyer_tax_id="04595252")
    issued(shop, "TA00000003", after_the_fact=True)
    issued(shop, "TA00000004", amount=7)
    issued(shop, "TA00000006")
    pos = shop.pos
    assert pos.request("POST", "/pos/v1/invoices/void", {
        "invoice_number": first["number"], "invoice_date": today().isoformat(),
        "reason": "wrong item"}, idempotency_key=f.key()).status_code == 200
    assert pos.request("POST", "/pos/v1/invoices/allowances", {
        "invoice_number": "TA00000004", "invoice_date": today().isoformat(), "amount": 7,
        "reason": "returned"}, idempotency_key=f.key()).status_code == 200
    rt = shop.rt
    with unit_of_work(rt.sessions) as db:  # one statement, many invoices (a bulk load)
        db.execute(text(
            "INSERT INTO einvoice_invoices (number, digits, suffix, period, invoice_date, "
            "random_code, amount, allowances, buyer_tax_id, seller_tax_id, donation_code, "
            "after_the_fact, status, carrier_id, merchant_id, pos_transaction_id, created_at) "
            "SELECT 'TB' || substr(number, 3), digits, suffix, period, invoice_date, "
            "random_code, amount, allowances, buyer_tax_id, seller_tax_id, donation_code, "
            "after_the_fact, status, carrier_id, merchant_id, pos_transaction_id + 1000, "
            "created_at FROM einvoice_invoices"))
        db.execute(text("DELETE FROM einvoice_invoices WHERE number = 'TB00000002'"))
    expected = {"": 2, "voided": 2, "business_buyer": 1, "after_the_fact": 2,
                "not_positive": 2}
    with unit_of_work(rt.sessions) as db:
        ctx = rt.ctx(db, Actor.system("tests"))
        assert check.recount(ctx, period) == expected
        assert check.tallies(ctx, period) == expected
        assert db.scalar(select(func.count()).select_from(InvoiceTallyChange)) == 0

    issued(shop, "TA00000005")
    use_process_runtime(rt)
    try:
        assert tasks.fold_tallies() == 1
        assert tasks.fold_tallies() == 0
    finally:
        use_process_runtime(None)
    post_raw(supervisor_of, "/einvoice/draws", draw_file(period), "application/json")
    out = supervisor_of.ok("POST", f"/einvoice/periods/{period}/check")
    assert out["invoices"] == 10
    assert out["exclusions"] == {"voided": 2, "business_buyer": 1, "after_the_fact": 2,
                                 "not_positive": 2}
    entry = make_app(rt.settings).conf.beat_schedule["fold-einvoice-tallies"]
    assert entry["task"] == "cardsvc.einvoice.tasks.fold_tallies"


def test_a_cloud_list_that_is_not_csv_is_refused(shop: Shop, supervisor_of: Api) -> None:
    period = rules.period_of(today())
    for body in ("\udcf3\r\x91F0".encode("utf-8", "surrogateescape"),  # a lone CR
                 b"invoice_number,amount\r\xc2\x91F0\r",
                 b"invoice_number,amount\n" + b"A" * 200_000 + b",1\n"):
        r = supervisor_of.client.post(f"/einvoice/periods/{period}/cloud-prizes", content=body,
                                      headers={**supervisor_of.headers,
                                               "Content-Type": "text/csv"})
        assert r.status_code == 422 and r.json()["code"] == "draw_invalid", r.text


def test_winners_hear_of_it_once_through_the_outbox(shop: Shop, supervisor_of: Api) -> None:
    period = rules.period_of(today())
    issued(shop, "XC00507588")
    post_raw(supervisor_of, "/einvoice/draws", draw_file(period), "application/json")
    supervisor_of.ok("POST", f"/einvoice/periods/{period}/check")
    sender = FakeSender()
    rt = shop.rt
    with unit_of_work(rt.sessions) as db:
        assert deliver(rt.ctx(db, Actor.system("tests")), sender) == 1
    with unit_of_work(rt.sessions) as db:
        assert deliver(rt.ctx(db, Actor.system("tests")), sender) == 0
    (channel, to, text), = sender.sent
    assert channel == "sms" and to == "0912-000-111" and "XC00507588" in text
    assert "NT$200000" in text


def test_paper_invoices_by_number_or_by_qr(shop: Shop, supervisor_of: Api) -> None:
    period = rules.period_of(today())
    post_raw(supervisor_of, "/einvoice/draws", draw_file(period), "application/json")
    out = shop.clerk.ok("POST", "/einvoice/prize-check",
                        {"period": period, "numbers": ["AB10507588", "AB11111111"]})
    assert [(r["number"], r["tier"], r["amount"]) for r in out] == [
        ("AB10507588", "second", 40_000), ("AB11111111", None, 0)]
    roc = f"{today().year - 1911:03d}{today():%m%d}"
    qr = f"QQ00507588{roc}1234{95:08x}{100:08x}00000000{SELLER}" + "A" * 24 + ":x"
    (paper,) = shop.clerk.ok("POST", "/einvoice/prize-check", {"qr": qr})
    assert (paper["period"], paper["tier"]) == (period, "first")
    b2b = qr.replace("00000000" + SELLER, "04595252" + SELLER)
    (refused,) = shop.clerk.ok("POST", "/einvoice/prize-check", {"qr": b2b})
    assert refused["tier"] is None and "buyer" in refused["note"]
    bad = shop.clerk.post("/einvoice/prize-check", {"qr": "X" * 80})
    assert bad.status_code == 422 and bad.json()["code"] == "invoice_invalid"


def test_a_replaced_cards_invoices_stay_the_residents(shop: Shop) -> None:
    issued(shop, "ZZ00000001")
    new = shop.clerk.ok("POST", f"/cards/{shop.card['id']}/replace",
                        {"reason": "damaged", "chip_uid": f.uid()}, key=f.key())["new_card"]
    mine = shop.clerk.ok("GET", f"/cardholders/{shop.card['cardholder_id']}/invoices")
    assert [(i["number"], i["carrier"]) for i in mine["invoices"]] == [
        ("ZZ00000001", shop.card["card_number"])]
    assert new["card_number"] != shop.card["card_number"]


def test_the_platform_is_told_of_bindings(shop: Shop) -> None:
    fake = FakePlatform()
    shop.rt.services.bind(CarrierPlatform, fake)
    card = shop.card
    shop.clerk.ok("POST", f"/cards/{card['id']}/carrier/binding", {"mobile_barcode": "/ABC+123"})
    assert fake.bound == {card["card_number"]: "/ABC+123"}
    shop.clerk.ok("POST", f"/cards/{card['id']}/carrier/unbind")
    assert fake.bound == {}


def test_an_unbinding_is_told_after_its_commit_and_again_until_the_platform_has_it(
        shop: Shop) -> None:
    from sqlalchemy import select

    from cardsvc.app.worker import make_app
    from cardsvc.einvoice import service, tasks
    from cardsvc.einvoice.models import OwedUnbind
    from cardsvc.runtime import use_process_runtime

    class Flaky(FakePlatform):
        up = False

        def unbind(self, carrier_type: str, carrier_id: str, mobile_barcode: str) -> None:
            if not self.up:
                raise ConnectionError("the platform does not answer")
            super().unbind(carrier_type, carrier_id, mobile_barcode)

    fake = Flaky()
    rt = shop.rt
    rt.services.bind(CarrierPlatform, fake)
    card = shop.card
    shop.clerk.ok("POST", f"/cards/{card['id']}/carrier/binding", {"mobile_barcode": "/ABC+123"})
    # The platform is down: the resident's unbinding stands, and the platform is owed it.
    shop.clerk.ok("POST", f"/cards/{card['id']}/carrier/unbind")
    assert fake.bound == {card["card_number"]: "/ABC+123"}
    with rt.sessions() as db:
        owed = db.scalars(select(OwedUnbind)).one()
        assert owed.told_at is None and owed.attempts == 1
        assert owed.last_error is not None and "ConnectionError" in owed.last_error
    fake.up = True
    use_process_runtime(rt)
    try:
        assert tasks.tell_platform() == {"told": 1, "left": 0}
        assert tasks.tell_platform() == {"told": 0, "left": 0}
    finally:
        use_process_runtime(None)
    assert fake.bound == {}
    with rt.sessions() as db:
        owed = db.scalars(select(OwedUnbind)).one()
        assert owed.told_at is not None and owed.mobile_barcode == ""  # nothing more owed

    # A transaction that ends a binding and then fails tells the platform nothing.
    shop.clerk.ok("POST", f"/cards/{card['id']}/carrier/binding", {"mobile_barcode": "/XYZ-789"})
    with pytest.raises(RuntimeError), unit_of_work(rt.sessions) as db:
        service.unbind(rt.ctx(db, Actor.system("tests")), card["id"])
        raise RuntimeError("the rest of the transaction failed")
    assert fake.bound == {card["card_number"]: "/XYZ-789"}
    with rt.sessions() as db:
        assert len(db.scalars(select(OwedUnbind)).all()) == 1
    entry = make_app(rt.settings).conf.beat_schedule["tell-einvoice-platform"]
    assert entry["task"] == "cardsvc.einvoice.tasks.tell_platform"


def test_a_carrier_bound_again_first_settles_what_the_platform_is_owed(shop: Shop) -> None:
    """An unbinding the platform did not take is told before the carrier is bound again, so
    it never undoes the newer binding; the platform down or refusing is a clear answer, and
    a commit tells the platform only its own unbindings."""
    from sqlalchemy import select

    from cardsvc.einvoice.models import OwedUnbind
    from cardsvc.einvoice.platform import UnbindTeller

    class Strict(FakePlatform):
        """One barcode per carrier; counts its calls; can be down or refuse."""
        down = False
        refuse = False
        calls = 0

        def bind(self, carrier_type: str, carrier_id: str, hidden_id: str,
                 mobile_barcode: str) -> None:
            self.calls += 1
            if self.down:
                raise ConnectionError("the platform does not answer")
            if self.refuse:
                from cardsvc.einvoice.errors import PlatformRefused
                raise PlatformRefused("the platform knows no such barcode")
            assert carrier_id not in self.bound, "bound twice"
            super().bind(carrier_type, carrier_id, hidden_id, mobile_barcode)

        def unbind(self, carrier_type: str, carrier_id: str, mobile_barcode: str) -> None:
            self.calls += 1
            if self.down:
                raise ConnectionError("the platform does not answer")
            super().unbind(carrier_type, carrier_id, mobile_barcode)

    fake = Strict()
    rt = shop.rt
    rt.services.bind(CarrierPlatform, fake)
    card, other = shop.card, f.active_card(shop.clerk, f.holder(shop.clerk)["id"])
    number = card["card_number"]
    for c, code in ((card, "/ABC+123"), (other, "/OTH-001")):
        shop.clerk.ok("POST", f"/cards/{c['id']}/carrier/binding", {"mobile_barcode": code})
    fake.down = True
    for c in (card, other):  # two unbindings the platform does not take
        shop.clerk.ok("POST", f"/cards/{c['id']}/carrier/unbind")
    assert fake.calls == 2 + 2  # each commit told only its own, once
    r = shop.clerk.req("POST", f"/cards/{card['id']}/carrier/binding",
                       {"mobile_barcode": "/ABC+123"})
    assert r.status_code == 503 and r.json()["code"] == "einvoice_platform_unavailable", r.text
    fake.down = False
    # The same barcode again: the old unbinding goes first, then the new binding.
    shop.clerk.ok("POST", f"/cards/{card['id']}/carrier/binding", {"mobile_barcode": "/ABC+123"})
    assert fake.bound == {number: "/ABC+123", other["card_number"]: "/OTH-001"}
    with rt.sessions() as db:
        told = {o.carrier_id: o.told_at for o in db.scalars(select(OwedUnbind))}
    assert sum(1 for t in told.values() if t is None) == 1  # the other card's still owed
    teller = rt.services.find(UnbindTeller)
    teller.owed([])  # a commit that owes nothing tells nothing
    assert fake.bound[other["card_number"]] == "/OTH-001"
    fake.refuse = True
    r = shop.clerk.req("POST", f"/cards/{other['id']}/carrier/binding",
                       {"mobile_barcode": "/NEW-002"})
    assert r.status_code == 422 and r.json()["code"] == "mobile_barcode_refused", r.text


def test_the_command_tells_the_platform_what_it_is_owed(shop: Shop) -> None:
    import os
    import subprocess
    import sys

    from sqlalchemy import select

    from cardsvc.einvoice.models import OwedUnbind

    class Down(FakePlatform):
        def unbind(self, carrier_type: str, carrier_id: str, mobile_barcode: str) -> None:
            raise ConnectionError("the platform does not answer")

    rt = shop.rt
    rt.services.bind(CarrierPlatform, Down())
    card = shop.card
    shop.clerk.ok("POST", f"/cards/{card['id']}/carrier/binding", {"mobile_barcode": "/ABC+123"})
    shop.clerk.ok("POST", f"/cards/{card['id']}/carrier/unbind")
    env = {k: v for k, v in os.environ.items() if not k.startswith("CARDSVC_")}
    env.update(CARDSVC_DATABASE_URL=rt.engine.url.render_as_string(hide_password=False),
               CARDSVC_SECRETS_FILE=str(rt.settings.secrets_file))
    told = subprocess.run([sys.executable, "-m", "cardsvc.app.cli", "einvoice",
                           "tell-platform"], env=env, capture_output=True, text=True,
                          timeout=120)
    assert told.returncode == 0, told.stdout + told.stderr
    assert "1 unbinding(s) told" in told.stdout
    with rt.sessions() as db:
        assert db.scalars(select(OwedUnbind)).one().told_at is not None


def test_offline_records_bring_their_invoices_once(shop: Shop) -> None:
    taps = [shop.tap(12), shop.tap(13)]
    card_day = dt.datetime.fromtimestamp(taps[0]["time"], TAIPEI).date().isoformat()
    invoice = {"invoice_date": card_day, "random_code": "0042", "seller_tax_id": SELLER}
    records = [taps[0] | {"invoice": invoice | {"invoice_number": "OF00000001"}},
               taps[1] | {"invoice": invoice | {"invoice_number": "OF00000002",
                                                "seller_tax_id": "04595252"}}]
    body = {"batch_ref": "offline-1", "records": records}
    first = shop.pos.request("POST", "/pos/v1/batches", body, idempotency_key=f.key()).json()
    assert first["records"] == 2 and first["invoices"] == 1
    assert [(r["terminal_seq"], r["code"]) for r in first["invoices_refused"]] == [
        (taps[1]["terminal_seq"], "invoice_seller_mismatch")]
    again = shop.pos.request("POST", "/pos/v1/batches", body, idempotency_key=f.key()).json()
    assert again["duplicate"] is True
    mine = shop.clerk.ok("GET", f"/cardholders/{shop.card['cardholder_id']}/invoices")
    assert [i["number"] for i in mine["invoices"]] == ["OF00000001"]


def test_the_phone_binds_its_own_card_with_a_signed_request(app_client, clerk) -> None:  # type: ignore[no-untyped-def]
    private, card = f.mobile_card(clerk, "phone-einvoice-1", 100)
    other_private, _ = f.mobile_card(clerk, "phone-einvoice-2", 100)
    now = int(dt.datetime.now(dt.UTC).timestamp())

    def ask(key: Any, issued_at: int, barcode: str = "/PHONE.1") -> Any:
        return app_client.post("/einvoice/v1/binding", json={
            "card_number": card["card_number"], "mobile_barcode": barcode,
            "issued_at": issued_at,
            "signature": sign_binding(key, card["card_number"], barcode, issued_at)})

    for key, at in ((other_private, now), (private, now - 600)):
        refused = ask(key, at)
        assert refused.status_code == 401 and refused.json()["code"] == "binding_bad_signature"
    forged = app_client.post("/einvoice/v1/binding", json={
        "card_number": card["card_number"], "mobile_barcode": "/EVIL.00", "issued_at": now,
        "signature": sign_binding(private, card["card_number"], "/PHONE.1", now)})
    assert forged.status_code == 401
    ok = ask(private, now)
    assert ok.status_code == 200 and ok.json()["mobile_barcode"] == "/PHONE.1"
    assert ok.json()["bound_by"] == "resident-app"


def test_the_residents_app_reads_its_own_invoices(shop: Shop, clerk) -> None:  # type: ignore[no-untyped-def]
    private, card = f.mobile_card(clerk, "phone-einvoice-3", 100)
    now = int(dt.datetime.now(dt.UTC).timestamp())
    body = {"card_number": card["card_number"], "issued_at": now,
            "signature": sign_read(private, card["card_number"], now)}
    mine = shop.client.post("/einvoice/v1/invoices", json=body)
    assert mine.status_code == 200 and mine.json()["invoices"] == []
    stolen = dict(body, card_number=shop.card["card_number"])
    r = shop.client.post("/einvoice/v1/invoices", json=stolen)
    assert r.status_code == 401 and r.json()["code"] == "binding_bad_signature"
