"""Revoked staff tokens

A logout ends a staff token at once (API and counter screens): its id is kept until the
token would have expired anyway.

Revision ID: f96c614c09e0
Revises: 39016b697b7f
Create Date: 2026-12-06 05:38:55.926596
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import cardsvc.db

revision: str = 'f96c614c09e0'
down_revision: str | None = '39016b697b7f'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table('revoked_tokens',
    sa.Column('token_id', sa.String(length=32), nullable=False),
    sa.Column('staff_id', sa.Integer(), nullable=False),
    sa.Column('revoked_at', cardsvc.db.UTCDateTime(timezone=True), nullable=False),
    sa.Column('expires_at', cardsvc.db.UTCDateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('token_id', name=op.f('pk_revoked_tokens'))
    )
    with op.batch_alter_table('revoked_tokens', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_revoked_tokens_expires_at'), ['expires_at'], unique=False)



def downgrade() -> None:
    with op.batch_alter_table('revoked_tokens', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_revoked_tokens_expires_at'))

    op.drop_table('revoked_tokens')
