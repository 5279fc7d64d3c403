"""library links feeds and sip2 logins

Libraries (registry, feed credentials, webhook), their SIP2 logins, residents' links with
their consent and patron ids, each library's feed of patron events (numbered per library)
and its delivery state.

Revision ID: 48e077c0f27f
Revises: 3a23c67d8005
Create Date: 2026-12-05 23:46:56.980221
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import cardsvc.db

revision: str = '48e077c0f27f'
down_revision: str | None = '3a23c67d8005'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table('libraries',
    sa.Column('id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.Column('code', sa.String(length=16), nullable=False),
    sa.Column('name', sa.String(length=100), nullable=False),
    sa.Column('ils', sa.String(length=16), nullable=False),
    sa.Column('categories', sa.Text(), nullable=False),
    sa.Column('home_branch', sa.String(length=32), nullable=False),
    sa.Column('optional_fields', sa.Text(), nullable=False),
    sa.Column('webhook_url', sa.String(length=500), nullable=True),
    sa.Column('webhook_secret_enc', sa.Text(), nullable=True),
    sa.Column('feed_key_id', sa.String(length=32), nullable=False),
    sa.Column('feed_key_hash', sa.String(length=200), nullable=False),
    sa.Column('active', sa.Boolean(), nullable=False),
    sa.Column('created_at', cardsvc.db.UTCDateTime(timezone=True), nullable=False),
    sa.Column('updated_at', cardsvc.db.UTCDateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_libraries')),
    sa.UniqueConstraint('code', name=op.f('uq_libraries_code')),
    sa.UniqueConstraint('feed_key_id', name=op.f('uq_libraries_feed_key_id'))
    )
    op.create_table('library_events',
    sa.Column('id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.Column('library_id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.Column('seq', sa.Integer(), nullable=False),
    sa.Column('event_id', sa.String(length=40), nullable=False),
    sa.Column('kind', sa.String(length=16), nullable=False),
    sa.Column('patron_id', sa.String(length=20), nullable=False),
    sa.Column('record', sa.Text(), nullable=False),
    sa.Column('cause', sa.String(length=40), nullable=False),
    sa.Column('created_at', cardsvc.db.UTCDateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['library_id'], ['libraries.id'], name=op.f('fk_library_events_library_id_libraries')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_library_events')),
    sa.UniqueConstraint('event_id', name=op.f('uq_library_events_event_id')),
    sa.UniqueConstraint('library_id', 'seq', name=op.f('uq_library_events_library_id_seq'))
    )
    with op.batch_alter_table('library_events', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_library_events_patron_id'), ['patron_id'], unique=False)

    op.create_table('library_feeds',
    sa.Column('library_id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.Column('last_seq', sa.Integer(), nullable=False),
    sa.Column('delivered_seq', sa.Integer(), nullable=False),
    sa.Column('failures', sa.Integer(), nullable=False),
    sa.Column('next_attempt_at', cardsvc.db.UTCDateTime(timezone=True), nullable=True),
    sa.Column('parked_at', cardsvc.db.UTCDateTime(timezone=True), nullable=True),
    sa.Column('last_error', sa.String(length=500), nullable=True),
    sa.Column('claim', sa.String(length=40), nullable=True),
    sa.Column('claimed_until', cardsvc.db.UTCDateTime(timezone=True), nullable=True),
    sa.ForeignKeyConstraint(['library_id'], ['libraries.id'], name=op.f('fk_library_feeds_library_id_libraries')),
    sa.PrimaryKeyConstraint('library_id', name=op.f('pk_library_feeds'))
    )
    op.create_table('library_links',
    sa.Column('id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.Column('library_id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.Column('cardholder_id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.Column('live_holder_id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=True),
    sa.Column('patron_id', sa.String(length=20), nullable=False),
    sa.Column('shared_fields', sa.Text(), nullable=False),
    sa.Column('consent_text', sa.Text(), nullable=False),
    sa.Column('consented_at', cardsvc.db.UTCDateTime(timezone=True), nullable=False),
    sa.Column('consented_by', sa.String(length=64), nullable=False),
    sa.Column('pin_hash', sa.String(length=200), nullable=True),
    sa.Column('unlinked_at', cardsvc.db.UTCDateTime(timezone=True), nullable=True),
    sa.Column('unlinked_by', sa.String(length=64), nullable=True),
    sa.Column('last_record', sa.Text(), nullable=True),
    sa.ForeignKeyConstraint(['cardholder_id'], ['cardholders.id'], name=op.f('fk_library_links_cardholder_id_cardholders')),
    sa.ForeignKeyConstraint(['library_id'], ['libraries.id'], name=op.f('fk_library_links_library_id_libraries')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_library_links')),
    sa.UniqueConstraint('library_id', 'live_holder_id', name=op.f('uq_library_links_library_id_live_holder_id')),
    sa.UniqueConstraint('patron_id', name=op.f('uq_library_links_patron_id'))
    )
    with op.batch_alter_table('library_links', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_library_links_cardholder_id'), ['cardholder_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_library_links_library_id'), ['library_id'], unique=False)

    op.create_table('library_sip_logins',
    sa.Column('id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.Column('library_id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.Column('username', sa.String(length=64), nullable=False),
    sa.Column('password_hash', sa.String(length=200), nullable=False),
    sa.Column('expiry_field', sa.String(length=2), nullable=False),
    sa.Column('encoding', sa.String(length=16), nullable=False),
    sa.Column('active', sa.Boolean(), nullable=False),
    sa.Column('created_at', cardsvc.db.UTCDateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['library_id'], ['libraries.id'], name=op.f('fk_library_sip_logins_library_id_libraries')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_library_sip_logins')),
    sa.UniqueConstraint('username', name=op.f('uq_library_sip_logins_username'))
    )
    with op.batch_alter_table('library_sip_logins', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_library_sip_logins_library_id'), ['library_id'], unique=False)



def downgrade() -> None:
    with op.batch_alter_table('library_sip_logins', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_library_sip_logins_library_id'))

    op.drop_table('library_sip_logins')
    with op.batch_alter_table('library_links', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_library_links_library_id'))
        batch_op.drop_index(batch_op.f('ix_library_links_cardholder_id'))

    op.drop_table('library_links')
    op.drop_table('library_feeds')
    with op.batch_alter_table('library_events', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_library_events_patron_id'))

    op.drop_table('library_events')
    op.drop_table('libraries')
