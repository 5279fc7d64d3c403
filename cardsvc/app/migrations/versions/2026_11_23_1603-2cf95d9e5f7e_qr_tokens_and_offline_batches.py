"""qr tokens and offline batches

Revision ID: 2cf95d9e5f7e
Revises: 611ec6626cf2
Create Date: 2026-11-23 16:03:10.291412
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import cardsvc.db

revision: str = '2cf95d9e5f7e'
down_revision: str | None = '611ec6626cf2'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table('pos_batches',
    sa.Column('id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.Column('terminal_id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.Column('batch_ref', sa.String(length=64), nullable=False),
    sa.Column('records', sa.Integer(), nullable=False),
    sa.Column('content_hash', sa.String(length=64), nullable=False),
    sa.Column('received_at', cardsvc.db.UTCDateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['terminal_id'], ['terminals.id'], name=op.f('fk_pos_batches_terminal_id_terminals')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_pos_batches')),
    sa.UniqueConstraint('terminal_id', 'batch_ref', name=op.f('uq_pos_batches_terminal_id_batch_ref'))
    )
    op.create_table('qr_token_uses',
    sa.Column('id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.Column('token_id', sa.String(length=64), nullable=False),
    sa.Column('card_id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.Column('transaction_id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=True),
    sa.Column('used_at', cardsvc.db.UTCDateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['card_id'], ['cards.id'], name=op.f('fk_qr_token_uses_card_id_cards')),
    sa.ForeignKeyConstraint(['transaction_id'], ['pos_transactions.id'], name=op.f('fk_qr_token_uses_transaction_id_pos_transactions')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_qr_token_uses')),
    sa.UniqueConstraint('token_id', name=op.f('uq_qr_token_uses_token_id'))
    )
    with op.batch_alter_table('pos_transactions', schema=None) as batch_op:
        batch_op.add_column(sa.Column('batch_id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=True))
        batch_op.create_index(batch_op.f('ix_pos_transactions_batch_id'), ['batch_id'], unique=False)
        batch_op.create_foreign_key(batch_op.f('fk_pos_transactions_batch_id_pos_batches'), 'pos_batches', ['batch_id'], ['id'])



def downgrade() -> None:
    with op.batch_alter_table('pos_transactions', schema=None) as batch_op:
        batch_op.drop_constraint(batch_op.f('fk_pos_transactions_batch_id_pos_batches'), type_='foreignkey')
        batch_op.drop_index(batch_op.f('ix_pos_transactions_batch_id'))
        batch_op.drop_column('batch_id')

    op.drop_table('qr_token_uses')
    op.drop_table('pos_batches')
