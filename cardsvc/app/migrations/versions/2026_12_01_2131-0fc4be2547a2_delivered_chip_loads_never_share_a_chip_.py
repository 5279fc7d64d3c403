"""delivered chip loads never share a chip counter

Revision ID: 0fc4be2547a2
Revises: 3b8e5d21c4a7
Create Date: 2026-12-01 21:31:56.410556

Two counter sessions on one card at once could each have a load marked delivered with the
same chip counter (one of them overwrote the other on the chip). Before the index, every
such load but the first is put to `review`, where a supervisor resolves it (on the chip after
all, or refunded: POST /cards/{id}/card-loads/{load}/resolve), as for any load whose delivery
the chip cannot prove. Which of the loads the chip really holds is not known here: each one
moved is written to the audit trail (as a pending row, chained by the next reader).
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = '0fc4be2547a2'
down_revision: str | None = '3b8e5d21c4a7'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

DELIVERED = sa.text("status = 'delivered'")


REPEATS = """
    status = 'delivered' AND card_counter IS NOT NULL AND EXISTS (
        SELECT 1 FROM card_loads first
        WHERE first.card_id = card_loads.card_id
          AND first.card_counter = card_loads.card_counter
          AND first.status = 'delivered' AND first.id < card_loads.id)
"""


def upgrade() -> None:
    op.execute(f"""
        INSERT INTO audit_pending (at, actor, actor_role, action, purpose, target_type,
                                   target_id, detail)
        SELECT CURRENT_TIMESTAMP, 'migration:0fc4be2547a2', 'system', 'card.load_review',
               NULL, 'card', CAST(card_id AS VARCHAR(64)),
               '{{"load_id":' || CAST(id AS VARCHAR(20)) || ',"card_counter":'
               || CAST(card_counter AS VARCHAR(20))
               || ',"why":"another delivery holds the same chip counter"}}'
        FROM card_loads WHERE {REPEATS}
    """)
    op.execute(f"UPDATE card_loads SET status = 'review' WHERE {REPEATS}")
    with op.batch_alter_table('card_loads', schema=None) as batch_op:
        batch_op.create_index('uq_card_loads_delivered_counter', ['card_id', 'card_counter'],
                              unique=True, sqlite_where=DELIVERED, postgresql_where=DELIVERED)


def downgrade() -> None:
    with op.batch_alter_table('card_loads', schema=None) as batch_op:
        batch_op.drop_index('uq_card_loads_delivered_counter', sqlite_where=DELIVERED,
                            postgresql_where=DELIVERED)
