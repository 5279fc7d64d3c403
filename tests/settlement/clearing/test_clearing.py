"""Daily clearing end to end: real chips (virtual cards), the signed POS API, offline batches,
QR, a refund; then clearing, statements, the exceptions report and the payout file, checked
against the ledger to the dollar."""

from __future__ import annotations

import datetime as dt
import itertools
import shutil
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import func, select

from cardsvc.app.http import create_app
from cardsvc.context import TAIPEI
from cardsvc.db import unit_of_work
from cardsvc.keystore.service import KeyStore
from cardsvc.ledger.models import Account, Posting, Transfer
from merchants.pos.client import PosClient
from merchants.pos.models import PosTransaction
from readers.memory import InProcessReader
from readers.protocol import KeyPurpose
from readers.session import CardSession
from settlement.clearing import service
from settlement.clearing.errors import WindowOrder
from settlement.clearing.models import ClearingEntry, ClearingFile, ClearingWindow
from settlement.clearing.steps import PAYOUT_CODE
from simulators.card import VirtualCard
from tests.support import factories as f
from tests.support.api import PASSWORD, Api
from tests.support.worlds import bills_csv, chip_card

_seq = itertools.count(1)


@dataclass
class Town:
    rt: Any
    clerk: Api
    client: TestClient
    cards_dir: Path
    shops: dict[str, tuple[dict[str, Any], PosClient]]

    def pos(self, shop: str) -> PosClient:
        return self.shops[shop][1]

    def terminal(self, shop: str) -> dict[str, Any]:
        return self.shops[shop][0]

    def tap(self, shop: str, card: dict[str, Any], amount: int,
            chip_file: Path | None = None) -> dict[str, Any]:
        """Debit the chip at this shop's terminal; return what the terminal submits."""
        uid = card["chip_uid"]
        chip = VirtualCard(bytes.fromhex(uid), chip_file or self.cards_dir / f"{uid}.json")
        with unit_of_work(self.rt.sessions) as db:
            masters = KeyStore(db, self.rt.keys.secrets.kek,
                               self.rt.keys.secrets.system_id).masters(KeyPurpose.DEBIT)
        s = CardSession(InProcessReader(chip), self.rt.keys.secrets.system_id)
        s.select()
        s.authenticate_with_master(KeyPurpose.DEBIT, masters)
        rec = s.debit(amount, terminal_id=self.terminal(shop)["id"], terminal_seq=next(_seq),
                      when=1_790_000_000).record
        return {"card_number": card["card_number"], "chip_uid": uid, "amount": rec.amount,
                "card_counter": rec.counter, "balance_after": rec.balance_after,
                "terminal_seq": rec.terminal_seq, "time": rec.time,
                "certificate": rec.certificate.hex()}

    def buy(self, shop: str, body: dict[str, Any]) -> dict[str, Any]:
        r = self.pos(shop).request("POST", "/pos/v1/purchases", body, idempotency_key=f.key())
        assert r.status_code == 200, r.text
        return r.json()  # type: ignore[no-any-return]

    def upload(self, shop: str, ref: str, records: list[dict[str, Any]]) -> dict[str, Any]:
        r = self.pos(shop).request("POST", "/pos/v1/batches",
                                   {"batch_ref": ref, "records": records})
        assert r.status_code == 200, r.text
        return r.json()  # type: ignore[no-any-return]


MERCHANTS = {  # name: (legal name, tax id, category, fee in basis points)
    "shop": ("金城老街商店", "04595252", "retail", 150),
    "bus": ("金門縣公共車船管理處", "69115908", "transit", 0),
    "kiln": ("金門陶瓷廠", "10458575", "government", 0),
}


@pytest.fixture
def town(runtime_factory, tmp_path) -> Iterator[Town]:  # type: ignore[no-untyped-def]
    rt = runtime_factory(reader="sim", sim_cards_dir=tmp_path / "cards")
    with TestClient(create_app(rt)) as client:
        token = client.post("/auth/login", json={"username": "t.clerk",
                                                 "password": PASSWORD}).json()["access_token"]
        clerk = Api(client, token)
        shops = {}
        for i, (name, (legal, tax_id, category, fee)) in enumerate(MERCHANTS.items()):
            m = clerk.ok("POST", "/merchants", {
                "legal_name": legal, "tax_id": tax_id, "category": category, "fee_bps": fee,
                "bank_account": f"00{4 + i}-0001112223{i}"}, status=201)
            t = clerk.ok("POST", f"/merchants/{m['id']}/terminals", {"label": name},
                         status=201)
            shops[name] = (t, PosClient(client, t["key_id"], t["secret"]))
        yield Town(rt, clerk, client, tmp_path / "cards", shops)


def today() -> dt.date:
    return dt.datetime.now(TAIPEI).date()


def balance(town: Town, code: str) -> int:
    with town.rt.sessions() as db:
        return int(db.scalar(select(Account.balance).where(Account.code == code)) or 0)


def purse(town: Town, card: dict[str, Any]) -> int:
    return town.clerk.ok("GET", f"/cards/{card['id']}/purse")["balance"]  # type: ignore[no-any-return]


def window_files(town: Town) -> dict[str, str]:
    return service.files_of(town.rt, today())


def test_a_day_of_sales_cleared_to_the_dollar(town: Town, tmp_path: Path) -> None:
    from merchants.pos.qr import make_payment_token
    alice, bob = chip_card(town.clerk, 1_000), chip_card(town.clerk, 500)
    # Online at the shop; a refund of part of it.
    sale = town.buy("shop", town.tap("shop", alice, 120))
    refund = town.pos("shop").request("POST", "/pos/v1/refunds",
                                      {"original_transaction_id": sale["transaction_id"],
                                       "amount": 20}, idempotency_key=f.key())
    assert refund.status_code == 200, refund.text
    # Offline on the bus: two rides, uploaded twice.
    rides = [town.tap("bus", alice, 30), town.tap("bus", bob, 45)]
    first = town.upload("bus", "BUS-1", rides)
    assert town.upload("bus", "BUS-1", rides)["duplicate"] and not first["duplicate"]
    # A forged record: the amount altered after the card certified it.
    forged = dict(town.tap("bus", bob, 15))
    forged["amount"] = 5
    # A cloned card: a copy of bob's chip spends the same counter at the kiln.
    clone_file = tmp_path / "clone.json"
    shutil.copy(town.cards_dir / f"{bob['chip_uid']}.json", clone_file)
    real = town.tap("kiln", bob, 60)
    copy = town.tap("kiln", bob, 70, chip_file=clone_file)
    assert real["card_counter"] == copy["card_counter"]
    town.upload("bus", "BUS-2", [forged])
    town.upload("kiln", "KILN-1", [real, copy])
    # QR at the kiln with a mobile card.
    phone_key, mobile = f.mobile_card(town.clerk, "android-test-0002", 500)
    qr = town.pos("kiln").request("POST", "/pos/v1/qr-purchases", {
        "token": make_payment_token(phone_key, mobile["card_number"], 30), "amount": 80},
        idempotency_key=f.key())
    assert qr.status_code == 200, qr.text

    window = service.run_in_process(town.rt, today())
    assert window.status == "settled"
    report = service.report(town.rt, today())
    by_name = {name: s for s, name in report.statements}
    shop, bus, kiln = (by_name[MERCHANTS[n][0]] for n in ("shop", "bus", "kiln"))
    assert (shop.gross, shop.refunds, shop.fees, shop.net) == (120, 20, 2, 98)  # 1.5% of 100
    assert (bus.gross, bus.sales_count, bus.fees, bus.net) == (75, 2, 0, 75)  # forged: unpaid
    assert (kiln.gross, kiln.sales_count, kiln.net) == (80, 1, 80)  # clone records held
    reasons = sorted(x.reason for x in report.exceptions)
    assert reasons == ["bad_certificate", "cloned_card", "cloned_card"], reasons
    # The cloned card is blocked and on the terminals' hotlist.
    assert town.clerk.ok("GET", f"/cards/{bob['id']}")["status"] == "blocked"
    hot = town.pos("bus").request("GET", "/pos/v1/hotlist?since=0").json()
    assert bob["card_number"] in {e["card_number"] for e in hot["entries"]}

    # The ledger agrees to the dollar: every payable paid out or charged as fees, the payout
    # account holds what the payout file pays, purses hold what the chips hold plus loads
    # (refunds) still to reach them.
    for name in MERCHANTS:
        assert balance(town, f"merchant:{town.terminal(name)['merchant_id']}") == 0
        # Each sale went to its terminal's takings; clearing swept the window's sales out.
        assert balance(town, f"terminal:{town.terminal(name)['id']}") == 0
    with town.rt.sessions() as db:
        swept = db.execute(select(Account.code, Posting.amount).join(
            Posting, Posting.account_id == Account.id).join(
            Transfer, Transfer.id == Posting.transfer_id).where(
            Transfer.kind == "takings_sweep").order_by(Account.code)).all()
    shop_t, kiln_t = town.terminal("shop")["id"], town.terminal("kiln")["id"]
    assert sorted((code, amount) for code, amount in swept) == sorted([
        (f"terminal:{shop_t}", -120), (f"terminal:{kiln_t}", -80),
        (f"merchant:{town.terminal('shop')['merchant_id']}", 120),
        (f"merchant:{town.terminal('kiln')['merchant_id']}", 80)])
    assert balance(town, "fee_income:county") == 2
    assert balance(town, PAYOUT_CODE) == 98 + 75 + 80
    assert purse(town, alice) == 1_000 - 120 + 20 - 30
    assert purse(town, bob) == 500 - 45
    files = window_files(town)
    xml = files["payout.xml"]
    assert "<CtrlSum>253</CtrlSum>" in xml and "<NbOfTxs>3</NbOfTxs>" in xml
    summary = report.summary
    assert summary["totals"]["payout"] == 253  # type: ignore[index]
    assert summary["records"]["count"] == 8  # type: ignore[index]

    # Clearing again changes nothing; regenerating gives the same bytes.
    assert service.run_in_process(town.rt, today()).summary_hash == window.summary_hash
    assert window_files(town) == files
    with unit_of_work(town.rt.sessions) as db:
        from settlement.clearing import files as files_mod
        from settlement.clearing.models import MerchantStatement
        w = db.scalar(select(ClearingWindow).where(ClearingWindow.business_date == today()))
        sts = list(db.scalars(select(MerchantStatement).where(
            MerchantStatement.window_id == w.id).order_by(MerchantStatement.merchant_id)))
        again = files_mod.window_files(service._ctx(town.rt, db), w, sts)
        assert {x.name: x.content for x in again.files} == {
            k: v for k, v in files.items() if k != "payout.xml"}
        db.rollback()

    # A batch uploaded again after the close adds nothing; a new record waits for the next
    # window.
    assert town.upload("bus", "BUS-1", rides)["duplicate"]
    late = town.upload("bus", "BUS-3", [town.tap("bus", alice, 10)])
    with town.rt.sessions() as db:
        held = db.scalar(select(func.count()).select_from(ClearingEntry).where(
            ClearingEntry.transaction_id.in_(select(PosTransaction.id).where(
                PosTransaction.batch_id == late["batch_id"]))))
        assert held == 0
        assert db.scalar(select(func.count()).select_from(ClearingFile)) == len(files)


def _sales_day(town: Town) -> tuple[dict[str, Any], dict[str, Any]]:
    alice = chip_card(town.clerk, 1_000)
    town.buy("shop", town.tap("shop", alice, 100))
    town.upload("bus", "BUS-A", [town.tap("bus", alice, 30)])
    return alice, town.buy("kiln", town.tap("kiln", alice, 40))


def test_payout_file_is_valid_pain_001(town: Town) -> None:
    import os

    import sepaxml
    import xmlschema
    _sales_day(town)
    service.run_in_process(town.rt, today())
    xml = window_files(town)["payout.xml"]
    schema = xmlschema.XMLSchema(os.path.join(os.path.dirname(sepaxml.__file__), "schemas",
                                              "pain.001.001.09.xsd"))
    schema.validate(xml)  # raises with the first violation
    doc = schema.to_dict(xml)
    txs = doc["CstmrCdtTrfInitn"]["PmtInf"][0]["CdtTrfTxInf"]
    amounts = sorted(int(t["Amt"]["InstdAmt"]["$"]) for t in txs)
    assert amounts == [30, 40, 98]  # the shop's 100 less 1.5% (half up)
    assert {t["Amt"]["InstdAmt"]["@Ccy"] for t in txs} == {"TWD"}
    # The file names bank accounts: stored encrypted, never as plain text.
    with town.rt.sessions() as db:
        stored = db.scalar(select(ClearingFile.content).where(ClearingFile.name == "payout.xml"))
    assert stored is not None and "0001112223" not in stored and "CdtTrfTxInf" not in stored


def test_balance_mismatch_and_counter_gap_are_reported(town: Town) -> None:
    import json
    alice, bob = chip_card(town.clerk, 1_000), chip_card(town.clerk, 300)
    first = town.tap("bus", alice, 10)
    # Someone adds NT$500 to the chip's purse without the backend: the next record's balance
    # does not follow from the last one the backend knows.
    chip = town.cards_dir / f"{alice['chip_uid']}.json"
    state = json.loads(chip.read_text())
    state["purse"]["balance"] += 500
    chip.write_text(json.dumps(state))
    second = town.tap("bus", alice, 10)
    # Bob's second ride never reaches the backend: a gap in his counters.
    rides = [town.tap("bus", bob, 5), town.tap("bus", bob, 6), town.tap("bus", bob, 7)]
    town.upload("bus", "BUS-X", [first, second, rides[0], rides[2]])
    service.run_in_process(town.rt, today())
    report = service.report(town.rt, today())
    found = {(x.reason, x.card_id, x.card_counter) for x in report.exceptions}
    assert found == {("balance_mismatch", alice["id"], second["card_counter"]),
                     ("counter_gap", bob["id"], rides[2]["card_counter"])}
    assert all(x.paid for x in report.exceptions)  # the records themselves are genuine
    assert town.clerk.ok("GET", f"/cards/{alice['id']}")["status"] == "blocked"
    assert town.clerk.ok("GET", f"/cards/{bob['id']}")["status"] == "active"
    assert report.statements[0][0].gross == 10 + 10 + 5 + 7


def test_records_after_the_close_go_to_the_next_window(town: Town) -> None:
    from sqlalchemy import update
    alice, sale = _sales_day(town)
    two_days_ago = today() - dt.timedelta(days=2)
    with unit_of_work(town.rt.sessions) as db:  # these sales happened two days ago, at noon
        db.execute(update(PosTransaction).values(created_at=dt.datetime.combine(
            two_days_ago, dt.time(12), TAIPEI)))
    late = town.buy("shop", town.tap("shop", alice, 7))
    first = service.run_in_process(town.rt, two_days_ago)
    assert first.records == 3
    with pytest.raises(WindowOrder):  # its records went to the window after it
        service.close(town.rt, two_days_ago - dt.timedelta(days=1))
    assert service.run_in_process(town.rt, today() - dt.timedelta(days=1)).records == 0
    # The last sale of the earlier days can no longer be voided: it is settled.
    void = town.pos("kiln").request("POST", "/pos/v1/voids",
                                    {"transaction_id": sale["transaction_id"]},
                                    idempotency_key=f.key())
    assert void.status_code == 409 and void.json()["code"] == "not_voidable"
    window = service.run_in_process(town.rt, today())
    assert window.records == 1
    with town.rt.sessions() as db:
        entry = db.get(ClearingEntry, late["transaction_id"])
        assert entry is not None and entry.window_id == window.id
    # A window is closed once; nothing can be added to it afterwards.
    assert service.close(town.rt, two_days_ago).records == 3


def test_one_run_per_window_and_the_beat_schedule(town: Town) -> None:
    _sales_day(town)
    first = service.start(town.rt, today())
    assert first is not None and first.pending  # the merchants whose records need checking
    assert service.start(town.rt, today()) is None  # a second run of the window is refused
    # The sweeper takes over what the first run left: everything, once it is stale.
    assert service.stale_runs(town.rt, 3_600) == []
    stale = service.stale_runs(town.rt, 0)
    assert [s.window_id for s in stale] == [first.window_id]
    assert stale[0].pending == first.pending

    from cardsvc.app.worker import make_app
    app = make_app(town.rt.settings.model_copy(update={
        "clearing_cutoff": dt.time(22, 30), "clearing_start_delay_minutes": 45}))
    daily = app.conf.beat_schedule["clear-the-business-day"]
    assert daily["task"] == "settlement.tasks.daily"
    assert daily["schedule"].hour == {23} and daily["schedule"].minute == {15}
    assert app.conf.timezone == "Asia/Taipei" and app.conf.task_acks_late
    assert app.conf.task_always_eager  # no broker configured: tasks run in-process


def test_the_in_process_celery_tasks_clear_a_window(town: Town) -> None:
    from settlement.clearing import tasks
    _sales_day(town)
    tasks.use_runtime(town.rt)
    try:
        window_id = tasks.run_window.delay(today().isoformat()).get()
    finally:
        tasks.use_runtime(None)
    with town.rt.sessions() as db:
        w = db.get(ClearingWindow, window_id)
        assert w is not None and w.status == "settled" and w.records == 3


def test_a_record_in_two_batches_is_paid_once(town: Town) -> None:
    alice = chip_card(town.clerk, 1_000)
    ride, online = town.tap("bus", alice, 25), town.tap("shop", alice, 40)
    town.upload("bus", "BUS-A", [ride])
    town.upload("bus", "BUS-B", [ride])  # the terminal lost track of what it had sent
    town.buy("shop", online)
    town.upload("shop", "SHOP-A", [online])  # sent online, then again in a batch
    service.run_in_process(town.rt, today())
    with town.rt.sessions() as db:
        outcomes = sorted((e.kind, e.outcome, e.reason or "") for e in db.scalars(
            select(ClearingEntry)))
    assert outcomes == [("offline_purchase", "duplicate", "already_paid"),
                        ("offline_purchase", "duplicate", "duplicate_record"),
                        ("offline_purchase", "paid", ""), ("purchase", "paid", "")]
    assert purse(town, alice) == 1_000 - 25 - 40
    assert not service.report(town.rt, today()).exceptions


def test_water_bills_through_clearing_remittance_and_reconciliation(town: Town) -> None:
    """Import → look-up by barcode → pay by card at a terminal → a second payment refused →
    clearing → the remittance file → the plant's confirmation, with one planted difference."""
    water = town.clerk.ok("POST", "/merchants", {
        "legal_name": "金門縣自來水廠", "tax_id": "76014406", "category": "utility",
        "fee_bps": 0, "bank_account": "004-00099988877"}, status=201)
    biller = town.clerk.ok("POST", "/billers", {"merchant_id": water["id"], "code": "KMWATER",
                                                "collection_code": "KW1"}, status=201)
    due = (today() + dt.timedelta(days=10)).isoformat()
    r = town.client.post(f"/billers/{biller['id']}/bills/import", content=bills_csv(
        ("A1234567", "WB00012345678901", "1511", "350", due, "陳志明"),
        ("B7654321", "WB00012345678902", "1511", "420", due, "林一")),
        headers={**town.clerk.headers, "Content-Type": "text/csv"})
    assert r.status_code == 200, r.text
    alice = chip_card(town.clerk, 1_500)
    bill = town.clerk.ok("GET", "/bills", account_number="A1234567")[0]
    s1, s2, s3 = bill["barcodes"]
    slip = {"segment1": s1, "segment2": s2, "segment3": s3}
    # The shop's terminal scans the slip, checks the bill, debits the chip, submits.
    looked = town.pos("shop").request("POST", "/pos/v1/bills/lookup", slip).json()
    assert looked["amount"] == 350 and looked["status"] == "unpaid"
    paid = town.pos("shop").request("POST", "/pos/v1/bill-payments",
                                    {**slip, **town.tap("shop", alice, 350)},
                                    idempotency_key=f.key())
    assert paid.status_code == 200, paid.text
    assert paid.json()["channel"] == "pos" and paid.json()["purse_balance"] == 1_150
    second = town.pos("shop").request("POST", "/pos/v1/bill-payments",
                                      {**slip, **town.tap("shop", alice, 350)},
                                      idempotency_key=f.key())
    assert second.status_code == 409 and second.json()["code"] == "bill_already_paid"
    # The other bill: cash at the bus company's ticket office (a collecting merchant).
    other = town.clerk.ok("GET", "/bills", account_number="B7654321")[0]
    o1, o2, o3 = other["barcodes"]
    cash = town.pos("bus").request("POST", "/pos/v1/bill-collections",
                                   {"segment1": o1, "segment2": o2, "segment3": o3,
                                    "amount": 420}, idempotency_key=f.key())
    assert cash.status_code == 200, cash.text
    town.buy("bus", town.tap("bus", alice, 500))  # the bus company's own sales that day

    service.run_in_process(town.rt, today())
    report = service.report(town.rt, today())
    files = window_files(town)
    remittance = files["remittance-KMWATER.csv"].splitlines()
    assert remittance[0] == "bill_number,account_number,period,amount,channel,paid_at"
    assert sorted(line.split(",")[4] for line in remittance[1:]) == ["pos", "store_cash"]
    control = __import__("json").loads(files["remittance-KMWATER.json"])
    assert (control["bills"], control["amount"]) == (2, 770)
    by_name = {name: s for s, name in report.statements}
    bus = by_name[MERCHANTS["bus"][0]]
    assert (bus.gross, bus.collections, bus.net) == (500, 420, 80)  # cash owed to the plant
    # The printed report shows why the bus company's net is 80: the cash it collected.
    from rich.console import Console

    from cardsvc.app.reports import print_clearing
    out = Console(width=200, record=True)
    print_clearing(report, out)
    line = next(x for x in out.export_text().splitlines() if f"#{bus.merchant_id})" in x)
    assert [c.strip() for c in line.split("│")[2:]][:9] == \
        ["1", "500", "0", "0", "420", "0", "0", "80", "80"], line  # no subsidies here
    # The shop took the bill payment at its terminal: not a sale of the shop's.
    shop = by_name[MERCHANTS["shop"][0]]
    assert (shop.sales_count, shop.gross, shop.payout) == (0, 0, 0)
    # The rejected second debit is kept for the exceptions report (the chip paid twice).
    assert [x.reason for x in report.exceptions] == ["bill_already_paid"]
    xml = files["payout.xml"]
    assert "-B1</EndToEndId>" in xml and "<CtrlSum>850</CtrlSum>" in xml  # 80 + 770
    assert balance(town, "biller:1") == 0 and balance(town, PAYOUT_CODE) == 850

    # The plant confirms one bill with another amount and a bill we never remitted.
    confirmation = (b"bill_number,amount\nWB00012345678901,350\nWB00012345678902,400\n"
                    b"WB00099999999999,100\n")
    r = town.client.post(f"/billers/{biller['id']}/confirmations",
                         params={"date": today().isoformat()}, content=confirmation,
                         headers={**town.clerk.headers, "Content-Type": "text/csv"})
    assert r.status_code == 200, r.text
    result = r.json()
    assert result["matched"] == 1 and result["missing"] == []
    assert result["amount_differs"] == [{"bill_number": "WB00012345678902", "remitted": 420,
                                         "confirmed": 400}]
    assert result["extra"] == [{"bill_number": "WB00099999999999", "confirmed": 100}]
    again = town.client.post(f"/billers/{biller['id']}/confirmations",
                             params={"date": today().isoformat()}, content=confirmation,
                             headers={**town.clerk.headers, "Content-Type": "text/csv"})
    assert again.json()["duplicate"] is True
    reasons = sorted(x.reason for x in service.report(town.rt, today()).exceptions)
    assert reasons == ["bill_already_paid", "remittance_amount_differs", "remittance_extra"]


def test_a_chip_transaction_is_paid_once_across_channels_and_windows(town: Town,
                                                                     tmp_path: Path) -> None:
    from sqlalchemy import update
    alice, bob = chip_card(town.clerk, 1_000), chip_card(town.clerk, 500)
    ride = town.tap("bus", alice, 25)
    town.upload("bus", "BUS-1", [ride])
    # The same chip transaction sent online afterwards is refused: clearing pays the batch.
    again = town.pos("bus").request("POST", "/pos/v1/purchases", ride, idempotency_key=f.key())
    assert again.status_code == 409 and again.json()["code"] == "replayed_certificate"
    # A cloned card's records, held two days ago, stay held when uploaded again today.
    clone_file = tmp_path / "clone.json"
    shutil.copy(town.cards_dir / f"{bob['chip_uid']}.json", clone_file)
    real, copy = town.tap("kiln", bob, 60), town.tap("kiln", bob, 70, chip_file=clone_file)
    town.upload("kiln", "KILN-1", [real, copy])
    two_days_ago = today() - dt.timedelta(days=2)
    with unit_of_work(town.rt.sessions) as db:
        db.execute(update(PosTransaction).values(created_at=dt.datetime.combine(
            two_days_ago, dt.time(12), TAIPEI)))
    service.run_in_process(town.rt, two_days_ago)
    town.upload("kiln", "KILN-2", [real])
    window = service.run_in_process(town.rt, today())
    assert window.records == 1
    with town.rt.sessions() as db:
        outcomes = sorted((e.amount, e.outcome, e.reason or "")
                          for e in db.scalars(select(ClearingEntry)))
    assert outcomes == [(25, "paid", ""), (25, "refused", "replayed_certificate"),
                        (60, "duplicate", "already_held"), (60, "held", "cloned_card"),
                        (70, "held", "cloned_card")]
    assert purse(town, alice) == 1_000 - 25 and purse(town, bob) == 500


def test_a_voided_sale_leaves_nothing_in_the_takings_or_the_payable(town: Town) -> None:
    alice = chip_card(town.clerk, 1_000)
    sale = town.buy("shop", town.tap("shop", alice, 50))
    void = town.pos("shop").request("POST", "/pos/v1/voids",
                                    {"transaction_id": sale["transaction_id"]},
                                    idempotency_key=f.key())
    assert void.status_code == 200, void.text
    town.buy("shop", town.tap("shop", alice, 30))
    shop = town.terminal("shop")
    assert balance(town, f"terminal:{shop['id']}") == 80  # both sales, until clearing
    assert balance(town, f"merchant:{shop['merchant_id']}") == -50  # the void
    window = service.run_in_process(town.rt, today())
    assert window.status == "settled"
    statement = {name: s for s, name in service.report(town.rt, today()).statements}[
        MERCHANTS["shop"][0]]
    assert (statement.gross, statement.sales_count, statement.payout) == (30, 1, 30)
    assert balance(town, f"terminal:{shop['id']}") == 0
    assert balance(town, f"merchant:{shop['merchant_id']}") == 0
    assert balance(town, PAYOUT_CODE) == 30
