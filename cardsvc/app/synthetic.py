"""Synthetic offline records with valid certificates, for the clearing benchmark and the
worker tests: merchants and terminals, chip cards with a delivered load each, and N offline
purchase records as terminals upload them, each certified with its card's real load key.

Everything is set-based (INSERT ... SELECT, COPY on PostgreSQL); the certificates are computed
here exactly as a card computes them, so clearing verifies every one of them.
"""

from __future__ import annotations

import datetime as dt
import io
import random
from collections.abc import Callable
from dataclasses import dataclass

from rich.console import Console
from sqlalchemy import bindparam, insert, select, text

from cardsvc.app.seed import run_seed
from cardsvc.audit import service as audit
from cardsvc.cards.models import Card
from cardsvc.context import Actor, Ctx
from cardsvc.db import UTCDateTime, unit_of_work, utcnow
from cardsvc.keystore.service import KeyStore
from cardsvc.ledger import codes
from cardsvc.ledger import service as ledger
from cardsvc.ledger.models import AccountKind
from cardsvc.runtime import Runtime
from merchants.pos.models import PosTransaction
from merchants.registry.identifiers import valid_tax_id
from merchants.registry.models import Merchant, Terminal
from readers import crypto
from readers import protocol as p
from readers.protocol import KeyPurpose

LOAD = 5_000
MEMO = "synthetic load"
ACTOR = Actor.system("synthetic")
COLUMNS = ("kind", "status", "terminal_id", "merchant_id", "card_id", "card_number", "amount",
           "refunded", "card_counter", "balance_after", "terminal_seq", "card_time",
           "certificate", "created_at")


@dataclass
class Population:
    merchants: list[int]
    terminals: list[tuple[int, int]]  # (terminal id, merchant id)
    cards: list[tuple[int, str, str]]  # (card id, card number, chip uid)


def tax_id(n: int) -> str:
    """A valid 統一編號 for the n-th synthetic merchant."""
    base = 20_000_000 + n * 20
    while not valid_tax_id(f"{base:08d}"):
        base += 1
    return f"{base:08d}"


def population(rt: Runtime, merchants: int, cards: int, *, seed: int = 7) -> Population:
    """`cards` cardholders with a chip card each (through the seed), made chip cards with a
    delivered load of NT$5,000; `merchants` merchants with one terminal each. Once per
    database."""
    run_seed(rt, cards, seed, Console(quiet=True))
    with unit_of_work(rt.sessions) as db:
        ctx = Ctx(db=db, settings=rt.settings, keys=rt.keys, actor=ACTOR)
        # The seed's physical cards carry chip UIDs; personalised with key version 1.
        db.execute(text("UPDATE cards SET load_key_version = 1 WHERE form = 'physical' "
                        "AND status = 'active' AND load_key_version IS NULL"))
        now = utcnow()
        ts = {"now": now}
        cash = ledger.system_account(ctx, AccountKind.COUNTER_CASH, codes.cash_code("SYNTH"))
        db.execute(text(
            "INSERT INTO transfers (kind, card_id, amount, actor, memo, created_at) "
            "SELECT 'topup', id, :load, 'synthetic', :memo, :now FROM cards "
            "WHERE load_key_version IS NOT NULL AND id NOT IN ("
            "  SELECT card_id FROM card_loads)").bindparams(
            bindparam("now", type_=UTCDateTime)), {**ts, "load": LOAD, "memo": MEMO})
        db.execute(text(
            "INSERT INTO card_loads (card_id, transfer_id, amount, status, authorised_counter, "
            "created_at, delivered_at, card_counter, card_balance) "
            "SELECT card_id, id, amount, 'delivered', 0, :now, :now, 1, amount FROM transfers "
            "WHERE memo = :memo AND id NOT IN (SELECT transfer_id FROM card_loads)").bindparams(
            bindparam("now", type_=UTCDateTime)), {**ts, "memo": MEMO})
        db.execute(text(
            "INSERT INTO postings (transfer_id, account_id, amount, balance_after, created_at) "
            "SELECT t.id, a.id, t.amount, a.balance + t.amount, :now FROM transfers t "
            "JOIN accounts a ON a.card_id = t.card_id WHERE t.memo = :memo AND NOT EXISTS ("
            "  SELECT 1 FROM postings x WHERE x.transfer_id = t.id)").bindparams(
            bindparam("now", type_=UTCDateTime)), {**ts, "memo": MEMO})
        db.execute(text(
            "INSERT INTO postings (transfer_id, account_id, amount, balance_after, created_at) "
            "SELECT t.id, :cash, -t.amount, :before - SUM(t.amount) OVER (ORDER BY t.id), :now "
            "FROM transfers t WHERE t.memo = :memo AND NOT EXISTS ("
            "  SELECT 1 FROM postings x WHERE x.transfer_id = t.id AND x.account_id = :cash)"
        ).bindparams(bindparam("now", type_=UTCDateTime)),
            {**ts, "memo": MEMO, "cash": cash.id, "before": cash.balance})
        loaded = int(db.scalar(text("SELECT COUNT(*) FROM transfers WHERE memo = :memo"),
                               {"memo": MEMO}) or 0)
        db.execute(text("UPDATE accounts SET balance = balance + :load WHERE card_id IN ("
                        "SELECT card_id FROM transfers WHERE memo = :memo)"),
                   {"load": LOAD, "memo": MEMO})
        db.execute(text("UPDATE accounts SET balance = balance - :total WHERE id = :cash"),
                   {"total": loaded * LOAD, "cash": cash.id})
        audit.record(ctx, "money.synthetic_load", detail={"cards": cards, "amount": LOAD})
        bank = rt.keys.pii.encrypt("bank_account", "004-00011122233")
        ms = []
        for i in range(merchants):
            m = Merchant(legal_name=f"合成商店 {i + 1}", tax_id=tax_id(i), category="retail",
                         fee_bps=(i % 4) * 50, bank_account_enc=bank, status="active")
            db.add(m)
            ms.append(m)
        db.flush()
        terminals = []
        for m in ms:
            t = Terminal(merchant_id=m.id, label="lane 1", key_id=f"synthetic-{m.id}",
                         secret_enc=rt.keys.pii.encrypt("terminal_secret", "x" * 32))
            db.add(t)
            terminals.append(t)
        db.flush()
        chip_cards = [(int(c.id), c.card_number, str(c.chip_uid)) for c in db.scalars(
            select(Card).where(Card.load_key_version.is_not(None)).order_by(Card.id))]
        return Population([m.id for m in ms], [(t.id, t.merchant_id) for t in terminals],
                          chip_cards)


def records(rt: Runtime, pop: Population, n: int, *, seed: int = 11,
            received_at: dt.datetime | None = None,
            progress: Callable[[int], None] | None = None) -> int:
    """Write `n` offline purchase records, spread over the cards and terminals, each card's
    counters continuing from its load (counter 1) with balances that follow; uploaded at
    `received_at` (now by default)."""
    rng = random.Random(seed)
    with rt.sessions() as db:
        masters = KeyStore(db, rt.keys.secrets.kek, rt.keys.secrets.system_id).masters(
            KeyPurpose.LOAD)
    system_id = rt.keys.secrets.system_id
    keys = {cid: crypto.diversify_key(masters[1], bytes.fromhex(uid), p.AID, system_id)
            for cid, _, uid in pop.cards}
    state = {cid: [1, LOAD] for cid, _, _ in pop.cards}  # counter, balance
    now = received_at or utcnow()
    written = 0
    chunk = 50_000
    while written < n:
        rows: list[tuple[object, ...]] = []
        for _ in range(min(chunk, n - written)):
            cid, number, _uid = pop.cards[rng.randrange(len(pop.cards))]
            st = state[cid]
            amount = 1 + rng.randrange(60)
            if st[1] < amount:
                continue
            terminal, merchant = pop.terminals[rng.randrange(len(pop.terminals))]
            st[0] += 1
            st[1] -= amount
            seq = written + len(rows) + 1
            when = 1_790_000_000 + seq
            cert = crypto.mac8(keys[cid], p.certificate_input(
                number, p.TxType.DEBIT, st[0], amount, st[1], terminal, seq, when)).hex()
            rows.append(("offline_purchase", "uploaded", terminal, merchant, cid, number,
                         amount, 0, st[0], st[1], seq, when, cert, now))
        if not rows:
            break  # every card spent its load
        _write(rt, rows)
        written += len(rows)
        if progress:
            progress(len(rows))
    return written


def _write(rt: Runtime, rows: list[tuple[object, ...]]) -> None:
    with unit_of_work(rt.sessions) as db:
        if db.get_bind().dialect.name == "postgresql":
            raw = db.connection().connection.dbapi_connection
            with raw.cursor() as cur, cur.copy(  # type: ignore[union-attr]
                    f"COPY pos_transactions ({', '.join(COLUMNS)}) FROM STDIN") as copy:
                buf = io.StringIO()
                for r in rows:
                    buf.write("\t".join(str(v) for v in r) + "\n")
                copy.write(buf.getvalue())
        else:
            db.execute(insert(PosTransaction), [dict(zip(COLUMNS, r, strict=True))
                                                for r in rows])
