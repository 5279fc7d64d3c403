"""The POS fast path's database functions: the file holding their current definition, the
functions in a migrated database, and the Python constants they repeat, held to each other.
A rename of a kind, status, account prefix or record key on one side only would otherwise
make every purchase fall to the slow path without a word."""

from __future__ import annotations

import re

from sqlalchemy import text

from cardsvc.ledger import codes
from merchants.pos.fastpath import SQL_FILE, FastRecord
from merchants.pos.models import CARD_PRESENT_KINDS, PosKind, PosStatus
from merchants.pos.schemas import TransactionOut
from merchants.pos.service import PURCHASE_OPERATION
from merchants.registry.models import TerminalStatus

SQL = SQL_FILE.read_text()


def functions() -> dict[str, str]:
    """name -> body (what PostgreSQL keeps as the function's source)."""
    found = re.findall(r"CREATE OR REPLACE FUNCTION (\w+)\(.*?AS \$\$(.*?)\$\$;", SQL, re.S)
    return dict(found)


def code_of(body: str) -> str:
    return re.sub(r"--[^\n]*", "", body)  # comments may quote anything


def test_the_file_defines_both_functions() -> None:
    assert set(functions()) == {"pos_fast_purchase", "pos_fast_purchases"}


def test_the_record_keys_are_the_records_fields() -> None:
    batch = functions()["pos_fast_purchases"]
    columns = re.search(r"json_to_recordset\(p_items\) AS x\((.*?)\)\s*LOOP", batch, re.S)
    assert columns is not None
    names = [c.split()[0] for c in columns.group(1).split(",")]
    assert names == list(FastRecord._fields)
    used = re.findall(r"\br\.(\w+)", batch)
    assert set(used) == set(FastRecord._fields)
    locked = set(re.findall(r"x ->> '(\w+)'", batch))
    assert locked == {"pa", "ta"} <= set(FastRecord._fields)


def answer_keys(body: str) -> list[str]:
    answer = re.search(r"json_build_object\((.*?)\)::text", body, re.S)
    assert answer is not None
    args = [a.strip() for a in answer.group(1).split(",")]
    return [k.strip("'") for k in args[0::2]]


def test_the_answer_has_the_general_paths_shape() -> None:
    keys = answer_keys(code_of(functions()["pos_fast_purchase"]))
    assert keys == list(TransactionOut.model_fields)


def test_every_literal_is_a_constant_of_the_python_side() -> None:
    body = code_of(functions()["pos_fast_purchase"])
    kinds = re.search(r"kind IN \(([^)]*)\)", body)
    assert kinds is not None
    assert [k.strip(" '") for k in kinds.group(1).split(",")] == list(CARD_PRESENT_KINDS)
    keys = set(answer_keys(body))
    known = {
        PosKind.PURCHASE, PosKind.BILL_PAYMENT, PosKind.OFFLINE_PURCHASE,
        PosStatus.ACCEPTED, TerminalStatus.ACTIVE, codes.TERMINAL, PURCHASE_OPERATION,
        "terminal",  # the actor's role, as the general path's Actor of a terminal
        f"money.{PosKind.PURCHASE}", "transfer",  # the audit row `ledger.post` writes
        "terminal ", " seq ",  # the transfer's memo, as merchants.pos.service writes it
        '{"amount":', ',"card_id":', ',"legs":[[', ",", "],[", "]]}",  # the audit detail
        "idempotency key taken concurrently",
    } | keys
    literals = set(re.findall(r"'((?:[^']|'')*)'", body))
    assert literals - known == set(), "literals the Python side does not know"
    assert set(re.findall(r"'((?:[^']|'')*)'", code_of(functions()["pos_fast_purchases"]))) \
        <= {"{}", "pa", "ta"}


def test_the_database_runs_what_the_file_says(pg_runtime) -> None:  # type: ignore[no-untyped-def]
    """A migrated PostgreSQL database holds exactly the file's functions: a change to the
    file needs its migration, and a migration changing them needs the file changed."""
    with pg_runtime.engine.connect() as conn:
        live = {name: source for name, source in conn.execute(text(
            "SELECT proname, prosrc FROM pg_proc WHERE proname IN "
            "('pos_fast_purchase', 'pos_fast_purchases')"))}
    assert live == functions()
