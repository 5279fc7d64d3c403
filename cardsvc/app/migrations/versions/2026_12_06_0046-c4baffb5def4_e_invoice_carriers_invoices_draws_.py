"""e-invoice carriers invoices draws winnings and the notification outbox

Cards as e-invoice carriers, their invoices and allowances, bindings to mobile barcodes,
periods' draws (numbers, cloud prizes), checks and winnings; and the outbox of notices to
residents.

Revision ID: c4baffb5def4
Revises: 48e077c0f27f
Create Date: 2026-12-06 00:46:12.470565
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import cardsvc.db

revision: str = 'c4baffb5def4'
down_revision: str | None = '48e077c0f27f'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table('einvoice_checks',
    sa.Column('period', sa.Integer(), nullable=False),
    sa.Column('checked_at', cardsvc.db.UTCDateTime(timezone=True), nullable=False),
    sa.Column('checked_by', sa.String(length=64), nullable=False),
    sa.Column('invoices', sa.Integer(), nullable=False),
    sa.Column('winners', sa.Integer(), nullable=False),
    sa.Column('amount', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.Column('exclusions', sa.Text(), nullable=False),
    sa.PrimaryKeyConstraint('period', name=op.f('pk_einvoice_checks'))
    )
    op.create_table('einvoice_cloud_prizes',
    sa.Column('id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.Column('period', sa.Integer(), nullable=False),
    sa.Column('number', sa.String(length=10), nullable=False),
    sa.Column('amount', sa.Integer(), nullable=False),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_einvoice_cloud_prizes')),
    sa.UniqueConstraint('period', 'number', name=op.f('uq_einvoice_cloud_prizes_period_number'))
    )
    with op.batch_alter_table('einvoice_cloud_prizes', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_einvoice_cloud_prizes_period'), ['period'], unique=False)

    op.create_table('einvoice_draws',
    sa.Column('period', sa.Integer(), nullable=False),
    sa.Column('special_amount', sa.Integer(), nullable=False),
    sa.Column('grand_amount', sa.Integer(), nullable=False),
    sa.Column('first_amount', sa.Integer(), nullable=False),
    sa.Column('second_amount', sa.Integer(), nullable=False),
    sa.Column('third_amount', sa.Integer(), nullable=False),
    sa.Column('fourth_amount', sa.Integer(), nullable=False),
    sa.Column('fifth_amount', sa.Integer(), nullable=False),
    sa.Column('sixth_amount', sa.Integer(), nullable=False),
    sa.Column('source', sa.Text(), nullable=False),
    sa.Column('imported_at', cardsvc.db.UTCDateTime(timezone=True), nullable=False),
    sa.Column('imported_by', sa.String(length=64), nullable=False),
    sa.PrimaryKeyConstraint('period', name=op.f('pk_einvoice_draws'))
    )
    op.create_table('einvoice_winnings',
    sa.Column('id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.Column('invoice_id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.Column('period', sa.Integer(), nullable=False),
    sa.Column('cardholder_id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.Column('tier', sa.String(length=12), nullable=False),
    sa.Column('amount', sa.Integer(), nullable=False),
    sa.Column('income_tax', sa.Integer(), nullable=False),
    sa.Column('stamp_duty', sa.Integer(), nullable=False),
    sa.Column('donated', sa.Boolean(), nullable=False),
    sa.Column('claim_from', sa.Date(), nullable=False),
    sa.Column('claim_until', sa.Date(), nullable=False),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_einvoice_winnings')),
    sa.UniqueConstraint('invoice_id', name=op.f('uq_einvoice_winnings_invoice_id'))
    )
    with op.batch_alter_table('einvoice_winnings', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_einvoice_winnings_cardholder_id'), ['cardholder_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_einvoice_winnings_period'), ['period'], unique=False)

    op.create_table('einvoice_prize_numbers',
    sa.Column('id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.Column('period', sa.Integer(), nullable=False),
    sa.Column('kind', sa.String(length=12), nullable=False),
    sa.Column('number', sa.String(length=8), nullable=False),
    sa.Column('suffix', sa.String(length=3), nullable=False),
    sa.ForeignKeyConstraint(['period'], ['einvoice_draws.period'], name=op.f('fk_einvoice_prize_numbers_period_einvoice_draws')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_einvoice_prize_numbers')),
    sa.UniqueConstraint('period', 'kind', 'number', name=op.f('uq_einvoice_prize_numbers_period_kind_number'))
    )
    with op.batch_alter_table('einvoice_prize_numbers', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_einvoice_prize_numbers_period'), ['period'], unique=False)

    op.create_table('notifications',
    sa.Column('id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.Column('dedup_key', sa.String(length=120), nullable=False),
    sa.Column('cardholder_id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.Column('kind', sa.String(length=40), nullable=False),
    sa.Column('text', sa.Text(), nullable=False),
    sa.Column('status', sa.String(length=8), nullable=False),
    sa.Column('attempts', sa.Integer(), nullable=False),
    sa.Column('channel', sa.String(length=8), nullable=True),
    sa.Column('created_at', cardsvc.db.UTCDateTime(timezone=True), nullable=False),
    sa.Column('sent_at', cardsvc.db.UTCDateTime(timezone=True), nullable=True),
    sa.ForeignKeyConstraint(['cardholder_id'], ['cardholders.id'], name=op.f('fk_notifications_cardholder_id_cardholders')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_notifications')),
    sa.UniqueConstraint('dedup_key', name=op.f('uq_notifications_dedup_key'))
    )
    with op.batch_alter_table('notifications', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_notifications_cardholder_id'), ['cardholder_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_notifications_status'), ['status'], unique=False)

    op.create_table('einvoice_carriers',
    sa.Column('id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.Column('card_id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.Column('cardholder_id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.Column('carrier_type', sa.String(length=8), nullable=False),
    sa.Column('visible_id', sa.String(length=64), nullable=False),
    sa.Column('hidden_id', sa.String(length=64), nullable=False),
    sa.Column('created_at', cardsvc.db.UTCDateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['card_id'], ['cards.id'], name=op.f('fk_einvoice_carriers_card_id_cards')),
    sa.ForeignKeyConstraint(['cardholder_id'], ['cardholders.id'], name=op.f('fk_einvoice_carriers_cardholder_id_cardholders')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_einvoice_carriers')),
    sa.UniqueConstraint('card_id', name=op.f('uq_einvoice_carriers_card_id')),
    sa.UniqueConstraint('visible_id', name=op.f('uq_einvoice_carriers_visible_id'))
    )
    with op.batch_alter_table('einvoice_carriers', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_einvoice_carriers_cardholder_id'), ['cardholder_id'], unique=False)

    op.create_table('einvoice_bindings',
    sa.Column('id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.Column('carrier_id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.Column('live_carrier_id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=True),
    sa.Column('mobile_barcode', sa.String(length=8), nullable=False),
    sa.Column('bound_at', cardsvc.db.UTCDateTime(timezone=True), nullable=False),
    sa.Column('bound_by', sa.String(length=64), nullable=False),
    sa.Column('unbound_at', cardsvc.db.UTCDateTime(timezone=True), nullable=True),
    sa.Column('unbound_by', sa.String(length=64), nullable=True),
    sa.ForeignKeyConstraint(['carrier_id'], ['einvoice_carriers.id'], name=op.f('fk_einvoice_bindings_carrier_id_einvoice_carriers')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_einvoice_bindings')),
    sa.UniqueConstraint('live_carrier_id', name=op.f('uq_einvoice_bindings_live_carrier_id'))
    )
    with op.batch_alter_table('einvoice_bindings', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_einvoice_bindings_carrier_id'), ['carrier_id'], unique=False)

    op.create_table('einvoice_invoices',
    sa.Column('id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.Column('number', sa.String(length=10), nullable=False),
    sa.Column('digits', sa.String(length=8), nullable=False),
    sa.Column('suffix', sa.String(length=3), nullable=False),
    sa.Column('period', sa.Integer(), nullable=False),
    sa.Column('invoice_date', sa.Date(), nullable=False),
    sa.Column('random_code', sa.String(length=4), nullable=False),
    sa.Column('amount', sa.Integer(), nullable=False),
    sa.Column('allowances', sa.Integer(), nullable=False),
    sa.Column('buyer_tax_id', sa.String(length=8), nullable=False),
    sa.Column('seller_tax_id', sa.String(length=8), nullable=False),
    sa.Column('donation_code', sa.String(length=7), nullable=True),
    sa.Column('after_the_fact', sa.Boolean(), nullable=False),
    sa.Column('status', sa.String(length=8), nullable=False),
    sa.Column('carrier_id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.Column('merchant_id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.Column('pos_transaction_id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.Column('created_at', cardsvc.db.UTCDateTime(timezone=True), nullable=False),
    sa.Column('voided_at', cardsvc.db.UTCDateTime(timezone=True), nullable=True),
    sa.ForeignKeyConstraint(['carrier_id'], ['einvoice_carriers.id'], name=op.f('fk_einvoice_invoices_carrier_id_einvoice_carriers')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_einvoice_invoices')),
    sa.UniqueConstraint('period', 'number', name=op.f('uq_einvoice_invoices_period_number')),
    sa.UniqueConstraint('pos_transaction_id', name=op.f('uq_einvoice_invoices_pos_transaction_id'))
    )
    with op.batch_alter_table('einvoice_invoices', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_einvoice_invoices_carrier_id'), ['carrier_id'], unique=False)
        batch_op.create_index('ix_einvoice_invoices_excluded', ['period'], unique=False, postgresql_where=sa.text("status = 'voided' OR amount - allowances <= 0 OR buyer_tax_id <> '00000000' OR after_the_fact"), sqlite_where=sa.text("status = 'voided' OR amount - allowances <= 0 OR buyer_tax_id <> '00000000' OR after_the_fact"))
        batch_op.create_index(batch_op.f('ix_einvoice_invoices_merchant_id'), ['merchant_id'], unique=False)
        batch_op.create_index('ix_einvoice_invoices_period_suffix', ['period', 'suffix'], unique=False)

    op.create_table('einvoice_allowances',
    sa.Column('id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.Column('invoice_id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.Column('amount', sa.Integer(), nullable=False),
    sa.Column('reason', sa.String(length=200), nullable=False),
    sa.Column('created_at', cardsvc.db.UTCDateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['invoice_id'], ['einvoice_invoices.id'], name=op.f('fk_einvoice_allowances_invoice_id_einvoice_invoices')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_einvoice_allowances'))
    )
    with op.batch_alter_table('einvoice_allowances', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_einvoice_allowances_invoice_id'), ['invoice_id'], unique=False)



def downgrade() -> None:
    with op.batch_alter_table('einvoice_allowances', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_einvoice_allowances_invoice_id'))

    op.drop_table('einvoice_allowances')
    with op.batch_alter_table('einvoice_invoices', schema=None) as batch_op:
        batch_op.drop_index('ix_einvoice_invoices_period_suffix')
        batch_op.drop_index(batch_op.f('ix_einvoice_invoices_merchant_id'))
        batch_op.drop_index('ix_einvoice_invoices_excluded', postgresql_where=sa.text("status = 'voided' OR amount - allowances <= 0 OR buyer_tax_id <> '00000000' OR after_the_fact"), sqlite_where=sa.text("status = 'voided' OR amount - allowances <= 0 OR buyer_tax_id <> '00000000' OR after_the_fact"))
        batch_op.drop_index(batch_op.f('ix_einvoice_invoices_carrier_id'))

    op.drop_table('einvoice_invoices')
    with op.batch_alter_table('einvoice_bindings', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_einvoice_bindings_carrier_id'))

    op.drop_table('einvoice_bindings')
    with op.batch_alter_table('einvoice_carriers', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_einvoice_carriers_cardholder_id'))

    op.drop_table('einvoice_carriers')
    with op.batch_alter_table('notifications', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_notifications_status'))
        batch_op.drop_index(batch_op.f('ix_notifications_cardholder_id'))

    op.drop_table('notifications')
    with op.batch_alter_table('einvoice_prize_numbers', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_einvoice_prize_numbers_period'))

    op.drop_table('einvoice_prize_numbers')
    with op.batch_alter_table('einvoice_winnings', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_einvoice_winnings_period'))
        batch_op.drop_index(batch_op.f('ix_einvoice_winnings_cardholder_id'))

    op.drop_table('einvoice_winnings')
    op.drop_table('einvoice_draws')
    with op.batch_alter_table('einvoice_cloud_prizes', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_einvoice_cloud_prizes_period'))

    op.drop_table('einvoice_cloud_prizes')
    op.drop_table('einvoice_checks')
