"""E-invoice tallies

A period's check reports how many invoices it went through and how many could not win, by
reason. It read every invoice of the period for that (millions); now triggers on
`einvoice_invoices` append a change row (period, reason, delta) in the transaction of each
invoice reported, voided or given an allowance, and `cardsvc.einvoice.check.TALLIES` folds
them into `einvoice_tallies`. The tallies start from the invoices there are. The partial
index of excluded invoices, which only that count read, goes.

The reason is computed here as `cardsvc.einvoice.models.exclusion_reason` computes it today,
frozen with this migration: a later change of that rule replaces these triggers.

Revision ID: 75683a047af5
Revises: 8a1c5e0d4b27
Create Date: 2026-12-06 10:22:35
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = '75683a047af5'
down_revision: str | None = '8a1c5e0d4b27'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

EXCLUDED = ("status = 'voided' OR amount - allowances <= 0 OR buyer_tax_id <> '00000000' "
            "OR after_the_fact")


def _reason(row: str) -> str:
    return (f"CASE WHEN {row}.status = 'voided' THEN 'voided' "
            f"WHEN {row}.amount - {row}.allowances <= 0 THEN 'not_positive' "
            f"WHEN {row}.buyer_tax_id <> '00000000' THEN 'business_buyer' "
            f"WHEN {row}.after_the_fact THEN 'after_the_fact' ELSE '' END")


CHANGE = "INSERT INTO einvoice_tally_changes (period, reason, delta) "


def _sqlite_triggers() -> list[str]:
    changed = (f"OLD.period IS NOT NEW.period OR "
               f"({_reason('OLD')}) IS NOT ({_reason('NEW')})")
    return [
        "CREATE TRIGGER einvoice_tally_insert AFTER INSERT ON einvoice_invoices BEGIN "
        f"{CHANGE} VALUES (NEW.period, {_reason('NEW')}, 1); END",
        "CREATE TRIGGER einvoice_tally_update AFTER UPDATE OF period, status, amount, "
        f"allowances, buyer_tax_id, after_the_fact ON einvoice_invoices WHEN {changed} BEGIN "
        f"{CHANGE} VALUES (OLD.period, {_reason('OLD')}, -1); "
        f"{CHANGE} VALUES (NEW.period, {_reason('NEW')}, 1); END",
        "CREATE TRIGGER einvoice_tally_delete AFTER DELETE ON einvoice_invoices BEGIN "
        f"{CHANGE} VALUES (OLD.period, {_reason('OLD')}, -1); END",
    ]


def _pg_triggers() -> list[str]:
    # Once per statement, over its transition tables: a bulk load of a period's invoices
    # appends one change row per reason, not one per invoice.
    def function(name: str, rows: str) -> str:
        return (f"CREATE FUNCTION cardsvc_einvoice_tally_{name}() RETURNS trigger "
                f"LANGUAGE plpgsql AS $$ BEGIN {CHANGE} SELECT period, reason, "
                f"CAST(sum(delta) AS INTEGER) FROM ({rows}) t GROUP BY period, reason "
                "HAVING sum(delta) <> 0; RETURN NULL; END $$")

    added = f"SELECT n.period, {_reason('n')} AS reason, 1 AS delta FROM added n"
    removed = f"SELECT o.period, {_reason('o')} AS reason, -1 AS delta FROM removed o"
    return [
        function("insert", added),
        function("update", f"{removed} UNION ALL {added}"),
        function("delete", removed),
        "CREATE TRIGGER einvoice_tally_insert AFTER INSERT ON einvoice_invoices "
        "REFERENCING NEW TABLE AS added "
        "FOR EACH STATEMENT EXECUTE FUNCTION cardsvc_einvoice_tally_insert()",
        "CREATE TRIGGER einvoice_tally_update AFTER UPDATE ON einvoice_invoices "
        "REFERENCING OLD TABLE AS removed NEW TABLE AS added "
        "FOR EACH STATEMENT EXECUTE FUNCTION cardsvc_einvoice_tally_update()",
        "CREATE TRIGGER einvoice_tally_delete AFTER DELETE ON einvoice_invoices "
        "REFERENCING OLD TABLE AS removed "
        "FOR EACH STATEMENT EXECUTE FUNCTION cardsvc_einvoice_tally_delete()",
    ]


def upgrade() -> None:
    op.create_table('einvoice_tallies',
    sa.Column('period', sa.Integer(), nullable=False),
    sa.Column('reason', sa.String(length=16), nullable=False),
    sa.Column('invoices', sa.Integer(), nullable=False),
    sa.PrimaryKeyConstraint('period', 'reason', name=op.f('pk_einvoice_tallies'))
    )
    op.create_table('einvoice_tally_changes',
    sa.Column('id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), autoincrement=True, nullable=False),
    sa.Column('period', sa.Integer(), nullable=False),
    sa.Column('reason', sa.String(length=16), nullable=False),
    sa.Column('delta', sa.Integer(), nullable=False),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_einvoice_tally_changes'))
    )
    sqlite = op.get_bind().dialect.name == "sqlite"
    if not sqlite:
        # An invoice reported while this runs must be in the starting counts or caught by
        # the triggers: no invoice changes until they are in place (SQLite has one writer).
        op.execute("LOCK TABLE einvoice_invoices IN SHARE ROW EXCLUSIVE MODE")
    op.execute("INSERT INTO einvoice_tallies (period, reason, invoices) "
               f"SELECT i.period, {_reason('i')}, count(*) FROM einvoice_invoices i "
               "GROUP BY 1, 2")
    for statement in _sqlite_triggers() if sqlite else _pg_triggers():
        op.execute(statement)
    with op.batch_alter_table('einvoice_invoices', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_einvoice_invoices_excluded'))


def downgrade() -> None:
    with op.batch_alter_table('einvoice_invoices', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_einvoice_invoices_excluded'), ['period'],
                              unique=False, sqlite_where=sa.text(EXCLUDED),
                              postgresql_where=sa.text(EXCLUDED))
    for name in ("insert", "update", "delete"):
        op.execute(f"DROP TRIGGER IF EXISTS einvoice_tally_{name}"
                   + ("" if op.get_bind().dialect.name == "sqlite" else " ON einvoice_invoices"))
        if op.get_bind().dialect.name != "sqlite":
            op.execute(f"DROP FUNCTION IF EXISTS cardsvc_einvoice_tally_{name}()")
    op.drop_table('einvoice_tally_changes')
    op.drop_table('einvoice_tallies')
