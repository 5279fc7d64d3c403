"""`cardsvc seed --cards N`: a synthetic population shaped like the county's own figures.

Mix by product from the county's October 2018 report to the council (87,398 cards: 59,417
general, 16,546 senior/concession, 10,945 student, 490 mobile general); townships weighted by
household-registration population. Everything goes through the same encryption, blind index,
card-number and ledger rules as the counter; rows are written in set-based batches.
"""

from __future__ import annotations

import datetime as dt
import random
import time
from collections import Counter
from typing import Any

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table
from sqlalchemy import insert, select

from cardsvc.audit import service as audit
from cardsvc.cards.eligibility import add_years
from cardsvc.cards.models import Card, CardEvent, CardStatus
from cardsvc.context import TAIPEI, Actor
from cardsvc.db import unit_of_work
from cardsvc.holders.models import Cardholder, DisabilityCertificate, Enrolment
from cardsvc.holders.service import PERSON_ID_NS
from cardsvc.identifiers import (
    CARD_NUMBER_PREFIX,
    PRODUCT_DIGIT,
    luhn_check_digit,
    person_id_check_digit,
)
from cardsvc.ledger import codes
from cardsvc.ledger.models import Account, AccountKind
from cardsvc.runtime import Runtime

PRODUCT_MIX = {"general": 59_417, "senior": 16_546, "student": 10_945, "mobile": 490}
TOWNSHIP_WEIGHTS = {"金城鎮": 43_000, "金湖鎮": 31_000, "金沙鎮": 21_000, "金寧鄉": 31_000,
                    "烈嶼鄉": 12_700, "烏坵鄉": 700}
SURNAMES = "陳李王黃張林吳蔡許楊洪蕭莊翁呂薛董盧"
GIVEN = "志明秀英家豪美玲建國小華淑芬俊傑怡君宗翰雅婷承恩冠宇佳穎金水文彬麗華"
LAUNCH = dt.date(2017, 9, 15)
REPORT_DAY = dt.date(2018, 10, 31)
BATCH = 2_000


def _split(n: int) -> dict[str, int]:
    total = sum(PRODUCT_MIX.values())
    out = {p: n * c // total for p, c in PRODUCT_MIX.items()}
    out["general"] += n - sum(out.values())
    return out


def run_seed(rt: Runtime, n: int, seed: int, console: Console) -> dict[str, int]:
    rng = random.Random(seed)
    pii, keys = rt.keys.pii, rt.keys
    counts = _split(n)
    plan: list[str] = [p for p, c in counts.items() if p != "mobile" for _ in range(c)]
    rng.shuffle(plan)
    towns, weights = list(TOWNSHIP_WEIGHTS), list(TOWNSHIP_WEIGHTS.values())
    span = (REPORT_DAY - LAUNCH).days
    started = time.perf_counter()
    used_pids: set[str] = set()
    used_numbers: set[str] = set()
    with unit_of_work(rt.sessions) as db:
        used_numbers.update(db.scalars(select(Card.card_number)))

    def new_pid(female: bool) -> str:
        while True:
            head = "W" + ("2" if female else "1") + f"{rng.randrange(10**7):07d}"
            pid = head + person_id_check_digit(head)
            if pid not in used_pids:
                used_pids.add(pid)
                return pid

    def new_number(product: str) -> str:
        while True:
            body = CARD_NUMBER_PREFIX + PRODUCT_DIGIT[product] + f"{rng.randrange(10**10):010d}"
            number = body + luhn_check_digit(body)
            if number not in used_numbers:
                used_numbers.add(number)
                return number

    stats: Counter[str] = Counter()
    general_holders: list[int] = []
    now = dt.datetime.now(dt.UTC)
    actor = Actor.system("seed")
    with Progress(TextColumn("[bold]seeding cards"), BarColumn(), MofNCompleteColumn(),
                  TimeElapsedColumn(), console=console) as progress:
        task = progress.add_task("seed", total=n)
        for start in range(0, len(plan), BATCH):
            chunk = plan[start:start + BATCH]
            holders: list[dict[str, Any]] = []
            meta: list[tuple[str, dt.date, str, str | None]] = []
            for product in chunk:
                issued = LAUNCH + dt.timedelta(days=int(span * rng.random() ** 1.4))
                concession = {"general": "none", "student": "student"}.get(product, "senior")
                if product == "general":
                    age = rng.randint(18, 64) if rng.random() < 0.85 else rng.randint(7, 17)
                elif product == "student":
                    age = rng.randint(7, 22)
                else:
                    roll = rng.random()
                    concession = ("senior" if roll < 0.80 else
                                  "disability" if roll < 0.97 else "companion")
                    age = rng.randint(65, 98) if concession == "senior" else rng.randint(18, 64)
                born = issued - dt.timedelta(days=age * 365 + rng.randrange(365))
                female = rng.random() < 0.5
                pid = new_pid(female)
                town = rng.choices(towns, weights)[0]
                holders.append({
                    "name": rng.choice(SURNAMES) + rng.choice(GIVEN) + rng.choice(GIVEN),
                    "person_id_enc": pii.encrypt("person_id", pid),
                    "person_id_hash": keys.lookup_hash(PERSON_ID_NS, pid),
                    "person_id_kind": "national",
                    "birth_date_enc": pii.encrypt("birth_date", born.isoformat()),
                    "phone_enc": pii.encrypt("phone", f"09{rng.randrange(10**8):08d}"),
                    "email_enc": None, "township": town, "created_at": now, "updated_at": now,
                })
                meta.append((product, issued, concession, None))
            with unit_of_work(rt.sessions) as db:
                holder_ids = list(db.scalars(
                    insert(Cardholder).returning(Cardholder.id, sort_by_parameter_order=True),
                    holders))
                cards, enrol, certs = [], [], []
                for hid, (product, issued, concession, _), h in zip(
                        holder_ids, meta, holders, strict=True):
                    expires = add_years(issued, 10)
                    if concession == "student":
                        until = add_years(issued, rng.randint(1, 6))
                        expires = until
                        enrol.append({"cardholder_id": hid, "school": "金門縣立金城國中",
                                      "valid_until": until, "created_at": now})
                    elif concession == "disability":
                        until = add_years(issued, rng.randint(2, 5))
                        expires = until
                        certs.append({"cardholder_id": hid, "valid_until": until,
                                      "certificate_no_enc": pii.encrypt(
                                          "certificate_no", f"DC{rng.randrange(10**8):08d}"),
                                      "companion_id": None, "created_at": now})
                    elif product == "general":
                        general_holders.append(hid)
                    cards.append(_card_row(new_number(product), hid, product, concession,
                                           issued, expires, rng, h["township"]))
                for _ in range(_mobile_share(counts, start, len(chunk), len(plan))):
                    if not general_holders:
                        break
                    hid = general_holders.pop(rng.randrange(len(general_holders)))
                    issued = LAUNCH + dt.timedelta(days=rng.randrange(span))
                    row = _card_row(new_number("mobile"), hid, "mobile", "none", issued,
                                    add_years(issued, 10), rng, None)
                    row["device_id"] = row["live_device_id"] = f"seed-{rng.getrandbits(64):016x}"
                    cards.append(row)
                if enrol:
                    db.execute(insert(Enrolment), enrol)
                if certs:
                    db.execute(insert(DisabilityCertificate), certs)
                card_ids = list(db.scalars(
                    insert(Card).returning(Card.id, sort_by_parameter_order=True), cards))
                events, accounts = [], []
                for cid, c in zip(card_ids, cards, strict=True):
                    stats[c["product"]] += 1
                    accounts.append({"kind": AccountKind.CARD_PURSE, "code": codes.purse_code(cid),
                                     "card_id": cid, "balance": 0, "created_at": now})
                    steps = [("apply", None, "applied"), ("issue", "applied", "issued"),
                             ("activate", "issued", "active")]
                    if c["status"] != "active":
                        action = {"suspended": "suspend", "closed": "close",
                                  "blocked": "block"}[c["status"]]
                        steps.append((action, "active", c["status"]))
                    for seq, (action, frm, to) in enumerate(steps):
                        events.append({"card_id": cid, "at": c["issued_at"], "action": action,
                                       "from_status": frm, "to_status": to, "actor": "seed",
                                       "reason": "synthetic population", "seq": seq})
                db.execute(insert(Account), accounts)
                db.execute(insert(CardEvent), events)
                audit.record_for(db, actor, "seed.batch", target_type="card",
                                 detail={"first_card": card_ids[0], "last_card": card_ids[-1],
                                         "cards": len(card_ids)})
            progress.advance(task, len(card_ids))
    elapsed = time.perf_counter() - started
    table = Table("product", "cards")
    for product in PRODUCT_MIX:
        table.add_row(product, f"{stats[product]:,}")
    console.print(table)
    console.print(f"Seeded {sum(stats.values()):,} cards in {elapsed:.1f} s "
                  f"({rt.engine.dialect.name})")
    return dict(stats)


def _mobile_share(counts: dict[str, int], start: int, size: int, total: int) -> int:
    """Spread the mobile cards evenly over the batches."""
    m = counts["mobile"]
    return (m * (start + size)) // total - (m * start) // total


def _card_row(number: str, holder_id: int, product: str, concession: str, issued: dt.date,
              expires: dt.date, rng: random.Random, _town: str | None) -> dict[str, Any]:
    roll = rng.random()
    status = (CardStatus.ACTIVE if roll < 0.97 else CardStatus.SUSPENDED if roll < 0.985
              else CardStatus.CLOSED if roll < 0.995 else CardStatus.BLOCKED)
    at = dt.datetime.combine(issued, dt.time(9 + rng.randrange(8), rng.randrange(60)),
                             TAIPEI).astimezone(dt.UTC)
    form = "mobile" if product == "mobile" else "physical"
    live = status != CardStatus.CLOSED
    return {
        "card_number": number, "cardholder_id": holder_id, "product": product,
        "concession": concession, "form": form, "live_form": form if live else None,
        "status": status.value,
        "chip_uid": None if form == "mobile" else f"04{rng.getrandbits(48):012X}",
        "device_id": None, "live_device_id": None, "device_public_key": None,
        "expires_on": expires, "counter": "KM-HQ", "replaces_card_id": None,
        "applied_at": at, "issued_at": at, "closed_at": at if not live else None,
        "status_changed_at": at,
    }
