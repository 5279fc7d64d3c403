"""One chip session per card and per reader at a time: concurrent top-ups of one chip card
each reach the chip exactly once, and the backend never takes a chip answer that repeats a
counter as a delivery. Runs on the database the suite runs on (SQLite, and PostgreSQL in CI's
second pass), with real threads, connections and commits through the API."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select

from cardsvc.app.http import create_app
from cardsvc.audit.models import AuditEvent
from cardsvc.cards.models import CardLoad
from cardsvc.db import unit_of_work
from tests.support import factories as f
from tests.support.api import PASSWORD, Api

TOPUPS = 20
AMOUNT = 400


@pytest.fixture
def counter(runtime_factory, tmp_path: Path) -> Iterator[tuple]:  # type: ignore[no-untyped-def, type-arg]
    rt = runtime_factory(reader="sim", sim_cards_dir=tmp_path / "cards")
    with TestClient(create_app(rt)) as client:
        r = client.post("/auth/login", json={"username": "t.clerk", "password": PASSWORD})
        yield rt, Api(client, r.json()["access_token"]), tmp_path / "cards"


@pytest.fixture
def supervisor_api(counter) -> Api:  # type: ignore[no-untyped-def]
    api: Api = counter[1]
    r = api.client.post("/auth/login", json={"username": "t.supervisor", "password": PASSWORD})
    return Api(api.client, r.json()["access_token"])


def chip_card(api: Api) -> dict:  # type: ignore[type-arg]
    h = f.holder(api)
    app = api.ok("POST", "/cards/applications", {"cardholder_id": h["id"], "product": "general"},
                 status=201)
    card = api.ok("POST", f"/cards/{app['id']}/issue", {})
    return api.ok("POST", f"/cards/{card['id']}/activate")


def chip_state(cards_dir: Path, card: dict) -> dict:  # type: ignore[type-arg]
    return json.loads((cards_dir / f"{card['chip_uid']}.json").read_text())


def test_concurrent_topups_of_one_chip_card_all_reach_the_chip(counter, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    from readers.locks import LockedReader

    rt, api, cards_dir = counter
    card = chip_card(api)
    barrier = threading.Barrier(TOPUPS)
    close = LockedReader.close

    def close_then_linger(self: LockedReader) -> None:
        close(self)
        time.sleep(0.02)  # whatever the request does after its card session, it does later

    monkeypatch.setattr(LockedReader, "close", close_then_linger)

    def topup(_: int) -> dict:  # type: ignore[type-arg]
        barrier.wait()
        return api.ok("POST", f"/cards/{card['id']}/topups", {"amount": AMOUNT}, key=f.key())

    with ThreadPoolExecutor(TOPUPS) as pool:
        answers = list(pool.map(topup, range(TOPUPS)))

    assert api.ok("GET", f"/cards/{card['id']}/purse")["balance"] == TOPUPS * AMOUNT
    state = chip_state(cards_dir, card)
    assert state["purse"]["balance"] == TOPUPS * AMOUNT  # nothing the ledger holds is lost
    assert state["purse"]["counter"] == TOPUPS
    with unit_of_work(rt.sessions) as db:
        loads = db.scalars(select(CardLoad).where(CardLoad.card_id == card["id"])).all()
        delivered = db.scalars(select(AuditEvent.detail).where(
            AuditEvent.action == "card.load_delivered")).all()
    assert [ld.status for ld in loads] == ["delivered"] * TOPUPS
    assert sorted(ld.card_counter for ld in loads) == list(range(1, TOPUPS + 1))
    # Each delivery once in the audit trail: no session took another's delivered load for a
    # pending one.
    assert len(delivered) == TOPUPS
    # Every counter is told what became of its own load, whichever session delivered it.
    for answer in answers:
        own = [ld for ld in answer["card_loads"] if ld["load_id"] == answer["card_load_id"]]
        assert own and own[0]["status"] == "delivered", answer


def test_a_replayed_topup_tells_what_became_of_its_load(counter) -> None:  # type: ignore[no-untyped-def]
    _rt, api, _ = counter
    card = chip_card(api)
    key = f.key()
    first = api.ok("POST", f"/cards/{card['id']}/topups", {"amount": 300}, key=key)
    r = api.post(f"/cards/{card['id']}/topups", {"amount": 300}, key=key)
    assert r.status_code == 200 and r.headers["Idempotent-Replayed"] == "true"
    again = r.json()
    assert again["transfer_id"] == first["transfer_id"]
    assert again["card_loads"] == first["card_loads"]
    assert again["card_loads"][0]["status"] == "delivered"
    assert again["card_loads"][0]["card_balance"] == 300


def test_a_topup_left_for_the_next_tap_stays_pending_when_replayed(counter) -> None:  # type: ignore[no-untyped-def]
    _rt, api, cards_dir = counter
    card = chip_card(api)
    key = f.key()
    first = api.ok("POST", f"/cards/{card['id']}/topups", {"amount": 250, "load_card": False},
                   key=key)
    assert [ld["status"] for ld in first["card_loads"]] == ["pending"]
    # The same request again, as a counter retries it: the value is not booked twice.
    again = api.ok("POST", f"/cards/{card['id']}/topups", {"amount": 250, "load_card": False},
                   key=key)
    assert again["card_loads"][0]["status"] == "pending"
    delivered = api.ok("POST", f"/cards/{card['id']}/card-loads/deliver")
    assert [d["status"] for d in delivered] == ["delivered"]
    assert chip_state(cards_dir, card)["purse"]["balance"] == 250
    assert api.ok("GET", f"/cards/{card['id']}/purse")["balance"] == 250


def test_a_replay_delivers_a_load_the_first_attempt_could_not(runtime_factory,
                                                             tmp_path: Path) -> None:
    """The first attempt finds the card busy (another session holds it) and leaves the value
    pending; the counter retries the same request once the card is free, and the retry
    loads it."""
    from readers.locks import SessionLock

    rt = runtime_factory(reader="sim", sim_cards_dir=tmp_path / "cards",
                         reader_timeout_seconds=0.3)
    with TestClient(create_app(rt)) as client:
        r = client.post("/auth/login", json={"username": "t.clerk", "password": PASSWORD})
        api = Api(client, r.json()["access_token"])
        card = chip_card(api)
        key = f.key()
        lock = SessionLock(tmp_path / "cards" / f"{card['chip_uid']}.lock", "card").acquire(1)
        try:
            first = api.ok("POST", f"/cards/{card['id']}/topups", {"amount": 320}, key=key)
        finally:
            lock.release()
        assert [ld["status"] for ld in first["card_loads"]] == ["pending"]
        again = client.post(f"/cards/{card['id']}/topups", json={"amount": 320},
                            headers={**api.headers, "Idempotency-Key": key})
        assert again.status_code == 200 and again.headers["Idempotent-Replayed"] == "true"
        body = again.json()
        assert body["transfer_id"] == first["transfer_id"]  # booked once
        assert [(ld["status"], ld["card_balance"]) for ld in body["card_loads"]] == [
            ("delivered", 320)]
        assert chip_state(tmp_path / "cards", card)["purse"]["balance"] == 320
        assert api.ok("GET", f"/cards/{card['id']}/purse")["balance"] == 320


def test_a_chip_answer_repeating_a_counter_is_not_a_delivery(counter) -> None:  # type: ignore[no-untyped-def]
    """A card whose state was rolled back (a copied chip file, a card emulator replaying an
    old state) answers the next load with a counter the backend already recorded: the load
    goes to review, it is not marked delivered."""
    _rt, api, cards_dir = counter
    card = chip_card(api)
    path = cards_dir / f"{card['chip_uid']}.json"
    before = path.read_text()
    api.ok("POST", f"/cards/{card['id']}/topups", {"amount": 100}, key=f.key())
    path.write_text(before)  # the chip forgets that load: counter 0 again
    out = api.ok("POST", f"/cards/{card['id']}/topups", {"amount": 200}, key=f.key())
    own = [ld for ld in out["card_loads"] if ld["load_id"] == out["card_load_id"]]
    assert own[0]["status"] == "review"
    loads = api.ok("GET", f"/cards/{card['id']}/card-loads")
    assert sorted(ld["status"] for ld in loads) == ["delivered", "review"]
    counters = [ld["card_counter"] for ld in loads if ld["status"] == "delivered"]
    assert counters == [1]


def test_a_reader_held_by_another_process_is_busy_until_it_lets_go(tmp_path: Path) -> None:
    import subprocess
    import sys

    from readers.errors import ReaderBusy
    from readers.locks import SessionLock

    path = tmp_path / "reader.lock"
    holder = subprocess.Popen(
        [sys.executable, "-c", "import sys, time\n"
         "from pathlib import Path\n"
         "from readers.locks import SessionLock\n"
         f"lock = SessionLock(Path({str(path)!r}), 'reader').acquire(5)\n"
         "print('held', flush=True)\n"
         "sys.stdin.readline()\n"
         "lock.release()\n"],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout is not None and holder.stdout.readline().strip() == "held"
        with pytest.raises(ReaderBusy):
            SessionLock(path, "reader").acquire(0.2)
    finally:
        assert holder.stdin is not None
        holder.stdin.write("\n")
        holder.stdin.close()
        holder.wait(10)
    SessionLock(path, "reader").acquire(1).release()


def test_a_topup_while_the_card_is_busy_stays_pending_and_says_why(runtime_factory,
                                                                   tmp_path: Path) -> None:
    from readers.locks import SessionLock

    rt = runtime_factory(reader="sim", sim_cards_dir=tmp_path / "cards",
                         reader_timeout_seconds=0.3)
    with TestClient(create_app(rt)) as client:
        r = client.post("/auth/login", json={"username": "t.clerk", "password": PASSWORD})
        api = Api(client, r.json()["access_token"])
        card = chip_card(api)
        lock = SessionLock(tmp_path / "cards" / f"{card['chip_uid']}.lock", "card").acquire(1)
        try:
            out = api.ok("POST", f"/cards/{card['id']}/topups", {"amount": 150}, key=f.key())
        finally:
            lock.release()
        assert out["balance"] == 150  # the money movement stands
        assert [ld["status"] for ld in out["card_loads"]] == ["pending"]
        assert "in use" in out["card_load_note"]
        r = api.post(f"/cards/{card['id']}/card-loads/deliver")
        assert [d["status"] for d in r.json()] == ["delivered"]


def test_the_simulated_cards_are_private_and_never_committed(counter) -> None:  # type: ignore[no-untyped-def]
    import shutil
    import stat
    import subprocess

    _rt, api, cards_dir = counter
    card = chip_card(api)
    assert stat.S_IMODE(cards_dir.stat().st_mode) == 0o700
    assert stat.S_IMODE((cards_dir / f"{card['chip_uid']}.json").stat().st_mode) == 0o600
    repo = Path(__file__).resolve().parents[3]
    git = shutil.which("git")
    if git is None or not (repo / ".git").exists():
        pytest.skip("not a git checkout")
    # The default place, in the working directory of a checkout: git must not pick it up.
    r = subprocess.run([git, "-C", str(repo), "check-ignore", "-q",
                        f"sim-cards/{card['chip_uid']}.json"], check=False)
    assert r.returncode == 0, "sim-cards/ is not ignored by git"


def test_a_lock_file_that_cannot_be_opened_is_a_busy_reader_not_a_crash(tmp_path: Path) -> None:
    from readers.errors import ReaderBusy
    from readers.locks import SessionLock

    blocker = tmp_path / "not-a-directory"
    blocker.write_text("")
    with pytest.raises(ReaderBusy, match="lock file"):
        SessionLock(blocker / "reader.lock", "reader").acquire(0.1)


def _load_in_review(api: Api, cards_dir: Path) -> tuple[dict, int]:  # type: ignore[type-arg]
    card = chip_card(api)
    path = cards_dir / f"{card['chip_uid']}.json"
    before = path.read_text()
    api.ok("POST", f"/cards/{card['id']}/topups", {"amount": 100}, key=f.key())
    path.write_text(before)
    out = api.ok("POST", f"/cards/{card['id']}/topups", {"amount": 200}, key=f.key())
    return card, out["card_load_id"]


def test_a_supervisor_resolves_a_load_in_review(counter, supervisor_api) -> None:  # type: ignore[no-untyped-def]
    _rt, api, cards_dir = counter
    card, load_id = _load_in_review(api, cards_dir)
    url = f"/cards/{card['id']}/card-loads/{load_id}/resolve"
    r = api.post(url, {"outcome": "refund", "reason": "not on the chip"}, key=f.key())
    assert r.status_code == 403  # clerks do not settle reviews
    key = f.key()
    done = supervisor_api.ok("POST", url, {"outcome": "refund", "reason": "terminal read: "
                                           "the chip holds NT$100, not 300"}, key=key)
    assert done["load"]["status"] == "refunded" and done["refund_cash"] == 200
    assert done["balance"] == 100  # what the chip holds
    again = supervisor_api.ok("POST", url, {"outcome": "refund", "reason": "terminal read: "
                                            "the chip holds NT$100, not 300"}, key=key)
    assert again == done  # a retry refunds once
    r = supervisor_api.post(url, {"outcome": "on_chip", "reason": "second thoughts"},
                            key=f.key())
    assert r.status_code == 409 and r.json()["code"] == "load_not_in_review"
    assert api.ok("GET", f"/cards/{card['id']}/purse")["balance"] == 100


def test_a_load_in_review_found_on_the_chip(counter, supervisor_api) -> None:  # type: ignore[no-untyped-def]
    _rt, api, cards_dir = counter
    card, load_id = _load_in_review(api, cards_dir)
    done = supervisor_api.ok("POST", f"/cards/{card['id']}/card-loads/{load_id}/resolve",
                             {"outcome": "on_chip", "reason": "the resident's receipt and "
                              "the chip balance agree"}, key=f.key())
    assert done["load"]["status"] == "delivered" and done["refund_cash"] == 0
    assert done["balance"] == 300
