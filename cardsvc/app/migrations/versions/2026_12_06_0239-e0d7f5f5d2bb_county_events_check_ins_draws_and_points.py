"""County events, check-ins, draws and points

Events with their draws' commitments, frozen ticket lists and winners; residents' check-ins;
the points ledger apart from money, its reward catalogue and redemptions; and the department
an organiser works for.

Revision ID: e0d7f5f5d2bb
Revises: c4baffb5def4
Create Date: 2026-12-06 02:39:43.496713
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import cardsvc.db

revision: str = 'e0d7f5f5d2bb'
down_revision: str | None = 'c4baffb5def4'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table('events',
    sa.Column('id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.Column('title', sa.String(length=200), nullable=False),
    sa.Column('department', sa.String(length=64), nullable=False),
    sa.Column('venue', sa.String(length=200), nullable=False),
    sa.Column('starts_at', cardsvc.db.UTCDateTime(timezone=True), nullable=False),
    sa.Column('ends_at', cardsvc.db.UTCDateTime(timezone=True), nullable=False),
    sa.Column('checkin_opens', cardsvc.db.UTCDateTime(timezone=True), nullable=False),
    sa.Column('checkin_closes', cardsvc.db.UTCDateTime(timezone=True), nullable=False),
    sa.Column('points', sa.Integer(), nullable=False),
    sa.Column('capacity', sa.Integer(), nullable=True),
    sa.Column('prizes', sa.Integer(), nullable=False),
    sa.Column('prize_description', sa.Text(), nullable=True),
    sa.Column('status', sa.String(length=10), nullable=False),
    sa.Column('checkins', sa.Integer(), nullable=False),
    sa.Column('created_by', sa.String(length=64), nullable=False),
    sa.Column('created_at', cardsvc.db.UTCDateTime(timezone=True), nullable=False),
    sa.Column('published_at', cardsvc.db.UTCDateTime(timezone=True), nullable=True),
    sa.Column('seed_enc', sa.Text(), nullable=True),
    sa.Column('commitment', sa.String(length=64), nullable=True),
    sa.Column('frozen_at', cardsvc.db.UTCDateTime(timezone=True), nullable=True),
    sa.Column('merkle_root', sa.String(length=64), nullable=True),
    sa.Column('public_value', sa.String(length=200), nullable=True),
    sa.Column('seed_revealed', sa.String(length=64), nullable=True),
    sa.Column('drawn_at', cardsvc.db.UTCDateTime(timezone=True), nullable=True),
    sa.Column('drawn_by', sa.String(length=64), nullable=True),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_events'))
    )
    with op.batch_alter_table('events', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_events_department'), ['department'], unique=False)
        batch_op.create_index(batch_op.f('ix_events_status'), ['status'], unique=False)

    op.create_table('reward_items',
    sa.Column('id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.Column('name', sa.String(length=100), nullable=False),
    sa.Column('points', sa.Integer(), nullable=False),
    sa.Column('stock', sa.Integer(), nullable=False),
    sa.Column('active', sa.Boolean(), nullable=False),
    sa.Column('created_at', cardsvc.db.UTCDateTime(timezone=True), nullable=False),
    sa.CheckConstraint('points > 0', name=op.f('ck_reward_items_points_positive')),
    sa.CheckConstraint('stock >= 0', name=op.f('ck_reward_items_stock_not_negative')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_reward_items'))
    )
    op.create_table('points_accounts',
    sa.Column('cardholder_id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.Column('balance', sa.Integer(), nullable=False),
    sa.CheckConstraint('balance >= 0', name=op.f('ck_points_accounts_balance_not_negative')),
    sa.ForeignKeyConstraint(['cardholder_id'], ['cardholders.id'], name=op.f('fk_points_accounts_cardholder_id_cardholders')),
    sa.PrimaryKeyConstraint('cardholder_id', name=op.f('pk_points_accounts'))
    )
    op.create_table('points_entries',
    sa.Column('id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.Column('cardholder_id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.Column('kind', sa.String(length=8), nullable=False),
    sa.Column('points', sa.Integer(), nullable=False),
    sa.Column('expires_on', sa.Date(), nullable=True),
    sa.Column('reference', sa.String(length=64), nullable=False),
    sa.Column('note', sa.Text(), nullable=True),
    sa.Column('created_at', cardsvc.db.UTCDateTime(timezone=True), nullable=False),
    sa.Column('created_by', sa.String(length=64), nullable=False),
    sa.ForeignKeyConstraint(['cardholder_id'], ['cardholders.id'], name=op.f('fk_points_entries_cardholder_id_cardholders')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_points_entries')),
    sa.UniqueConstraint('reference', name=op.f('uq_points_entries_reference'))
    )
    with op.batch_alter_table('points_entries', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_points_entries_cardholder_id'), ['cardholder_id'], unique=False)

    op.create_table('points_redemptions',
    sa.Column('id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.Column('cardholder_id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.Column('item_id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.Column('quantity', sa.Integer(), nullable=False),
    sa.Column('points', sa.Integer(), nullable=False),
    sa.Column('created_at', cardsvc.db.UTCDateTime(timezone=True), nullable=False),
    sa.Column('created_by', sa.String(length=64), nullable=False),
    sa.ForeignKeyConstraint(['cardholder_id'], ['cardholders.id'], name=op.f('fk_points_redemptions_cardholder_id_cardholders')),
    sa.ForeignKeyConstraint(['item_id'], ['reward_items.id'], name=op.f('fk_points_redemptions_item_id_reward_items')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_points_redemptions'))
    )
    with op.batch_alter_table('points_redemptions', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_points_redemptions_cardholder_id'), ['cardholder_id'], unique=False)

    op.create_table('event_checkins',
    sa.Column('id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.Column('event_id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.Column('cardholder_id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.Column('card_id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.Column('ticket', sa.String(length=12), nullable=False),
    sa.Column('method', sa.String(length=8), nullable=False),
    sa.Column('proof_ref', sa.String(length=80), nullable=False),
    sa.Column('station', sa.String(length=64), nullable=False),
    sa.Column('tapped_at', cardsvc.db.UTCDateTime(timezone=True), nullable=False),
    sa.Column('received_at', cardsvc.db.UTCDateTime(timezone=True), nullable=False),
    sa.Column('offline', sa.Boolean(), nullable=False),
    sa.Column('township', sa.String(length=8), nullable=True),
    sa.Column('age_band', sa.String(length=8), nullable=False),
    sa.Column('points', sa.Integer(), nullable=False),
    sa.ForeignKeyConstraint(['card_id'], ['cards.id'], name=op.f('fk_event_checkins_card_id_cards')),
    sa.ForeignKeyConstraint(['cardholder_id'], ['cardholders.id'], name=op.f('fk_event_checkins_cardholder_id_cardholders')),
    sa.ForeignKeyConstraint(['event_id'], ['events.id'], name=op.f('fk_event_checkins_event_id_events')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_event_checkins')),
    sa.UniqueConstraint('event_id', 'cardholder_id', name=op.f('uq_event_checkins_event_id_cardholder_id')),
    sa.UniqueConstraint('event_id', 'ticket', name=op.f('uq_event_checkins_event_id_ticket')),
    sa.UniqueConstraint('proof_ref', name=op.f('uq_event_checkins_proof_ref'))
    )
    with op.batch_alter_table('event_checkins', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_event_checkins_cardholder_id'), ['cardholder_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_event_checkins_event_id'), ['event_id'], unique=False)

    op.create_table('event_winners',
    sa.Column('id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.Column('event_id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.Column('rank', sa.Integer(), nullable=False),
    sa.Column('ticket', sa.String(length=12), nullable=False),
    sa.Column('checkin_id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.Column('collected_at', cardsvc.db.UTCDateTime(timezone=True), nullable=True),
    sa.Column('collected_by', sa.String(length=64), nullable=True),
    sa.ForeignKeyConstraint(['checkin_id'], ['event_checkins.id'], name=op.f('fk_event_winners_checkin_id_event_checkins')),
    sa.ForeignKeyConstraint(['event_id'], ['events.id'], name=op.f('fk_event_winners_event_id_events')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_event_winners')),
    sa.UniqueConstraint('event_id', 'rank', name=op.f('uq_event_winners_event_id_rank')),
    sa.UniqueConstraint('event_id', 'ticket', name=op.f('uq_event_winners_event_id_ticket'))
    )
    with op.batch_alter_table('event_winners', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_event_winners_event_id'), ['event_id'], unique=False)

    with op.batch_alter_table('staff', schema=None) as batch_op:
        batch_op.add_column(sa.Column('department', sa.String(length=64), nullable=True))



def downgrade() -> None:
    with op.batch_alter_table('staff', schema=None) as batch_op:
        batch_op.drop_column('department')

    with op.batch_alter_table('event_winners', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_event_winners_event_id'))

    op.drop_table('event_winners')
    with op.batch_alter_table('event_checkins', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_event_checkins_event_id'))
        batch_op.drop_index(batch_op.f('ix_event_checkins_cardholder_id'))

    op.drop_table('event_checkins')
    with op.batch_alter_table('points_redemptions', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_points_redemptions_cardholder_id'))

    op.drop_table('points_redemptions')
    with op.batch_alter_table('points_entries', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_points_entries_cardholder_id'))

    op.drop_table('points_entries')
    op.drop_table('points_accounts')
    op.drop_table('reward_items')
    with op.batch_alter_table('events', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_events_status'))
        batch_op.drop_index(batch_op.f('ix_events_department'))

    op.drop_table('events')
