"""`cardsvc demo`: a day at the issuing counter, told step by step through the real HTTP API
against a throw-away database."""

from __future__ import annotations

import base64
import datetime as dt
import json
import tempfile
import uuid
import warnings
from pathlib import Path
from typing import TYPE_CHECKING, Any

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec
from rich.console import Console
from rich.panel import Panel
from sqlalchemy import select

from cardsvc.app import demo_einvoice, demo_events, demo_transit, reports
from cardsvc.app.bootstrap import bootstrap
from cardsvc.app.demo_library import Libraries
from cardsvc.app.http import create_app
from cardsvc.app.story import DemoFailed, Story
from cardsvc.audit import checkpoints
from cardsvc.audit import service as audit
from cardsvc.audit.models import AuditEvent
from cardsvc.config import Settings
from cardsvc.context import TAIPEI, Actor
from cardsvc.db import unit_of_work
from cardsvc.identifiers import person_id_check_digit
from cardsvc.keystore.service import KeyStore
from cardsvc.security import signing
from cardsvc.stats.service import IssuanceReport
from merchants.pos.client import PosClient
from merchants.pos.qr import make_payment_token
from readers.memory import InProcessReader
from readers.protocol import KeyPurpose
from settlement.clearing import service as clearing
from simulators.card import VirtualCard
from simulators.pos import SimulatedPos, TerminalRefusal

if TYPE_CHECKING:
    from cardsvc.runtime import Runtime

with warnings.catch_warnings():
    # The demo drives the API in-process; starlette's notice about its test client's HTTP
    # library is meant for test suites, not for someone watching the demo.
    warnings.filterwarnings("ignore", message="Using `httpx` with `starlette.testclient`")
    from fastapi.testclient import TestClient


def person_id(prefix9: str) -> str:
    return prefix9 + person_id_check_digit(prefix9)


def years_ago(today: dt.date, years: int, days: int = 0) -> dt.date:
    try:
        d = today.replace(year=today.year - years)
    except ValueError:
        d = today.replace(year=today.year - years, day=28)
    return d - dt.timedelta(days=days)


def run_demo(console: Console) -> bool:
    with tempfile.TemporaryDirectory(prefix="cardsvc-demo-") as tmp:
        settings = Settings(database_url=f"sqlite:///{Path(tmp) / 'demo.db'}",
                            secrets_file=Path(tmp) / "secrets.json", reader="sim",
                            sim_cards_dir=Path(tmp) / "cards",
                            audit_checkpoint_dir=Path(tmp) / "checkpoints")
        boot = bootstrap(settings)
        console.print(Panel.fit(
            "金門縣民卡 — the issuing counter, end to end\n"
            f"throw-away database in {tmp}; every step below is a real API call",
            title="cardsvc demo"))
        try:
            with TestClient(create_app(boot.runtime)) as client:
                _story(Story(console, client), boot.admin_password or "", boot.runtime)
        except DemoFailed as exc:
            console.print(f"[bold red]demo failed:[/] {exc}")
            return False
        finally:
            boot.runtime.close()
    console.print("\nThe counter's screens: run `cardsvc serve` and open "
                  "http://127.0.0.1:8000/counter (log in with the admin password it prints).")
    return True


def _story(st: Story, admin_password: str, rt: Runtime) -> None:
    today = dt.datetime.now(TAIPEI).date()

    st.step("Staff log in")
    st.login("admin", admin_password)
    for username, role, name in (("clerk.lin", "clerk", "林櫃台"),
                                 ("sup.wu", "supervisor", "吳主任"),
                                 ("audit.kao", "auditor", "高稽核")):
        st.call("POST", "/staff", {"username": username, "role": role, "display_name": name,
                                   "password": f"{username}-Passw0rd"}, expect=201)
        st.say(f"admin created {role} account {username} ({name})")
    st.login("clerk.lin", "clerk.lin-Passw0rd")

    st.step("Residents registered at the counter")
    people = {
        "general": ("陳志明", person_id("W10000001"), years_ago(today, 41), "金城鎮"),
        "senior": ("李秀英", person_id("W20000002"), years_ago(today, 72), "金湖鎮"),
        "student": ("王小華", person_id("W10000003"), years_ago(today, 16), "金寧鄉"),
        "disability": ("黃美玲", person_id("W20000004"), years_ago(today, 45), "金沙鎮"),
        "companion": ("黃建國", person_id("W10000005"), years_ago(today, 48), "金沙鎮"),
        "mobile": ("張家豪", person_id("W10000006"), years_ago(today, 30), "烈嶼鄉"),
        "too_young": ("林大同", person_id("W10000007"), years_ago(today, 65, days=-1), "金城鎮"),
    }
    ids: dict[str, int] = {}
    for key, (name, pid, born, town) in people.items():
        out = st.call("POST", "/cardholders", {
            "name": name, "person_id": pid, "birth_date": born.isoformat(), "township": town,
            "phone": "0912-345-678"}, expect=201)
        ids[key] = out["id"]
        st.say(f"{name:<4} {out['person_id_masked']}  born {born}  {town}")
    st.call("POST", f"/cardholders/{ids['student']}/enrolments",
            {"school": "金門高中", "valid_until": (today + dt.timedelta(days=300)).isoformat()},
            expect=201)
    st.say("王小華: enrolment at 金門高中 recorded")
    st.call("POST", f"/cardholders/{ids['disability']}/disability-certificates",
            {"certificate_no": "DC-2024-0815", "valid_until":
             (today + dt.timedelta(days=700)).isoformat(), "companion_id": ids["companion"]},
            expect=201)
    st.say("黃美玲: disability certificate recorded, 黃建國 registered as her companion")
    dup = st.call("POST", "/cardholders", {
        "name": "陳志明", "person_id": people["general"][1],
        "birth_date": people["general"][2].isoformat(), "township": "金城鎮"}, expect=409)
    st.say(f"registering 陳志明 twice is refused: [yellow]{dup['code']}[/]")

    st.step("Applications and eligibility")
    refused = st.call("POST", "/cards/applications",
                      {"cardholder_id": ids["too_young"], "product": "senior"}, expect=422)
    st.say(f"林大同 (turns 65 tomorrow) applies for a senior card: [yellow]refused[/], rule "
           f"[bold]{refused['rule']}[/] — {refused['detail']}")
    phone_private = ec.generate_private_key(ec.SECP256R1())  # stays on the phone
    der = phone_private.public_key().public_bytes(serialization.Encoding.DER,
                           serialization.PublicFormat.SubjectPublicKeyInfo)
    plan = [("general", "general", {}), ("senior", "senior", {}), ("student", "student", {}),
            ("disability", "senior", {}), ("companion", "senior", {}),
            ("mobile", "mobile", {"device_id": "android-7f3a9c21e5b4",
                                  "device_public_key": base64.b64encode(der).decode()})]
    cards: dict[str, dict[str, Any]] = {}
    for who, product, extra in plan:
        app = st.call("POST", "/cards/applications",
                      {"cardholder_id": ids[who], "product": product, **extra}, expect=201)
        issued = st.call("POST", f"/cards/{app['id']}/issue", {})  # blank chip on the reader
        card = st.call("POST", f"/cards/{app['id']}/activate")
        cards[who] = card
        chip = f"chip {issued['chip_uid']} personalised" if issued["chip_uid"] else "on the phone"
        st.say(f"{people[who][0]:<4} {product:<8} concession={card['concession']:<10} "
               f"card {card['card_number']}  valid until {card['expires_on']}  {chip}  → "
               f"[green]{card['status']}[/]")

    st.step("Top-up with cash at the counter")
    gen = cards["general"]
    k = f"demo-topup-{uuid.uuid4()}"
    out = st.call("POST", f"/cards/{gen['id']}/topups", {"amount": 500}, key=k)
    load = out["card_loads"][0]
    st.say(f"陳志明 tops up NT$500 → balance NT${out['balance']}; the backend authorised the "
           f"load and the chip now holds NT${load['card_balance']} ({load['status']})")
    again = st.call("POST", f"/cards/{gen['id']}/topups", {"amount": 500}, key=k)
    st.say(f"the counter PC retries the same request (same Idempotency-Key) → balance still "
           f"NT${again['balance']}, charged once")
    mob = cards["mobile"]
    st.call("POST", f"/cards/{mob['id']}/topups", {"amount": 200}, key=f"demo-{uuid.uuid4()}")
    fee = st.call("POST", f"/cards/{mob['id']}/charges",
                  {"amount": 20, "description": "land office copy fee"},
                  key=f"demo-{uuid.uuid4()}")
    st.say(f"張家豪 tops up his mobile card NT$200 and pays a NT$20 land-office fee from its "
           f"account-held purse → NT${fee['balance']}")

    libraries = Libraries(st, rt)
    libraries.link(ids["general"], gen, admin_password)

    st.step("Lost card and replacement")
    st.call("POST", f"/cards/{gen['id']}/suspend", {"kind": "lost",
                                                    "reason": "resident reports card lost"})
    st.say(f"card {gen['card_number']} reported lost → [yellow]suspended[/]")
    libraries.after_lost(gen)
    bad = st.call("POST", f"/cards/{gen['id']}/topups", {"amount": 100},
                  key=f"demo-{uuid.uuid4()}", expect=409)
    st.say(f"a top-up on the lost card is refused: [yellow]{bad['code']}[/]")
    rep = st.call("POST", f"/cards/{gen['id']}/replace",
                  {"reason": "lost", "fee_payment": "cash"},
                  key=f"demo-{uuid.uuid4()}")  # a blank card on the counter reader
    chip_load = (rep.get("card_loads") or [{}])[0]
    st.say(f"replacement card {rep['new_card']['card_number']} personalised (chip "
           f"{rep['new_card']['chip_uid']}) and active; NT${rep['balance_moved']} carried over "
           f"and loaded onto the new chip (holds NT${chip_load.get('card_balance')}); "
           f"NT${rep['fee']} fee paid in cash")
    illegal = st.call("POST", f"/cards/{gen['id']}/reinstate",
                      {"reason": "found it after all"}, expect=409)
    st.say(f"reinstating the replaced card: [yellow]{illegal['code']}[/] — {illegal['detail']}")
    libraries.after_replacement(gen, rep["new_card"])

    sales = _shops(st, rt, rep["new_card"], gen, cards["mobile"], phone_private)
    demo_einvoice.chapter(st, today, sales, ids["general"], cards["mobile"])
    demo_events.chapter(st, rt, {"陳志明": rep["new_card"], "王小華": cards["student"]},
                        cards["mobile"], phone_private, ids["general"], admin_password)
    demo_transit.chapter(st, rt, {"李秀英": cards["senior"], "王小華": cards["student"],
                                  "陳志明": rep["new_card"], "黃美玲": cards["disability"],
                                  "黃建國": cards["companion"]}, today)
    _water_bill(st, cards["mobile"], today)

    st.step("Closing a card with a cash refund")
    sen = cards["senior"]
    st.call("POST", f"/cards/{sen['id']}/topups", {"amount": 300}, key=f"demo-{uuid.uuid4()}")
    closed = st.call("POST", f"/cards/{sen['id']}/close",
                     {"reason": "moving to Taiwan island"}, key=f"demo-{uuid.uuid4()}")
    st.say(f"李秀英 closes card {sen['card_number']}: pay out [bold]NT${closed['refund_cash']}"
           f"[/] in cash; card {closed['card']['status']}")

    st.step("Reading personal data needs a purpose")
    rec = st.call("GET", f"/cardholders/{ids['general']}", purpose="verify identity for "
                  "replacement")
    st.say(f"clerk reads 陳志明's record: national ID shown as {rec['person_id_masked']}")

    st.step("Issuance statistics for the council")
    st.login("sup.wu", "sup.wu-Passw0rd")
    period: dict[str, Any] = {"from": today.isoformat(), "to": today.isoformat()}
    report = st.call("GET", "/stats/issuance", **period)
    st.c.print(reports.issuance_table(IssuanceReport.model_validate(report)))

    st.step("The auditor checks the audit trail")
    st.login("audit.kao", "audit.kao-Passw0rd")
    forbidden = st.call("GET", f"/cardholders/{ids['general']}", expect=403,
                        purpose="curiosity", reveal="true")
    st.say(f"the auditor asks for a full national ID: [yellow]{forbidden['code']}[/]")
    events = st.call("GET", "/audit/events", limit=500)
    st.say(f"{len(events)} audit rows, e.g. " + ", ".join(
        sorted({e["action"] for e in events if e["action"].startswith(("money.", "card.s"))})))
    verdict = st.call("GET", "/audit/verify")
    if not verdict["ok"]:
        raise DemoFailed(f"audit verify failed: {verdict}")
    st.say(f"[bold green]audit verify: chain intact[/] ({verdict['rows_checked']} rows)")

    st.step("The day's clearing: statements, exceptions and the payout file")
    window = clearing.run_in_process(rt, today)
    reports.print_clearing(clearing.report(rt, today), st.c)
    names = sorted(clearing.files_of(rt, today))
    st.say(f"window {window.business_date} is {window.status}: {window.records} records; "
           f"files: {', '.join(names)} (`cardsvc settle report --out DIR` writes them)")
    demo_transit.statement(st, rt, today)
    _checkpoint(st, rt)


def _checkpoint(st: Story, rt: Runtime) -> None:
    """The day ends with its signed audit checkpoint, written as the nightly task writes it,
    and checked as the ethics office checks its copy: with the public key, not the host."""

    st.step("The day's signed audit checkpoint")
    audit.seal_all(rt.sessions)
    with unit_of_work(rt.sessions) as db:
        written = checkpoints.write(rt.ctx(db, Actor.system("audit-checkpoint")),
                                    rt.settings.audit_checkpoint_dir)
    cp = written.checkpoint
    st.say(f"wrote {written.json_path} (and {written.text_path.name} to print for the "
           f"council): rows 1..{cp.rows}, Merkle root {cp.merkle_root}, signed with key "
           f"{cp.key_id}")
    keys = signing.public_keys(rt.keys.secrets)  # what `cardsvc audit public-key` writes
    copy = json.loads(written.json_path.read_text(encoding="utf-8"))
    verdict = checkpoints.verify_checkpoint(copy, keys)
    if not verdict.ok:
        raise DemoFailed(f"the checkpoint does not verify: {verdict.detail}")
    st.say(f"[bold green]checkpoint verified with the public key only[/] (key {cp.key_id}, "
           f"fingerprint {checkpoints.grouped(checkpoints.fingerprint(keys[cp.key_id]))})")
    with rt.sessions() as db:
        row = db.scalar(select(AuditEvent.id).where(AuditEvent.action == "money.topup")
                        .order_by(AuditEvent.id))
        if row is None:
            raise DemoFailed("no top-up in the audit trail")
        proof = checkpoints.prove(db, row, cp)
    verdict = checkpoints.verify_proof(proof, copy, keys)
    if not verdict.ok:
        raise DemoFailed(f"the inclusion proof does not verify: {verdict.detail}")
    st.say(f"row {row} ({proof['row']['action']}) proved to be in the signed trail with "
           f"{len(proof['audit_path'])} hashes; a database rewrite of any row up to "
           f"{cp.rows} contradicts this file")


def _water_bill(st: Story, mobile: dict[str, Any], today: dt.date) -> None:
    """The water plant imports its bills; a resident's bill is found by its slip's barcodes
    and paid from the mobile card; the receipt is checked."""

    st.step("The water plant's bills: import, slip barcodes, payment, receipt")
    plant = st.call("POST", "/merchants", {"legal_name": "金門縣自來水廠", "tax_id": "76014406",
                                           "category": "utility", "fee_bps": 0,
                                           "bank_account": "004-00099988877"}, expect=201)
    biller = st.call("POST", "/billers", {"merchant_id": plant["id"], "code": "KMWATER",
                                          "collection_code": "KW1", "grace_days": 7},
                     expect=201)
    due = (today + dt.timedelta(days=14)).isoformat()
    csv_text = ("account_number,bill_number,period,amount,due_date,payer_name\n"
                f"K0012345,WB11511000012345,1511,386,{due},張家豪\n"
                f"K0067890,WB11511000067890,1511,254,{due},李秀英\n")
    r = st.client.post(f"/billers/{biller['id']}/bills/import", content=csv_text.encode(),
                       headers={"Authorization": f"Bearer {st.token}",
                                "Content-Type": "text/csv"})
    if r.status_code != 200:
        raise DemoFailed(f"bill import refused: {r.text}")
    st.say(f"金門縣自來水廠 imports {r.json()['rows']} bills (NT${r.json()['amount']})")
    bill = st.call("GET", "/bills", account_number="K0012345")[0]
    s1, s2, s3 = bill["barcodes"]
    st.say(f"the slip of water account K0012345 ({bill['payer_name_masked']}): barcodes "
           f"{s1} / {s2} / {s3} (check characters {s3[4:6]})")
    typo = st.call("POST", "/bills/lookup", {"segment1": s1, "segment2": s2,
                                             "segment3": s3[:-1] + "7"}, expect=422)
    st.say(f"a mistyped slip: [yellow]{typo['code']}[/], segment {typo['segment']}")
    found = st.call("POST", "/bills/lookup", {"segment1": s1, "segment2": s2, "segment3": s3})
    st.call("POST", f"/cards/{mobile['id']}/topups", {"amount": 500}, key=str(uuid.uuid4()))
    paid = st.call("POST", f"/bills/{found['id']}/payments", {"card_id": mobile["id"]},
                   key=str(uuid.uuid4()))
    st.say(f"張家豪 pays NT${paid['amount']} from his mobile card at the counter → purse "
           f"NT${paid['purse_balance']}")
    again = st.call("POST", f"/bills/{found['id']}/payments", {"card_id": mobile["id"]},
                    expect=409, key=str(uuid.uuid4()))
    st.say(f"paying the same bill again: [yellow]{again['code']}[/]")
    check = st.call("GET", "/receipts/verify", receipt=paid["receipt"])
    st.say(f"the receipt's QR code checked by anyone: valid={check['valid']} "
           f"({check['biller']}, NT${check['amount']})")


def _shops(st: Story, rt: Runtime, card: dict[str, Any], lost: dict[str, Any],
           mobile: dict[str, Any], phone_private: Any
           ) -> list[tuple[PosClient, str, dict[str, Any], str]]:
    """Two merchants' terminals, through the signed POS API. Returns the day's sales, with
    the invoice number each shop will report for it."""

    st.step("Shops: a card tap, a QR payment, a refund")
    st.login("clerk.lin", "clerk.lin-Passw0rd")
    with unit_of_work(rt.sessions) as db:  # what a terminal is provisioned with: debit keys
        debit = KeyStore(db, rt.keys.secrets.kek, rt.keys.secrets.system_id).masters(
            KeyPurpose.DEBIT)
    terminals = {}
    for name, tax_id, category, fee in (("金門縣陶瓷廠", "10458575", "government", 0),
                                         ("金城老街貢糖行", "53212539", "retail", 150)):
        m = st.call("POST", "/merchants", {"legal_name": name, "tax_id": tax_id,
                                           "category": category, "fee_bps": fee,
                                           "bank_account": "004-00012345678"}, expect=201)
        t = st.call("POST", f"/merchants/{m['id']}/terminals", {"label": "POS 1"}, expect=201)
        terminals[name] = SimulatedPos(PosClient(st.client, t["key_id"], t["secret"]), t["id"],
                                       debit, rt.keys.secrets.system_id)
        st.say(f"merchant {name} (統一編號 {tax_id}, fee {fee / 100:.2f}%) with terminal "
               f"{t['id']}; key {t['key_id']} — its secret is shown once")
    factory = terminals["金門縣陶瓷廠"]
    factory.refresh_hotlist()

    def on_reader(c: dict[str, Any]) -> InProcessReader:
        path = rt.settings.sim_cards_dir / f"{c['chip_uid']}.json"
        return InProcessReader(VirtualCard(bytes.fromhex(c["chip_uid"]), path))

    tap = factory.tap(on_reader(card), 120)
    if tap.status != "accepted" or tap.response is None:
        raise DemoFailed(f"card tap refused: {tap.response}")
    st.say(f"陳志明 taps his new card at 金門縣陶瓷廠 for NT$120: the terminal debits the chip, "
           f"the backend verifies its certificate → [green]accepted[/], balance "
           f"NT${tap.response['purse_balance']}")
    try:
        factory.tap(on_reader(lost), 50)
        raise DemoFailed("the lost card was accepted")
    except TerminalRefusal as exc:
        st.say(f"someone tries the lost card {lost['card_number']}: the terminal refuses it "
               f"([yellow]{exc.code}[/]) from its hotlist")
    shop = terminals["金城老街貢糖行"]
    token = make_payment_token(phone_private, mobile["card_number"],
                               rt.settings.qr_token_ttl_seconds)
    qr = shop.qr_purchase(token, 60)
    if qr.get("status") != "accepted":
        raise DemoFailed(f"QR payment refused: {qr}")
    st.say(f"張家豪 shows a QR code on his phone at 金城老街貢糖行: NT$60 debited online → "
           f"balance NT${qr['purse_balance']}")
    again = shop.qr_purchase(token, 60)
    st.say(f"the same QR code scanned again: [yellow]{again['code']}[/]")
    refund = factory.refund(tap.response["transaction_id"], 20)
    st.say(f"金門縣陶瓷廠 refunds NT$20 of the tap → balance NT${refund['purse_balance']}; the "
           f"NT$20 reaches the chip at the next counter visit")
    ride = factory.tap(on_reader(card), 35, online=False)
    batch = factory.upload_offline()
    if ride.status != "stored" or batch is None:
        raise DemoFailed(f"offline tap not stored: {ride.status}")
    st.say(f"the terminal goes offline: a NT$35 tap is kept on the terminal, then uploaded as "
           f"batch {batch['batch_id']} ({batch['records']} record) — clearing verifies it")
    return [(factory.client, "10458575", tap.response, "KM" + demo_einvoice.FIRST),
            (shop.client, "53212539", qr, "TG12340" + demo_einvoice.EXTRA_SIXTH)]
