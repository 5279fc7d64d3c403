"""login throttle per account and source address

Revision ID: a1a101ec9f6f
Revises: 0fc4be2547a2
Create Date: 2026-12-01 21:41:00

Failed logins were counted per username alone, so anyone could lock any account (admin
included) with five wrong passwords. They are now counted per account and source address, per
source and per account, and sources that logged into an account are remembered
(`cardsvc/staff/throttle.py`). The counters are short-lived state: the old
table is replaced, not converted (a lock in force ends with it).
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import cardsvc.db

revision: str = 'a1a101ec9f6f'
down_revision: str | None = '0fc4be2547a2'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def _table(key: str, size: int) -> None:
    op.create_table(
        'login_throttle',
        sa.Column(key, sa.String(length=size), nullable=False),
        sa.Column('failures', sa.Integer(), nullable=False),
        sa.Column('locked_until', cardsvc.db.UTCDateTime(timezone=True), nullable=True),
        sa.Column('last_failure_at', cardsvc.db.UTCDateTime(timezone=True), nullable=True),
        *([sa.Column('last_success_at', cardsvc.db.UTCDateTime(timezone=True), nullable=True)]
          if key == 'key' else []),
        sa.PrimaryKeyConstraint(key, name=op.f('pk_login_throttle')),
    )


def upgrade() -> None:
    op.drop_table('login_throttle')
    _table('key', 200)


def downgrade() -> None:
    op.drop_table('login_throttle')
    _table('username', 64)
