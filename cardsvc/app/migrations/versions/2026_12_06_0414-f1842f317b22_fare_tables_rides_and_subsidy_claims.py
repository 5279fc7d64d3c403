"""Fare tables, rides and subsidy claims

Transit operators' signed fare tables, each accepted ride with what its certificate covers
(product, concession, full fare), the subsidy claims clearing decides on them, and the
subsidies column of merchant statements.

Revision ID: f1842f317b22
Revises: d49e07a570a2
Create Date: 2026-12-06 04:14:51.622016
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import cardsvc.db

revision: str = 'f1842f317b22'
down_revision: str | None = 'd49e07a570a2'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table('fare_tables',
    sa.Column('id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.Column('merchant_id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.Column('version', sa.Integer(), nullable=False),
    sa.Column('document', sa.Text(), nullable=False),
    sa.Column('key_id', sa.String(length=16), nullable=False),
    sa.Column('signature', sa.String(length=120), nullable=False),
    sa.Column('created_by', sa.String(length=64), nullable=False),
    sa.Column('created_at', cardsvc.db.UTCDateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['merchant_id'], ['merchants.id'], name=op.f('fk_fare_tables_merchant_id_merchants')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_fare_tables')),
    sa.UniqueConstraint('merchant_id', 'version', name=op.f('uq_fare_tables_merchant_id_version'))
    )
    with op.batch_alter_table('fare_tables', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_fare_tables_merchant_id'), ['merchant_id'], unique=False)

    op.create_table('rides',
    sa.Column('transaction_id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.Column('merchant_id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.Column('terminal_id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.Column('card_id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.Column('card_counter', sa.Integer(), nullable=False),
    sa.Column('route', sa.String(length=32), nullable=False),
    sa.Column('fare_table_version', sa.Integer(), nullable=False),
    sa.Column('product', sa.String(length=16), nullable=False),
    sa.Column('concession', sa.String(length=16), nullable=False),
    sa.Column('full_fare', sa.BigInteger(), nullable=False),
    sa.Column('fare', sa.BigInteger(), nullable=False),
    sa.Column('ride_at', cardsvc.db.UTCDateTime(timezone=True), nullable=False),
    sa.Column('ride_date', sa.Date(), nullable=False),
    sa.ForeignKeyConstraint(['card_id'], ['cards.id'], name=op.f('fk_rides_card_id_cards')),
    sa.ForeignKeyConstraint(['merchant_id'], ['merchants.id'], name=op.f('fk_rides_merchant_id_merchants')),
    sa.ForeignKeyConstraint(['terminal_id'], ['terminals.id'], name=op.f('fk_rides_terminal_id_terminals')),
    sa.ForeignKeyConstraint(['transaction_id'], ['pos_transactions.id'], name=op.f('fk_rides_transaction_id_pos_transactions')),
    sa.PrimaryKeyConstraint('transaction_id', name=op.f('pk_rides')),
    sa.UniqueConstraint('card_id', 'card_counter', name=op.f('uq_rides_card_id_card_counter'))
    )
    with op.batch_alter_table('rides', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_rides_card_id'), ['card_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_rides_merchant_id'), ['merchant_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_rides_ride_at'), ['ride_at'], unique=False)
        batch_op.create_index(batch_op.f('ix_rides_ride_date'), ['ride_date'], unique=False)

    op.create_table('subsidy_claims',
    sa.Column('id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.Column('window_id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.Column('transaction_id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.Column('merchant_id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.Column('programme', sa.String(length=32), nullable=False),
    sa.Column('card_id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.Column('concession', sa.String(length=16), nullable=False),
    sa.Column('ride_date', sa.Date(), nullable=False),
    sa.Column('full_fare', sa.BigInteger(), nullable=False),
    sa.Column('fare', sa.BigInteger(), nullable=False),
    sa.Column('claim', sa.BigInteger(), nullable=False),
    sa.ForeignKeyConstraint(['card_id'], ['cards.id'], name=op.f('fk_subsidy_claims_card_id_cards')),
    sa.ForeignKeyConstraint(['merchant_id'], ['merchants.id'], name=op.f('fk_subsidy_claims_merchant_id_merchants')),
    sa.ForeignKeyConstraint(['transaction_id'], ['pos_transactions.id'], name=op.f('fk_subsidy_claims_transaction_id_pos_transactions')),
    sa.ForeignKeyConstraint(['window_id'], ['clearing_windows.id'], name=op.f('fk_subsidy_claims_window_id_clearing_windows')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_subsidy_claims')),
    sa.UniqueConstraint('transaction_id', name=op.f('uq_subsidy_claims_transaction_id'))
    )
    with op.batch_alter_table('subsidy_claims', schema=None) as batch_op:
        batch_op.create_index('ix_subsidy_claims_month', ['ride_date', 'programme'], unique=False)
        batch_op.create_index(batch_op.f('ix_subsidy_claims_window_id'), ['window_id'], unique=False)

    with op.batch_alter_table('merchant_statements', schema=None) as batch_op:
        batch_op.add_column(sa.Column('subsidies', sa.BigInteger(), server_default='0', nullable=False))



def downgrade() -> None:
    # In place: rebuilding the table would break the foreign keys to it.
    op.execute("ALTER TABLE merchant_statements DROP COLUMN subsidies")

    with op.batch_alter_table('subsidy_claims', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_subsidy_claims_window_id'))
        batch_op.drop_index('ix_subsidy_claims_month')

    op.drop_table('subsidy_claims')
    with op.batch_alter_table('rides', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_rides_ride_date'))
        batch_op.drop_index(batch_op.f('ix_rides_ride_at'))
        batch_op.drop_index(batch_op.f('ix_rides_merchant_id'))
        batch_op.drop_index(batch_op.f('ix_rides_card_id'))

    op.drop_table('rides')
    with op.batch_alter_table('fare_tables', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_fare_tables_merchant_id'))

    op.drop_table('fare_tables')
