"""Concession profiles on chips and staff employments

A card's concession now ends on its own date (`cards.concession_until`) while the card stays
valid; chips carry the concession as a versioned profile, updated through
`card_profile_updates`. Employments are the staff card's proof.

Cards issued before this kept the concession's end as their expiry: that date becomes the
concession's end, and every live chip with a concession gets its first profile as a pending
update, written at its next tap (until then its holder pays the full fare).

Revision ID: d49e07a570a2
Revises: e0d7f5f5d2bb
Create Date: 2026-12-06 04:05:30.587405
"""

import datetime
from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import cardsvc.db

revision: str = 'd49e07a570a2'
down_revision: str | None = 'e0d7f5f5d2bb'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table('employments',
    sa.Column('id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.Column('cardholder_id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.Column('employer', sa.String(length=100), nullable=False),
    sa.Column('employer_kind', sa.String(length=24), nullable=False),
    sa.Column('valid_until', sa.Date(), nullable=False),
    sa.Column('created_at', cardsvc.db.UTCDateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['cardholder_id'], ['cardholders.id'], name=op.f('fk_employments_cardholder_id_cardholders')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_employments'))
    )
    with op.batch_alter_table('employments', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_employments_cardholder_id'), ['cardholder_id'], unique=False)

    op.create_table('card_profile_updates',
    sa.Column('id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.Column('card_id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.Column('version', sa.Integer(), nullable=False),
    sa.Column('concession', sa.String(length=16), nullable=False),
    sa.Column('ends_on', sa.Date(), nullable=True),
    sa.Column('status', sa.String(length=16), nullable=False),
    sa.Column('created_at', cardsvc.db.UTCDateTime(timezone=True), nullable=False),
    sa.Column('delivered_at', cardsvc.db.UTCDateTime(timezone=True), nullable=True),
    sa.Column('delivered_by', sa.String(length=40), nullable=True),
    sa.ForeignKeyConstraint(['card_id'], ['cards.id'], name=op.f('fk_card_profile_updates_card_id_cards')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_card_profile_updates')),
    sa.UniqueConstraint('card_id', 'version', name=op.f('uq_card_profile_updates_card_id_version'))
    )
    with op.batch_alter_table('card_profile_updates', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_card_profile_updates_card_id'), ['card_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_card_profile_updates_status'), ['status'], unique=False)

    with op.batch_alter_table('cards', schema=None) as batch_op:
        batch_op.add_column(sa.Column('concession_until', sa.Date(), nullable=True))
        batch_op.add_column(sa.Column('profile_version', sa.Integer(), server_default='0', nullable=False))

    op.execute("UPDATE cards SET concession_until = expires_on WHERE concession <> 'none'")
    conn = op.get_bind()
    chips = conn.execute(sa.text(
        "SELECT id, concession, expires_on FROM cards WHERE concession <> 'none' "
        "AND load_key_version IS NOT NULL AND chip_uid IS NOT NULL "
        "AND status IN ('issued', 'active', 'suspended', 'blocked')")).all()
    if chips:
        updates = sa.table(
            'card_profile_updates', sa.column('card_id', sa.BigInteger()),
            sa.column('version', sa.Integer()), sa.column('concession', sa.String()),
            sa.column('ends_on', sa.Date()), sa.column('status', sa.String()),
            sa.column('created_at', cardsvc.db.UTCDateTime(timezone=True)))
        now = datetime.datetime.now(datetime.UTC)
        op.bulk_insert(updates, [{"card_id": r[0], "version": 1, "concession": r[1],
                                  "ends_on": r[2], "status": "pending", "created_at": now}
                                 for r in chips])
        op.execute("UPDATE cards SET profile_version = 1 WHERE id IN (SELECT card_id FROM "
                   "card_profile_updates WHERE version = 1)")



def downgrade() -> None:
    with op.batch_alter_table('card_profile_updates', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_card_profile_updates_status'))
        batch_op.drop_index(batch_op.f('ix_card_profile_updates_card_id'))

    op.drop_table('card_profile_updates')
    with op.batch_alter_table('employments', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_employments_cardholder_id'))

    op.drop_table('employments')
    # In place (SQLite 3.35+ and PostgreSQL): rebuilding `cards` would break the foreign
    # keys every other table holds to it.
    op.execute("ALTER TABLE cards DROP COLUMN profile_version")
    op.execute("ALTER TABLE cards DROP COLUMN concession_until")
