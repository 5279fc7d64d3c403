"""The demo's bus chapter: the operator's signed fare table, a validator on a county bus, and
who pays what — a senior rides free, a student at the student fare, a general card the full
fare, and a student who left school yesterday pays the full fare and is told why (the
validator writes his card's new profile at the tap). After the day's clearing, the month's
subsidy statement names what each programme owes."""

from __future__ import annotations

import datetime as dt
import uuid
from typing import Any

from cardsvc.app import reports
from cardsvc.app.story import DemoFailed, Story
from cardsvc.context import Actor, Ctx
from cardsvc.db import unit_of_work
from cardsvc.identifiers import person_id_check_digit
from cardsvc.keystore.service import KeyStore
from cardsvc.runtime import Runtime
from merchants.pos.client import PosClient
from readers.memory import InProcessReader
from readers.protocol import KeyPurpose
from settlement.subsidies import service as subsidies
from simulators.bus import BusValidator
from simulators.card import VirtualCard

ROUTE = "3"  # 金城—山外


def _on_reader(rt: Runtime, card: dict[str, Any]) -> InProcessReader:
    path = rt.settings.sim_cards_dir / f"{card['chip_uid']}.json"
    return InProcessReader(VirtualCard(bytes.fromhex(card["chip_uid"]), path))


def chapter(st: Story, rt: Runtime, riders: dict[str, dict[str, Any]],
            today: dt.date) -> None:
    st.step("County buses: fares by card product, free rides paid by the programme budget")
    st.login("sup.wu", "sup.wu-Passw0rd")
    op = st.call("POST", "/merchants", {
        "legal_name": "金門縣公共車船管理處", "tax_id": "69115908", "category": "transit",
        "fee_bps": 0, "bank_account": "004-00098765432"}, expect=201)
    table = st.call("POST", f"/transit/operators/{op['id']}/fare-tables", {"routes": {
        ROUTE: {"full": 30, "student": 15, "half": 15},
        "1": {"full": 20, "student": 10, "half": 10}}}, expect=201)
    st.say(f"fare table v{table['version']} for 金門縣公共車船管理處, signed with key "
           f"{table['key_id']}: route {ROUTE} full NT$30, student NT$15; seniors, 愛心 and "
           f"their companion ride {table['classes']['senior']}")
    keys = st.call("GET", "/transit/public-keys")["keys"]
    t = st.call("POST", f"/merchants/{op['id']}/terminals", {"label": "KM-BUS-017"},
                expect=201)
    with unit_of_work(rt.sessions) as db:  # what a validator is provisioned with
        debit = KeyStore(db, rt.keys.secrets.kek, rt.keys.secrets.system_id).masters(
            KeyPurpose.DEBIT)
    bus = BusValidator(PosClient(st.client, t["key_id"], t["secret"]), t["id"], debit,
                       rt.keys.secrets.system_id, operator_id=op["id"], route=ROUTE,
                       public_keys=keys)
    held = bus.refresh_fares()
    st.say(f"the validator on bus KM-BUS-017 fetched table v{held.version} and verified its "
           "signature with the backend's public key")

    st.login("clerk.lin", "clerk.lin-Passw0rd")
    leaver = st.call("POST", "/cardholders", {
        "name": "吳宗翰", "person_id": "W10000008" + person_id_check_digit("W10000008"),
        "birth_date":
        (today - dt.timedelta(days=365 * 18 + 30)).isoformat(), "township": "金湖鎮"},
        expect=201)
    enrolment = st.call("POST", f"/cardholders/{leaver['id']}/enrolments", {
        "school": "金門農工", "valid_until": (today + dt.timedelta(days=200)).isoformat()},
        expect=201)
    app = st.call("POST", "/cards/applications", {"cardholder_id": leaver["id"],
                                                  "product": "student"}, expect=201)
    st.call("POST", f"/cards/{app['id']}/issue", {})
    card = st.call("POST", f"/cards/{app['id']}/activate")
    for who in ("王小華", "吳宗翰"):
        c = card if who == "吳宗翰" else riders[who]
        st.call("POST", f"/cards/{c['id']}/topups", {"amount": 100},
                key=f"demo-{uuid.uuid4()}")
    riders = {**riders, "吳宗翰": card}
    yesterday = today - dt.timedelta(days=1)
    st.call("PATCH", f"/cardholders/{leaver['id']}/enrolments/{enrolment['id']}",
            {"valid_until": yesterday.isoformat(), "note": "left school"})
    st.say(f"吳宗翰's school reports he left on {yesterday}: his card's concession now ends "
           "then, and a profile update waits for his card's next tap")
    bus.refresh_profile_updates()

    at = dt.datetime.now(dt.UTC) - dt.timedelta(minutes=40)
    for who in riders:
        # Riders a few minutes apart; a companion boards with the 愛心 holder.
        at += dt.timedelta(seconds=20 if who == "黃建國" else 180)
        result = bus.ride(_on_reader(rt, riders[who]), when=int(at.timestamp()))
        if result.status != "accepted":
            raise DemoFailed(f"{who}'s ride refused: {result.response}")
        updated = " (profile updated at this tap)" if result.profile_written else ""
        st.say(f"{who} taps: pays [bold]NT${result.fare}[/] of NT${result.full_fare} — "
               f"{result.message}{updated}")


def statement(st: Story, rt: Runtime, today: dt.date) -> None:
    st.step("The month's subsidy statement for the funding departments")
    with unit_of_work(rt.sessions) as db:
        ctx = Ctx(db, rt.settings, rt.keys, Actor.system("demo"))
        out = subsidies.statement(ctx, today.strftime("%Y-%m"))
    st.c.print(reports.subsidy_table(out))
    if not out.rows:
        raise DemoFailed("no subsidy claims after the day's clearing")
    st.say("each programme approves its line; `cardsvc transit statement --month "
           f"{out.month} --csv FILE --chart FILE` writes the CSV and the chart")
