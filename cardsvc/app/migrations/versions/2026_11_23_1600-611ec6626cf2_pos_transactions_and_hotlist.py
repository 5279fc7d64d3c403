"""pos transactions and hotlist

Revision ID: 611ec6626cf2
Revises: ebfafa9fbdce
Create Date: 2026-11-23 16:00:17.719419
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import cardsvc.db

revision: str = '611ec6626cf2'
down_revision: str | None = 'ebfafa9fbdce'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table('hotlist',
    sa.Column('id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.Column('card_number', sa.String(length=16), nullable=False),
    sa.Column('action', sa.String(length=8), nullable=False),
    sa.Column('reason', sa.String(length=32), nullable=False),
    sa.Column('created_at', cardsvc.db.UTCDateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_hotlist'))
    )
    with op.batch_alter_table('hotlist', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_hotlist_card_number'), ['card_number'], unique=False)

    op.create_table('pos_transactions',
    sa.Column('id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.Column('kind', sa.String(length=16), nullable=False),
    sa.Column('status', sa.String(length=16), nullable=False),
    sa.Column('reason', sa.String(length=40), nullable=True),
    sa.Column('terminal_id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.Column('merchant_id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.Column('card_id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=True),
    sa.Column('card_number', sa.String(length=16), nullable=False),
    sa.Column('amount', sa.BigInteger(), nullable=False),
    sa.Column('refunded', sa.BigInteger(), nullable=False),
    sa.Column('card_counter', sa.Integer(), nullable=True),
    sa.Column('balance_after', sa.BigInteger(), nullable=True),
    sa.Column('terminal_seq', sa.BigInteger(), nullable=True),
    sa.Column('card_time', sa.BigInteger(), nullable=True),
    sa.Column('certificate', sa.String(length=16), nullable=True),
    sa.Column('original_id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=True),
    sa.Column('transfer_id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=True),
    sa.Column('idempotency_key', sa.String(length=100), nullable=True),
    sa.Column('created_at', cardsvc.db.UTCDateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['card_id'], ['cards.id'], name=op.f('fk_pos_transactions_card_id_cards')),
    sa.ForeignKeyConstraint(['merchant_id'], ['merchants.id'], name=op.f('fk_pos_transactions_merchant_id_merchants')),
    sa.ForeignKeyConstraint(['original_id'], ['pos_transactions.id'], name=op.f('fk_pos_transactions_original_id_pos_transactions')),
    sa.ForeignKeyConstraint(['terminal_id'], ['terminals.id'], name=op.f('fk_pos_transactions_terminal_id_terminals')),
    sa.ForeignKeyConstraint(['transfer_id'], ['transfers.id'], name=op.f('fk_pos_transactions_transfer_id_transfers')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_pos_transactions'))
    )
    with op.batch_alter_table('pos_transactions', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_pos_transactions_created_at'), ['created_at'], unique=False)
        batch_op.create_index(batch_op.f('ix_pos_transactions_merchant_id'), ['merchant_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_pos_transactions_terminal_id'), ['terminal_id'], unique=False)
        batch_op.create_index('ux_pos_card_counter_accepted', ['card_id', 'card_counter'], unique=True, sqlite_where=sa.text("status = 'accepted' AND kind = 'purchase'"), postgresql_where=sa.text("status = 'accepted' AND kind = 'purchase'"))



def downgrade() -> None:
    with op.batch_alter_table('pos_transactions', schema=None) as batch_op:
        batch_op.drop_index('ux_pos_card_counter_accepted', sqlite_where=sa.text("status = 'accepted' AND kind = 'purchase'"), postgresql_where=sa.text("status = 'accepted' AND kind = 'purchase'"))
        batch_op.drop_index(batch_op.f('ix_pos_transactions_terminal_id'))
        batch_op.drop_index(batch_op.f('ix_pos_transactions_merchant_id'))
        batch_op.drop_index(batch_op.f('ix_pos_transactions_created_at'))

    op.drop_table('pos_transactions')
    with op.batch_alter_table('hotlist', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_hotlist_card_number'))

    op.drop_table('hotlist')
