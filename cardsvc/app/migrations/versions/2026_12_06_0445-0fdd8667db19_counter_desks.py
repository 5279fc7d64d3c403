"""Counter desks

The registry of counter desks (each with its cash drawer) staff choose from when they log in
at the counter's pages. The configured default counter becomes the first desk at the next
start (`cardsvc.app.bootstrap`), as do the counters cash already moved through.

Revision ID: 0fdd8667db19
Revises: f1842f317b22
Create Date: 2026-12-06 04:45:03.430059
"""

import datetime
from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import cardsvc.db

revision: str = '0fdd8667db19'
down_revision: str | None = 'f1842f317b22'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table('desks',
    sa.Column('id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.Column('code', sa.String(length=32), nullable=False),
    sa.Column('name', sa.String(length=100), nullable=False),
    sa.Column('active', sa.Boolean(), nullable=False),
    sa.Column('created_at', cardsvc.db.UTCDateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_desks')),
    sa.UniqueConstraint('code', name=op.f('uq_desks_code'))
    )
    # Every counter cash already moved through is a desk (its drawer has a history).
    counters = sorted({r[0][len("cash:"):][:32] for r in op.get_bind().execute(sa.text(
        "SELECT code FROM accounts WHERE code LIKE 'cash:%'"))})
    if counters:
        desks = sa.table('desks', sa.column('code', sa.String()), sa.column('name', sa.String()),
                         sa.column('active', sa.Boolean()),
                         sa.column('created_at', cardsvc.db.UTCDateTime(timezone=True)))
        now = datetime.datetime.now(datetime.UTC)
        op.bulk_insert(desks, [{"code": c, "name": c, "active": True, "created_at": now}
                               for c in counters])


def downgrade() -> None:
    op.drop_table('desks')
