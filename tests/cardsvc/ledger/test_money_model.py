"""Model-based test of the purse ledger against the real database: random sequences of counter
operations, after each step money is conserved, no purse is negative or over the cap, and the
ledger agrees with a simple model of what each purse should hold."""

from __future__ import annotations

from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import (
    Bundle,
    RuleBasedStateMachine,
    consumes,
    initialize,
    invariant,
    rule,
)
from sqlalchemy import func, select, text

from cardsvc.cards import purse as money
from cardsvc.cards import schemas as s
from cardsvc.cards import service as cards
from cardsvc.context import Actor, Ctx
from cardsvc.db import unit_of_work
from cardsvc.errors import DomainError
from cardsvc.holders import schemas as hs
from cardsvc.holders import service as holders
from cardsvc.ledger.models import Account, AccountKind
from cardsvc.runtime import Runtime
from tests.support import factories as f

amounts = st.integers(min_value=1, max_value=4_000)


def make_machine(rt: Runtime) -> type[RuleBasedStateMachine]:
    class Ledger(RuleBasedStateMachine):
        live = Bundle("live")

        def __init__(self) -> None:
            super().__init__()
            self.expected: dict[int, int] = {}

        def run(self, fn):  # type: ignore[no-untyped-def]
            try:
                with unit_of_work(rt.sessions) as db:
                    return fn(Ctx(db, rt.settings, rt.keys, Actor(None, "model", "supervisor")))
            except DomainError as exc:
                return exc

        @initialize(target=live)
        def first_card(self) -> int:
            return self._new_card()

        def _new_card(self) -> int:
            def go(ctx: Ctx) -> int:
                h = holders.register(ctx, hs.CardholderCreate(
                    name="模型", person_id=f.new_person_id(), birth_date=f.years_ago(33),
                    township="金寧鄉"))
                c = cards.apply(ctx, s.CardApplication(cardholder_id=h.id, product="general"))
                cards.issue(ctx, c.id, s.IssueRequest(chip_uid=f.uid()))
                cards.simple_transition(ctx, c.id, "activate", "model")
                return c.id
            cid = self.run(go)
            self.expected[cid] = 0
            return cid  # type: ignore[no-any-return]

        @rule(target=live)
        def another_card(self) -> int:
            return self._new_card()

        @rule(card=live, amount=amounts)
        def topup(self, card: int, amount: int) -> None:
            out = self.run(lambda ctx: money.topup(ctx, card, s.TopUpRequest(amount=amount)))
            fits = self.expected[card] + amount <= rt.settings.purse_max_balance
            assert isinstance(out, DomainError) != fits, out
            if fits:
                self.expected[card] += amount

        @rule(card=live, amount=amounts)
        def charge(self, card: int, amount: int) -> None:
            out = self.run(lambda ctx: money.charge(
                ctx, card, s.ChargeRequest(amount=amount, description="model fee")))
            enough = self.expected[card] >= amount
            assert isinstance(out, DomainError) != enough, out
            if enough:
                self.expected[card] -= amount

        @rule(target=live, card=consumes(live), fee=st.sampled_from(["cash", "purse"]))
        def replace(self, card: int, fee: str) -> int:
            body = s.ReplaceRequest(reason="damaged", chip_uid=f.uid(), fee_payment=fee)
            out = self.run(lambda ctx: cards.replace(ctx, card, body))
            balance = self.expected.pop(card)
            if fee == "purse" and balance < rt.settings.replacement_fee:
                assert isinstance(out, DomainError)
                self.expected[card] = balance
                return card
            assert not isinstance(out, DomainError), out
            new_id = out.new_card.id
            self.expected[card] = 0
            self.expected[new_id] = balance - (rt.settings.replacement_fee if fee == "purse"
                                               else 0)
            return new_id  # type: ignore[no-any-return]

        @rule(card=consumes(live))
        def close(self, card: int) -> None:
            out = self.run(lambda ctx: cards.close(ctx, card, s.CloseRequest(reason="model")))
            assert not isinstance(out, DomainError), out
            assert out.refund_cash == self.expected[card]
            self.expected[card] = 0

        @invariant()
        def money_is_conserved_and_purses_within_bounds(self) -> None:
            with rt.sessions() as db:
                assert (db.scalar(select(func.sum(Account.balance))) or 0) == 0
                purses = dict(db.execute(select(Account.card_id, Account.balance)
                                         .where(Account.kind == AccountKind.CARD_PURSE)).all())
                off = db.execute(text(
                    "SELECT a.id FROM accounts a LEFT JOIN postings p ON p.account_id = a.id "
                    "GROUP BY a.id, a.balance HAVING a.balance <> COALESCE(SUM(p.amount), 0)"
                )).all()
            assert off == []
            for cid, bal in purses.items():
                assert 0 <= bal <= rt.settings.purse_max_balance
                if cid in self.expected:
                    assert bal == self.expected[cid], (cid, bal, self.expected[cid])

    return Ledger


def test_ledger_state_machine(rt: Runtime) -> None:
    machine = make_machine(rt)
    machine.TestCase.settings = settings(
        max_examples=15, stateful_step_count=15, deadline=None,
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much])
    machine.TestCase().runTest()
