"""Migrations that change data: what they do to rows a deployment already has."""

from __future__ import annotations

import json

from alembic import command
from sqlalchemy import select, text, update

from cardsvc.app import migrate
from cardsvc.audit import service as audit
from cardsvc.audit.models import AuditEvent
from cardsvc.cards import purse as money
from cardsvc.cards import schemas as s
from cardsvc.cards import service as cards
from cardsvc.cards.models import Card, CardLoad
from cardsvc.context import Actor, Ctx
from cardsvc.db import unit_of_work
from cardsvc.holders import schemas as hs
from cardsvc.holders import service as holders
from tests.support import factories as f


def test_loads_delivered_twice_at_one_chip_counter_go_to_review(rt) -> None:  # type: ignore[no-untyped-def]
    """What the race of two sessions on one card left behind: two loads marked delivered with
    the same chip counter. The migration keeps the first, puts the other in review and says
    so in the audit trail."""
    with unit_of_work(rt.sessions) as db:
        ctx = Ctx(db, rt.settings, rt.keys, Actor.system("tests"))
        h = holders.register(ctx, hs.CardholderCreate(
            name="重複載入", person_id=f.new_person_id(), birth_date=f.years_ago(30),
            township="金城鎮"))
        card = cards.apply(ctx, s.CardApplication(cardholder_id=h.id, product="general"))
        cards.issue(ctx, card.id, s.IssueRequest(chip_uid=f.uid()))
        cards.simple_transition(ctx, card.id, "activate", "test")
        db.execute(update(Card).where(Card.id == card.id).values(load_key_version=1))
        db.expire_all()
        for amount in (400, 400, 300):
            money.topup(ctx, card.id, s.TopUpRequest(amount=amount))
        card_id = card.id
    cfg = migrate.alembic_config(rt.engine.url.render_as_string(hide_password=False))
    with rt.engine.begin() as conn:
        # The round trip drops later columns of the staff, whom PostgreSQL keeps for the
        # rest of the run: note what they held, to put it back after the upgrade.
        departments = conn.execute(text("SELECT id, department FROM staff")).all()
        cfg.attributes["connection"] = conn
        command.downgrade(cfg, "3b8e5d21c4a7")
    with rt.engine.begin() as conn:
        ids = [r[0] for r in conn.execute(text(
            "SELECT id FROM card_loads WHERE card_id = :c ORDER BY id"), {"c": card_id})]
        for load_id, counter in zip(ids, (1, 1, 2), strict=True):
            conn.execute(text("UPDATE card_loads SET status = 'delivered', card_counter = :n "
                              "WHERE id = :i"), {"n": counter, "i": load_id})
    migrate.upgrade(rt.engine)
    with rt.engine.begin() as conn:
        for staff_id, department in departments:
            conn.execute(text("UPDATE staff SET department = :d WHERE id = :i"),
                         {"d": department, "i": staff_id})
    with unit_of_work(rt.sessions) as db:
        loads = db.scalars(select(CardLoad).where(CardLoad.card_id == card_id)
                           .order_by(CardLoad.id)).all()
        assert [(ld.status, ld.card_counter) for ld in loads] == [
            ("delivered", 1), ("review", 1), ("delivered", 2)]
        audit.seal_pending(db)
        rows = db.scalars(select(AuditEvent).where(AuditEvent.action == "card.load_review")
                          ).all()
        assert [json.loads(r.detail)["load_id"] for r in rows] == [ids[1]]
        assert rows[0].actor == "migration:0fc4be2547a2" and rows[0].target_id == str(card_id)
        assert audit.verify_chain(db).ok
