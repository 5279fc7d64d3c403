"""idempotency answers indexed by age for their retention purge

The stored answers of money-moving requests are kept `idempotency_retention_days` and then
purged by a daily task, which deletes by age: without an index that is a scan of every
answer kept (one per purchase).

Revision ID: 3a23c67d8005
Revises: a1a101ec9f6f
Create Date: 2026-12-02 00:36:31.982494
"""

from collections.abc import Sequence

from alembic import op

revision: str = '3a23c67d8005'
down_revision: str | None = 'a1a101ec9f6f'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table('idempotency_records', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_idempotency_records_created_at'), ['created_at'],
                              unique=False)


def downgrade() -> None:
    with op.batch_alter_table('idempotency_records', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_idempotency_records_created_at'))
