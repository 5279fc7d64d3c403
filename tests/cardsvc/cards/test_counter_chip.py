"""The counter with a chip: issue → personalise → top-up → load → a terminal's debit → the
backend verifies the card's certificate. On the simulated counter reader (embedded default)
and through the real PC/SC stack (pcscd + vpcd)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from cardsvc.app.http import create_app
from cardsvc.db import unit_of_work
from cardsvc.keystore.service import KeyStore
from readers.base import Reader
from readers.memory import InProcessReader
from readers.protocol import KeyPurpose
from readers.session import CardSession
from simulators.card import TearPlan, VirtualCard
from tests.support import factories as f
from tests.support.api import PASSWORD, Api
from tests.support.chipkit import new_uid
from tests.support.pcsc import pcsc_reader_name


def clerk_api(client: TestClient) -> Api:
    r = client.post("/auth/login", json={"username": "t.clerk", "password": PASSWORD})
    return Api(client, r.json()["access_token"])


def terminal_debit(rt, reader: Reader, amount: int, seq: int) -> dict:  # type: ignore[no-untyped-def]
    """A POS terminal: it holds only the debit master keys."""
    with unit_of_work(rt.sessions) as db:
        masters = KeyStore(db, rt.keys.secrets.kek, rt.keys.secrets.system_id).masters(
            KeyPurpose.DEBIT)
    s = CardSession(reader, rt.keys.secrets.system_id)
    s.select()
    auth = s.authenticate_with_master(KeyPurpose.DEBIT, masters)
    rec = s.debit(amount, terminal_id=501, terminal_seq=seq, when=1_790_000_000).record
    assert auth.info is not None
    return {"tx_type": "debit", "counter": rec.counter, "amount": rec.amount,
            "balance_after": rec.balance_after, "terminal_id": rec.terminal_id,
            "terminal_seq": rec.terminal_seq, "time": rec.time,
            "certificate": rec.certificate.hex()}


def supplied_blank(rt, path: Path) -> VirtualCard:  # type: ignore[no-untyped-def]
    """A blank card as the supplier delivers it: with its own transport key."""
    uid = new_uid()
    with unit_of_work(rt.sessions) as db:
        key = KeyStore(db, rt.keys.secrets.kek, rt.keys.secrets.system_id).transport_key(uid)
    return VirtualCard(uid, path, transport_key=key)


def new_application(api: Api) -> dict:  # type: ignore[type-arg]
    h = f.holder(api)
    return api.ok("POST", "/cards/applications", {"cardholder_id": h["id"],
                                                  "product": "general"}, status=201)


@pytest.fixture
def sim_counter(runtime_factory, tmp_path) -> Iterator[tuple]:  # type: ignore[no-untyped-def, type-arg]
    rt = runtime_factory(reader="sim", sim_cards_dir=tmp_path / "cards")
    with TestClient(create_app(rt)) as client:
        yield rt, clerk_api(client), tmp_path / "cards"


def test_simulated_counter_issue_load_debit_verify(sim_counter) -> None:  # type: ignore[no-untyped-def]
    rt, api, cards_dir = sim_counter
    app = new_application(api)
    card = api.ok("POST", f"/cards/{app['id']}/issue", {})
    assert card["status"] == "issued" and card["chip_uid"]
    state = json.loads((cards_dir / f"{card['chip_uid']}.json").read_text())
    assert state["locked"] and state["personalised"]
    assert bytes.fromhex(state["info"][:16]).hex() == card["card_number"]
    api.ok("POST", f"/cards/{card['id']}/activate")
    out = api.ok("POST", f"/cards/{card['id']}/topups", {"amount": 500}, key=f.key())
    assert out["balance"] == 500
    assert [(ld["status"], ld["card_balance"]) for ld in out["card_loads"]] == [("delivered", 500)]
    chip = VirtualCard(bytes.fromhex(card["chip_uid"]), cards_dir / f"{card['chip_uid']}.json")
    cert = terminal_debit(rt, InProcessReader(chip), 120, seq=1)
    assert cert["balance_after"] == 380
    assert api.ok("POST", f"/cards/{card['id']}/certificates/verify", cert)["valid"] is True
    forged = dict(cert, amount=12)
    assert api.ok("POST", f"/cards/{card['id']}/certificates/verify", forged)["valid"] is False


def chip_profile(rt, chip: VirtualCard):  # type: ignore[no-untyped-def]
    with unit_of_work(rt.sessions) as db:
        masters = KeyStore(db, rt.keys.secrets.kek, rt.keys.secrets.system_id).masters(
            KeyPurpose.DEBIT)
    s = CardSession(InProcessReader(chip), rt.keys.secrets.system_id)
    s.select()
    return s.authenticate_with_master(KeyPurpose.DEBIT, masters).profile


def test_concession_profile_written_at_issue_and_updated_at_the_counter(sim_counter) -> None:  # type: ignore[no-untyped-def]
    """A student card's chip carries the enrolment's end; a new enrolment queues a profile
    update, which the counter writes when the card is on its reader."""
    import datetime as dt
    rt, api, cards_dir = sim_counter
    h = f.holder(api, age=17)
    until = f.today() + dt.timedelta(days=40)
    api.ok("POST", f"/cardholders/{h['id']}/enrolments",
           {"school": "金門高中", "valid_until": until.isoformat()}, status=201)
    app = api.ok("POST", "/cards/applications", {"cardholder_id": h["id"],
                                                 "product": "student"}, status=201)
    card = api.ok("POST", f"/cards/{app['id']}/issue", {})
    chip = VirtualCard(bytes.fromhex(card["chip_uid"]), cards_dir / f"{card['chip_uid']}.json")
    profile = chip_profile(rt, chip)
    assert (profile.concession, profile.ends_on, profile.version) == ("student", until, 1)
    nxt = until + dt.timedelta(days=365)
    api.ok("POST", f"/cardholders/{h['id']}/enrolments",
           {"school": "金門高中", "valid_until": nxt.isoformat()}, status=201)
    assert chip_profile(rt, VirtualCard(chip.uid, chip.state_path)).ends_on == until
    assert api.ok("POST", f"/cards/{card['id']}/card-loads/deliver") == []  # no loads
    profile = chip_profile(rt, VirtualCard(chip.uid, chip.state_path))
    assert (profile.ends_on, profile.version) == (nxt, 2)
    from sqlalchemy import select

    from cardsvc.cards.models import ProfileUpdate
    with rt.sessions() as db:
        u = db.scalar(select(ProfileUpdate).where(ProfileUpdate.card_id == card["id"]))
        assert u is not None and (u.status, u.delivered_by) == ("delivered", "counter")


def test_a_personalised_chip_cannot_be_issued_again(sim_counter) -> None:  # type: ignore[no-untyped-def]
    _rt, api, _ = sim_counter
    app = new_application(api)
    card = api.ok("POST", f"/cards/{app['id']}/issue", {})
    r = api.post(f"/cards/{card['id']}/issue", {})
    assert r.status_code == 409 and r.json()["code"] == "illegal_transition"


def test_master_keys_are_wrapped_and_never_in_answers(sim_counter) -> None:  # type: ignore[no-untyped-def]
    rt, api, _ = sim_counter
    with unit_of_work(rt.sessions) as db:
        store = KeyStore(db, rt.keys.secrets.kek, rt.keys.secrets.system_id)
        masters = {p: store.masters(p) for p in KeyPurpose}
    from sqlalchemy import text
    with rt.engine.connect() as conn:
        wrapped = " ".join(r[0] for r in conn.execute(text("SELECT wrapped FROM card_master_keys")))
    app = new_application(api)
    card = api.ok("POST", f"/cards/{app['id']}/issue", {})
    everything = json.dumps(card) + api.req("GET", "/openapi.json").text
    for versions in masters.values():
        for key in versions.values():
            assert key.hex() not in wrapped and key.hex() not in everything
            assert key.hex().upper() not in everything


# --- through pcscd ------------------------------------------------------------------------


@pytest.fixture
def pcsc_counter(runtime_factory, vpcd_slot, tmp_path) -> Iterator[tuple]:  # type: ignore[no-untyped-def, type-arg]
    rt = runtime_factory(reader=f"pcsc:{pcsc_reader_name()}", reader_timeout_seconds=5)
    with TestClient(create_app(rt)) as client:
        yield rt, clerk_api(client), vpcd_slot


def test_pcsc_issue_load_debit_verify(pcsc_counter, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    from readers.pcsc import PcscReader
    rt, api, slot = pcsc_counter
    chip = supplied_blank(rt, tmp_path / "chip.json")
    slot.insert(chip)
    app = new_application(api)
    card = api.ok("POST", f"/cards/{app['id']}/issue", {})
    assert card["chip_uid"] == chip.uid.hex().upper()
    api.ok("POST", f"/cards/{card['id']}/activate")
    out = api.ok("POST", f"/cards/{card['id']}/topups", {"amount": 800}, key=f.key())
    assert out["card_loads"][0]["status"] == "delivered"
    assert chip.state["purse"]["balance"] == 800
    reader = PcscReader(pcsc_reader_name())
    assert reader.wait_for_card(5)
    cert = terminal_debit(rt, reader, 250, seq=7)
    reader.close()
    assert cert["balance_after"] == 550
    assert api.ok("POST", f"/cards/{card['id']}/certificates/verify", cert)["valid"] is True


def test_pcsc_torn_load_is_delivered_once_at_the_next_tap(pcsc_counter, tmp_path) -> None:  # type: ignore[no-untyped-def]
    rt, api, slot = pcsc_counter
    chip = supplied_blank(rt, tmp_path / "chip.json")
    runner = slot.insert(chip)
    app = new_application(api)
    card = api.ok("POST", f"/cards/{app['id']}/issue", {})
    api.ok("POST", f"/cards/{card['id']}/activate")
    # SELECT, AUTH, AUTH, LOAD: the power goes after the journal write of the LOAD.
    chip.arm(TearPlan(4, "journaled"))
    out = api.ok("POST", f"/cards/{card['id']}/topups", {"amount": 300}, key=f.key())
    assert out["balance"] == 300  # the top-up itself stands
    assert out["card_loads"][0]["status"] == "pending" and "tap" in out["card_load_note"]
    assert runner.tears == 1
    # Tapped again: the card rolled its journal forward at power-up; the counter's retry is
    # recognised by its load id and not applied twice.
    delivered = api.ok("POST", f"/cards/{card['id']}/card-loads/deliver")
    assert delivered[0]["status"] == "delivered" and delivered[0]["card_balance"] == 300
    assert delivered[0]["recovered"] is True
    assert chip.state["purse"]["balance"] == 300
    assert api.ok("GET", f"/cards/{card['id']}/card-loads")[0]["status"] == "delivered"


def test_replacement_personalises_a_new_chip_and_loads_the_balance(sim_counter) -> None:  # type: ignore[no-untyped-def]
    _, api, cards_dir = sim_counter
    app = new_application(api)
    old = api.ok("POST", f"/cards/{app['id']}/issue", {})
    api.ok("POST", f"/cards/{old['id']}/activate")
    api.ok("POST", f"/cards/{old['id']}/topups", {"amount": 640}, key=f.key())
    api.ok("POST", f"/cards/{old['id']}/suspend", {"kind": "lost", "reason": "lost"})
    rep = api.ok("POST", f"/cards/{old['id']}/replace", {"reason": "lost", "fee_payment": "purse"},
                 key=f.key())
    new = rep["new_card"]
    assert new["chip_uid"] and new["chip_uid"] != old["chip_uid"]
    assert rep["new_balance"] == 540
    assert rep["card_loads"][0]["status"] == "delivered"
    state = json.loads((cards_dir / f"{new['chip_uid']}.json").read_text())
    assert state["locked"] and state["purse"]["balance"] == 540


def test_counter_charges_are_for_account_held_purses(sim_counter) -> None:  # type: ignore[no-untyped-def]
    _, api, _ = sim_counter
    app = new_application(api)
    card = api.ok("POST", f"/cards/{app['id']}/issue", {})
    api.ok("POST", f"/cards/{card['id']}/activate")
    api.ok("POST", f"/cards/{card['id']}/topups", {"amount": 100}, key=f.key())
    r = api.post(f"/cards/{card['id']}/charges", {"amount": 10, "description": "fee"},
                 key=f.key())
    assert r.status_code == 409 and r.json()["code"] == "chip_purse"
    assert api.ok("GET", f"/cards/{card['id']}/purse")["balance"] == 100


def test_a_blank_card_with_the_factory_default_key_is_refused(pcsc_counter, tmp_path) -> None:  # type: ignore[no-untyped-def]
    """Blank cards carry per-card transport keys; a card with a well-known key is not ours."""
    _, api, slot = pcsc_counter
    slot.insert(VirtualCard(new_uid(), tmp_path / "foreign.json"))
    app = new_application(api)
    r = api.post(f"/cards/{app['id']}/issue", {})
    assert r.status_code == 409 and r.json()["code"] in ("chip_refused",)
    assert api.ok("GET", f"/cards/{app['id']}")["status"] == "applied"


def test_a_card_emulator_with_the_debit_key_cannot_take_a_load(sim_counter) -> None:  # type: ignore[no-untyped-def]
    """Loads are delivered in a load-key session: something that holds only the debit key
    (any terminal) can neither open it nor fake the counter the backend authorises."""
    rt, api, cards_dir = sim_counter
    app = new_application(api)
    card = api.ok("POST", f"/cards/{app['id']}/issue", {})
    api.ok("POST", f"/cards/{card['id']}/activate")
    api.ok("POST", f"/cards/{card['id']}/topups", {"amount": 100, "load_card": False},
           key=f.key())
    chip = VirtualCard(bytes.fromhex(card["chip_uid"]), cards_dir / f"{card['chip_uid']}.json")
    with unit_of_work(rt.sessions) as db:
        store = KeyStore(db, rt.keys.secrets.kek, rt.keys.secrets.system_id)
        debit = store.masters(KeyPurpose.DEBIT)
    s = CardSession(InProcessReader(chip), rt.keys.secrets.system_id)
    s.select()
    s.authenticate_with_master(KeyPurpose.DEBIT, debit)
    from readers.errors import SecurityStatusNotSatisfied
    with pytest.raises(SecurityStatusNotSatisfied):
        s.load(100, 1, 1, 1, bytes(8))


def test_a_pcsc_reader_in_another_session_is_busy(runtime_factory, vpcd_slot, tmp_path) -> None:  # type: ignore[no-untyped-def]
    """One card session per PC/SC reader: while another holds it (here, another process's
    lock on the same reader), the counter answers reader_busy and leaves the card alone."""
    from readers.locks import SessionLock, lock_path_for_reader
    rt = runtime_factory(reader=f"pcsc:{pcsc_reader_name()}", reader_timeout_seconds=0.5,
                         reader_lock_dir=tmp_path / "locks")
    chip = supplied_blank(rt, tmp_path / "chip.json")
    vpcd_slot.insert(chip)
    with TestClient(create_app(rt)) as client:
        api = clerk_api(client)
        app = new_application(api)
        held = SessionLock(lock_path_for_reader(pcsc_reader_name(), tmp_path / "locks"),
                           "reader").acquire(1)
        try:
            r = api.post(f"/cards/{app['id']}/issue", {})
        finally:
            held.release()
        assert r.status_code == 409 and r.json()["code"] == "reader_busy"
        assert not chip.state["personalised"]
        card = api.ok("POST", f"/cards/{app['id']}/issue", {})  # free again: it goes through
        assert card["chip_uid"] == chip.uid.hex().upper()
