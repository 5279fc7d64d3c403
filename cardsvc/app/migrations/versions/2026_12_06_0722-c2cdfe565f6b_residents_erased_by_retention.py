"""Residents erased by retention

A resident with no live card, no open balance and no activity for the configured years has
their personal data erased (cardsvc/holders/retention.py): the row stays as the pseudonymous
id the rest of the system names, and `erased_at` says when it was erased. Every existing
resident starts not erased.

Revision ID: c2cdfe565f6b
Revises: f96c614c09e0
Create Date: 2026-12-06 07:22:47.364172
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import cardsvc.db

revision: str = 'c2cdfe565f6b'
down_revision: str | None = 'f96c614c09e0'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.add_column('cardholders', sa.Column('erased_at', cardsvc.db.UTCDateTime(timezone=True), nullable=True))


def downgrade() -> None:
    # In place on SQLite too: rebuilding the table would trip every foreign key naming it.
    op.drop_column('cardholders', 'erased_at')
