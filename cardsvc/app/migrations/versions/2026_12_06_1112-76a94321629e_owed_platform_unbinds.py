"""Unbindings owed to the e-invoice platform

An ended 歸戶 binding was told to the MOF platform inside the transaction that ended it: a
transaction that then failed left the platform unbound while the database still held the
binding. Now the transaction writes what the platform is owed (`einvoice_owed_unbinds`) and
the platform is told after the commit (`cardsvc.einvoice.platform`).

Revision ID: 76a94321629e
Revises: 75683a047af5
Create Date: 2026-12-06 11:12:16
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import cardsvc.db

revision: str = '76a94321629e'
down_revision: str | None = '75683a047af5'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table('einvoice_owed_unbinds',
    sa.Column('id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.Column('binding_id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.Column('carrier_id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.Column('carrier_type', sa.String(length=8), nullable=False),
    sa.Column('visible_id', sa.String(length=64), nullable=False),
    sa.Column('mobile_barcode', sa.String(length=8), nullable=False),
    sa.Column('owed_since', cardsvc.db.UTCDateTime(timezone=True), nullable=False),
    sa.Column('attempts', sa.Integer(), nullable=False),
    sa.Column('last_error', sa.String(length=200), nullable=True),
    sa.Column('told_at', cardsvc.db.UTCDateTime(timezone=True), nullable=True),
    sa.ForeignKeyConstraint(['binding_id'], ['einvoice_bindings.id'], name=op.f('fk_einvoice_owed_unbinds_binding_id_einvoice_bindings')),
    sa.ForeignKeyConstraint(['carrier_id'], ['einvoice_carriers.id'], name=op.f('fk_einvoice_owed_unbinds_carrier_id_einvoice_carriers')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_einvoice_owed_unbinds'))
    )
    with op.batch_alter_table('einvoice_owed_unbinds', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_einvoice_owed_unbinds_binding_id'), ['binding_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_einvoice_owed_unbinds_carrier_id'), ['carrier_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_einvoice_owed_unbinds_told_at'), ['told_at'], unique=False)



def downgrade() -> None:
    with op.batch_alter_table('einvoice_owed_unbinds', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_einvoice_owed_unbinds_told_at'))
        batch_op.drop_index(batch_op.f('ix_einvoice_owed_unbinds_carrier_id'))
        batch_op.drop_index(batch_op.f('ix_einvoice_owed_unbinds_binding_id'))

    op.drop_table('einvoice_owed_unbinds')
