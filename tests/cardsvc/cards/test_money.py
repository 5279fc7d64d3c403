"""The purse ledger: balanced postings, limits, idempotency, replacement and closing."""

from sqlalchemy import func, select, text

from cardsvc.ledger.models import Account, Posting, Transfer
from tests.support import factories as f


def ledger_totals(rt):  # type: ignore[no-untyped-def]
    with rt.sessions() as db:
        per_transfer = db.execute(select(Posting.transfer_id, func.sum(Posting.amount))
                                  .group_by(Posting.transfer_id)).all()
        balances = db.scalar(select(func.sum(Account.balance)))
        mismatched = db.execute(text(
            "SELECT a.id FROM accounts a LEFT JOIN postings p ON p.account_id = a.id "
            "GROUP BY a.id, a.balance HAVING a.balance <> COALESCE(SUM(p.amount), 0)")).all()
        transfers = db.scalar(select(func.count()).select_from(Transfer))
    return per_transfer, balances, mismatched, transfers


def assert_ledger_consistent(rt) -> int:  # type: ignore[no-untyped-def]
    per_transfer, balances, mismatched, transfers = ledger_totals(rt)
    assert all(total == 0 for _, total in per_transfer), "a transfer does not sum to zero"
    assert (balances or 0) == 0, "money was created or destroyed"
    assert mismatched == [], "an account balance differs from the sum of its postings"
    return transfers  # type: ignore[no-any-return]


def test_topup_and_charge_post_balanced_transfers(clerk, rt) -> None:  # type: ignore[no-untyped-def]
    card = f.active_card(clerk, f.holder(clerk)["id"])
    assert f.topup(clerk, card["id"], 700)["balance"] == 700
    out = clerk.ok("POST", f"/cards/{card['id']}/charges",
                   {"amount": 120, "description": "stadium entry"}, key=f.key())
    assert out["balance"] == 580
    purse = clerk.ok("GET", f"/cards/{card['id']}/purse")
    assert purse["balance"] == 580
    assert [p["amount"] for p in purse["recent"]] == [-120, 700]
    assert assert_ledger_consistent(rt) == 2


def test_no_purse_goes_negative(clerk, rt) -> None:  # type: ignore[no-untyped-def]
    card = f.active_card(clerk, f.holder(clerk)["id"])
    f.topup(clerk, card["id"], 100)
    r = clerk.post(f"/cards/{card['id']}/charges", {"amount": 101, "description": "too much"},
                   key=f.key())
    assert r.status_code == 409 and r.json()["code"] == "insufficient_funds"
    assert clerk.ok("GET", f"/cards/{card['id']}/purse")["balance"] == 100
    assert assert_ledger_consistent(rt) == 1


def test_purse_maximum_is_ten_thousand(clerk) -> None:  # type: ignore[no-untyped-def]
    card = f.active_card(clerk, f.holder(clerk)["id"])
    f.topup(clerk, card["id"], 9_999)
    r = clerk.post(f"/cards/{card['id']}/topups", {"amount": 2}, key=f.key())
    assert r.status_code == 409 and r.json()["code"] == "purse_limit_exceeded"
    assert f.topup(clerk, card["id"], 1)["balance"] == 10_000


def test_same_key_same_body_is_charged_once(clerk, rt) -> None:  # type: ignore[no-untyped-def]
    card = f.active_card(clerk, f.holder(clerk)["id"])
    k = f.key()
    first = clerk.post(f"/cards/{card['id']}/topups", {"amount": 500}, key=k)
    second = clerk.post(f"/cards/{card['id']}/topups", {"amount": 500}, key=k)
    assert first.status_code == second.status_code == 200
    assert first.json() == second.json()
    assert second.headers.get("Idempotent-Replayed") == "true"
    assert clerk.ok("GET", f"/cards/{card['id']}/purse")["balance"] == 500
    assert assert_ledger_consistent(rt) == 1


def test_same_key_different_body_is_409(clerk) -> None:  # type: ignore[no-untyped-def]
    card = f.active_card(clerk, f.holder(clerk)["id"])
    k = f.key()
    clerk.ok("POST", f"/cards/{card['id']}/topups", {"amount": 500}, key=k)
    r = clerk.post(f"/cards/{card['id']}/topups", {"amount": 600}, key=k)
    assert r.status_code == 409 and r.json()["code"] == "idempotency_key_reused"
    other = f.active_card(clerk, f.holder(clerk)["id"])
    r = clerk.post(f"/cards/{other['id']}/topups", {"amount": 500}, key=k)
    assert r.status_code == 409  # same body, different card: a different request
    assert clerk.ok("GET", f"/cards/{card['id']}/purse")["balance"] == 500


def test_money_requests_need_an_idempotency_key(clerk) -> None:  # type: ignore[no-untyped-def]
    card = f.active_card(clerk, f.holder(clerk)["id"])
    r = clerk.post(f"/cards/{card['id']}/topups", {"amount": 500})
    assert r.status_code == 422 and r.json()["field"] == "Idempotency-Key"
    r = clerk.post(f"/cards/{card['id']}/topups", {"amount": 500}, key="short")
    assert r.status_code == 422


def test_failed_request_can_be_retried_with_its_key(clerk) -> None:  # type: ignore[no-untyped-def]
    card = f.active_card(clerk, f.holder(clerk)["id"])
    k = f.key()
    r = clerk.post(f"/cards/{card['id']}/charges", {"amount": 50, "description": "fee"}, key=k)
    assert r.status_code == 409  # empty purse: nothing stored under the key
    f.topup(clerk, card["id"], 100)
    r = clerk.post(f"/cards/{card['id']}/charges", {"amount": 50, "description": "fee"}, key=k)
    assert r.status_code == 200 and r.json()["balance"] == 50


def test_replacement_moves_the_balance_and_charges_the_fee(clerk, rt) -> None:  # type: ignore[no-untyped-def]
    card = f.active_card(clerk, f.holder(clerk)["id"])
    f.topup(clerk, card["id"], 430)
    clerk.ok("POST", f"/cards/{card['id']}/suspend", {"kind": "lost", "reason": "lost"})
    k = f.key()
    body = {"reason": "lost", "chip_uid": f.uid(), "fee_payment": "purse"}
    out = clerk.ok("POST", f"/cards/{card['id']}/replace", body, key=k)
    assert out["balance_moved"] == 430 and out["fee"] == 100 and out["new_balance"] == 330
    again = clerk.ok("POST", f"/cards/{card['id']}/replace", body, key=k)
    assert again == out  # a retry does not make a second card
    new = out["new_card"]
    assert new["status"] == "active" and new["replaces_card_id"] == card["id"]
    assert clerk.ok("GET", f"/cards/{card['id']}/purse")["balance"] == 0
    assert clerk.ok("GET", f"/cards/{new['id']}/purse")["balance"] == 330
    assert assert_ledger_consistent(rt) == 3


def test_only_a_supervisor_waives_the_fee(clerk, supervisor) -> None:  # type: ignore[no-untyped-def]
    card = f.active_card(clerk, f.holder(clerk)["id"])
    body = {"reason": "damaged", "chip_uid": f.uid(), "fee_payment": "waived"}
    r = clerk.post(f"/cards/{card['id']}/replace", body, key=f.key())
    assert r.status_code == 403
    out = supervisor.ok("POST", f"/cards/{card['id']}/replace", body, key=f.key())
    assert out["fee"] == 0


def test_closing_refunds_the_balance_in_cash(clerk, rt) -> None:  # type: ignore[no-untyped-def]
    card = f.active_card(clerk, f.holder(clerk)["id"])
    f.topup(clerk, card["id"], 260)
    out = clerk.ok("POST", f"/cards/{card['id']}/close", {"reason": "moving away"}, key=f.key())
    assert out["refund_cash"] == 260 and out["card"]["status"] == "closed"
    with rt.sessions() as db:
        cash = db.scalar(select(Account.balance).where(Account.code == "cash:KM-HQ"))
    assert cash == 0  # 260 in at the top-up, 260 out at the refund
    assert assert_ledger_consistent(rt) == 2


def test_postings_are_immutable_in_the_database(clerk, rt) -> None:  # type: ignore[no-untyped-def]
    import pytest
    from sqlalchemy.exc import DBAPIError
    card = f.active_card(clerk, f.holder(clerk)["id"])
    f.topup(clerk, card["id"], 10)
    for stmt in ("UPDATE postings SET amount = amount + 1", "DELETE FROM postings"):
        with pytest.raises(DBAPIError, match="immutable"), rt.engine.begin() as conn:
            conn.execute(text(stmt))


def test_a_counter_is_a_registered_desk(clerk, rt) -> None:  # type: ignore[no-untyped-def]
    """A typo in the counter field must not open a new cash drawer."""
    from cardsvc.context import Actor
    from cardsvc.db import unit_of_work
    from cardsvc.staff import service as staff_service
    card = f.active_card(clerk, f.holder(clerk)["id"])
    r = clerk.post(f"/cards/{card['id']}/topups", {"amount": 100, "counter": "KM-JC-l"},
                   key=f.key())
    assert r.status_code == 422 and r.json()["field"] == "counter"
    assert clerk.ok("GET", f"/cards/{card['id']}/purse")["balance"] == 0
    with unit_of_work(rt.sessions) as db:
        if "KM-JC-9" not in {d.code for d in staff_service.desks(db)}:
            staff_service.add_desk(db, Actor.system("tests"), "KM-JC-9", "金城櫃台 9")
    ok = clerk.post(f"/cards/{card['id']}/topups", {"amount": 100, "counter": "km-jc-9"},
                    key=f.key())
    assert ok.status_code == 200 and ok.json()["balance"] == 100
