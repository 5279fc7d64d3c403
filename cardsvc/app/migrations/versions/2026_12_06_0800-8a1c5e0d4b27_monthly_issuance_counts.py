"""Monthly issuance counts

The issuance statistics over years read `issuance_counts` (cards issued per business month,
product, current status and the holder's township) instead of every card. Triggers append a
change row in the transaction that changes a card or moves a resident to another township
(only inserts: concurrent card changes never wait on a count), and `cardsvc.stats.counts.fold`
adds the changes into the counts; the counts start from the cards there are.

Revision ID: 8a1c5e0d4b27
Revises: c2cdfe565f6b
Create Date: 2026-12-06 08:00:00
"""

import datetime as dt
from collections.abc import Sequence
from zoneinfo import ZoneInfo

import sqlalchemy as sa
from alembic import op

from cardsvc.config import BUSINESS_TZ

revision: str = '8a1c5e0d4b27'
down_revision: str | None = 'c2cdfe565f6b'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

CHANGE = "INSERT INTO issuance_count_changes (month, product, status, township, delta) {rows}"


def _sqlite_month(column: str) -> str:
    # SQLite knows no zones: the business zone's fixed offset (Asia/Taipei keeps no summer
    # time), checked here rather than assumed.
    zone = ZoneInfo(BUSINESS_TZ)
    winter, summer = (dt.datetime(2026, m, 1, tzinfo=zone).utcoffset() for m in (1, 7))
    assert winter == summer and winter is not None, "the business zone has summer time"  # noqa: S101
    hours = int(winter.total_seconds() // 3600)
    return f"date({column}, '{hours:+d} hours', 'start of month')"


def _pg_month(column: str) -> str:
    return f"date_trunc('month', {column} AT TIME ZONE '{BUSINESS_TZ}')::date"


def _sqlite_triggers() -> list[str]:
    def bump(row: str, delta: str) -> str:
        return CHANGE.format(rows=(
            f"SELECT {_sqlite_month(row + '.issued_at')}, {row}.product, {row}.status, "
            f"coalesce((SELECT township FROM cardholders WHERE id = {row}.cardholder_id), ''), "
            f"{delta} WHERE {row}.issued_at IS NOT NULL")) + ";"

    def move(township: str, sign: str) -> str:
        return CHANGE.format(rows=(
            f"SELECT {_sqlite_month('c.issued_at')}, c.product, c.status, "
            f"coalesce({township}, ''), {sign}count(*) FROM cards c "
            "WHERE c.cardholder_id = NEW.id AND c.issued_at IS NOT NULL GROUP BY 1, 2, 3")) + ";"

    changed = ("OLD.issued_at IS NOT NEW.issued_at OR OLD.product IS NOT NEW.product OR "
               "OLD.status IS NOT NEW.status OR OLD.cardholder_id IS NOT NEW.cardholder_id")
    return [
        f"CREATE TRIGGER issuance_counts_card_insert AFTER INSERT ON cards "
        f"BEGIN {bump('NEW', '1')} END",
        f"CREATE TRIGGER issuance_counts_card_update AFTER UPDATE OF issued_at, product, "
        f"status, cardholder_id ON cards WHEN {changed} "
        f"BEGIN {bump('OLD', '-1')} {bump('NEW', '1')} END",
        f"CREATE TRIGGER issuance_counts_card_delete AFTER DELETE ON cards "
        f"BEGIN {bump('OLD', '-1')} END",
        f"CREATE TRIGGER issuance_counts_holder_move AFTER UPDATE OF township ON cardholders "
        f"WHEN OLD.township IS NOT NEW.township "
        f"BEGIN {move('OLD.township', '-')} {move('NEW.township', '')} END",
    ]


def _pg_triggers() -> list[str]:
    def bump(row: str, delta: str) -> str:
        return CHANGE.format(rows=(
            f"VALUES ({_pg_month(row + '.issued_at')}, {row}.product, {row}.status, "
            f"coalesce((SELECT township FROM cardholders WHERE id = {row}.cardholder_id), ''), "
            f"{delta})")) + ";"

    def move(township: str, sign: str) -> str:
        return CHANGE.format(rows=(
            f"SELECT {_pg_month('c.issued_at')}, c.product, c.status, "
            f"coalesce({township}, ''), {sign}count(*) FROM cards c "
            "WHERE c.cardholder_id = NEW.id AND c.issued_at IS NOT NULL GROUP BY 1, 2, 3")) + ";"

    return [
        "CREATE FUNCTION cardsvc_issuance_card() RETURNS trigger LANGUAGE plpgsql AS $$ "
        "BEGIN "
        "IF TG_OP = 'UPDATE' AND (OLD.issued_at, OLD.product, OLD.status, OLD.cardholder_id) "
        "IS NOT DISTINCT FROM (NEW.issued_at, NEW.product, NEW.status, NEW.cardholder_id) "
        "THEN RETURN NULL; END IF; "
        f"IF TG_OP <> 'INSERT' AND OLD.issued_at IS NOT NULL THEN {bump('OLD', '-1')} END IF; "
        f"IF TG_OP <> 'DELETE' AND NEW.issued_at IS NOT NULL THEN {bump('NEW', '1')} END IF; "
        "RETURN NULL; END $$",
        "CREATE TRIGGER issuance_counts_card AFTER INSERT OR DELETE OR UPDATE OF issued_at, "
        "product, status, cardholder_id ON cards "
        "FOR EACH ROW EXECUTE FUNCTION cardsvc_issuance_card()",
        "CREATE FUNCTION cardsvc_issuance_move() RETURNS trigger LANGUAGE plpgsql AS $$ "
        "BEGIN IF OLD.township IS DISTINCT FROM NEW.township THEN "
        f"{move('OLD.township', '-')} {move('NEW.township', '')} "
        "END IF; RETURN NULL; END $$",
        "CREATE TRIGGER issuance_counts_holder_move AFTER UPDATE OF township ON cardholders "
        "FOR EACH ROW EXECUTE FUNCTION cardsvc_issuance_move()",
    ]


def upgrade() -> None:
    op.create_table('issuance_counts',
    sa.Column('month', sa.Date(), nullable=False),
    sa.Column('product', sa.String(length=16), nullable=False),
    sa.Column('status', sa.String(length=16), nullable=False),
    sa.Column('township', sa.String(length=16), nullable=False),
    sa.Column('cards', sa.Integer(), nullable=False),
    sa.PrimaryKeyConstraint('month', 'product', 'status', 'township',
                            name=op.f('pk_issuance_counts'))
    )
    op.create_table('issuance_count_changes',
    sa.Column('id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), autoincrement=True,
              nullable=False),
    sa.Column('month', sa.Date(), nullable=False),
    sa.Column('product', sa.String(length=16), nullable=False),
    sa.Column('status', sa.String(length=16), nullable=False),
    sa.Column('township', sa.String(length=16), nullable=False),
    sa.Column('delta', sa.Integer(), nullable=False),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_issuance_count_changes'))
    )
    sqlite = op.get_bind().dialect.name == "sqlite"
    if not sqlite:
        # A card changed while this runs must be in the starting counts or caught by the
        # triggers: no card or township changes until they are in place.
        op.execute("LOCK TABLE cards, cardholders IN SHARE ROW EXCLUSIVE MODE")
    month = _sqlite_month("c.issued_at") if sqlite else _pg_month("c.issued_at")
    op.execute(
        "INSERT INTO issuance_counts (month, product, status, township, cards) "
        f"SELECT {month}, c.product, c.status, coalesce(h.township, ''), count(*) "
        "FROM cards c JOIN cardholders h ON h.id = c.cardholder_id "
        "WHERE c.issued_at IS NOT NULL GROUP BY 1, 2, 3, 4")
    for statement in _sqlite_triggers() if sqlite else _pg_triggers():
        op.execute(statement)


def downgrade() -> None:
    if op.get_bind().dialect.name == "sqlite":
        for name in ("card_insert", "card_update", "card_delete", "holder_move"):
            op.execute(f"DROP TRIGGER IF EXISTS issuance_counts_{name}")
    else:
        op.execute("DROP TRIGGER IF EXISTS issuance_counts_card ON cards")
        op.execute("DROP TRIGGER IF EXISTS issuance_counts_holder_move ON cardholders")
        op.execute("DROP FUNCTION IF EXISTS cardsvc_issuance_card()")
        op.execute("DROP FUNCTION IF EXISTS cardsvc_issuance_move()")
    op.drop_table('issuance_count_changes')
    op.drop_table('issuance_counts')
