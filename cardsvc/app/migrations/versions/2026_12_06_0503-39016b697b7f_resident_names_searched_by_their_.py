"""Resident names searched by their beginning

A search by name matches names that begin with what was typed (a surname, a whole name): the
name index answers it, with PostgreSQL's pattern operators whatever the database collation.

Revision ID: 39016b697b7f
Revises: b738138701a6
Create Date: 2026-12-06 05:03:35.657455
"""

from collections.abc import Sequence

from alembic import op

revision: str = '39016b697b7f'
down_revision: str | None = 'b738138701a6'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.drop_index('ix_cardholders_name', table_name='cardholders')
    op.create_index('ix_cardholders_name_prefix', 'cardholders', ['name'], unique=False,
                    postgresql_ops={'name': 'text_pattern_ops'})


def downgrade() -> None:
    op.drop_index('ix_cardholders_name_prefix', table_name='cardholders')
    op.create_index('ix_cardholders_name', 'cardholders', ['name'], unique=False)
