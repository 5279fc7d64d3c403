"""Counter desks and drawer counts

The registry of counter desks (each with its cash drawer) staff choose from when they log in
at the counter's pages, and supervisors' end-of-day counts of each drawer with the difference
kept. The configured default counter becomes the first desk at the next start
(`cardsvc.app.bootstrap`), as do the counters cash already moved through.

Revision ID: b738138701a6
Revises: f1842f317b22
Create Date: 2026-12-06 04:57:41.048138
"""

import datetime
from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import cardsvc.db

revision: str = 'b738138701a6'
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
    op.create_table('drawer_counts',
    sa.Column('id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.Column('desk', sa.String(length=32), nullable=False),
    sa.Column('business_date', sa.Date(), nullable=False),
    sa.Column('expected', sa.Integer(), nullable=False),
    sa.Column('counted', sa.Integer(), nullable=False),
    sa.Column('difference', sa.Integer(), nullable=False),
    sa.Column('note', sa.String(length=200), nullable=False),
    sa.Column('counted_by', sa.String(length=64), nullable=False),
    sa.Column('counted_at', cardsvc.db.UTCDateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_drawer_counts'))
    )
    with op.batch_alter_table('drawer_counts', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_drawer_counts_business_date'), ['business_date'], unique=False)
        batch_op.create_index(batch_op.f('ix_drawer_counts_desk'), ['desk'], unique=False)



def downgrade() -> None:
    with op.batch_alter_table('drawer_counts', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_drawer_counts_desk'))
        batch_op.drop_index(batch_op.f('ix_drawer_counts_business_date'))

    op.drop_table('drawer_counts')
    op.drop_table('desks')
