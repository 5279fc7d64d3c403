"""card key store and card loads

Revision ID: 5056af04849d
Revises: e00a52576a32
Create Date: 2026-11-23 15:25:20.644586
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import cardsvc.db

revision: str = '5056af04849d'
down_revision: str | None = 'e00a52576a32'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table('card_master_keys',
    sa.Column('id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.Column('purpose', sa.String(length=16), nullable=False),
    sa.Column('version', sa.Integer(), nullable=False),
    sa.Column('wrapped', sa.Text(), nullable=False),
    sa.Column('active', sa.Boolean(), nullable=False),
    sa.Column('created_at', cardsvc.db.UTCDateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_card_master_keys')),
    sa.UniqueConstraint('purpose', 'version', name=op.f('uq_card_master_keys_purpose_version'))
    )
    op.create_table('card_loads',
    sa.Column('id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.Column('card_id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.Column('transfer_id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.Column('amount', sa.Integer(), nullable=False),
    sa.Column('status', sa.String(length=16), nullable=False),
    sa.Column('authorised_counter', sa.Integer(), nullable=True),
    sa.Column('created_at', cardsvc.db.UTCDateTime(timezone=True), nullable=False),
    sa.Column('delivered_at', cardsvc.db.UTCDateTime(timezone=True), nullable=True),
    sa.Column('card_counter', sa.Integer(), nullable=True),
    sa.Column('card_balance', sa.Integer(), nullable=True),
    sa.Column('certificate', sa.String(length=16), nullable=True),
    sa.ForeignKeyConstraint(['card_id'], ['cards.id'], name=op.f('fk_card_loads_card_id_cards')),
    sa.ForeignKeyConstraint(['transfer_id'], ['transfers.id'], name=op.f('fk_card_loads_transfer_id_transfers')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_card_loads')),
    sa.UniqueConstraint('transfer_id', name=op.f('uq_card_loads_transfer_id'))
    )
    with op.batch_alter_table('card_loads', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_card_loads_card_id'), ['card_id'], unique=False)

    with op.batch_alter_table('cards', schema=None) as batch_op:
        batch_op.add_column(sa.Column('load_key_version', sa.Integer(), nullable=True))



def downgrade() -> None:
    with op.batch_alter_table('cards', schema=None) as batch_op:
        batch_op.drop_column('load_key_version')

    with op.batch_alter_table('card_loads', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_card_loads_card_id'))

    op.drop_table('card_loads')
    op.drop_table('card_master_keys')
