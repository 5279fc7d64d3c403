"""fast purchases lock every account of the batch first, in id order

Revision ID: 3b8e5d21c4a7
Revises: 7c1f0a9d2b6e
Create Date: 2026-11-29 13:00:00

`pos_fast_purchases` books several purchases in one transaction. Each purchase locked its
purse and takings in id order, but two batches locking (purse A, takings 1) then (purse B,
takings 2) and (purse B, ...) then (purse A, ...) waited on each other: PostgreSQL broke the
tie after deadlock_timeout (a second) and both batches went the slow way. The batch now locks
the accounts of all its purchases at once, in id order, the order every transfer takes them.
"""

from collections.abc import Sequence

from alembic import op

revision: str = '3b8e5d21c4a7'
down_revision: str | None = '7c1f0a9d2b6e'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

HEAD = r"""
CREATE OR REPLACE FUNCTION pos_fast_purchases(p_items json, p_now timestamptz,
                                              p_created_at text, p_today date,
                                              p_hotlisted text) RETURNS text[]
LANGUAGE plpgsql AS $$
-- Several purchases in one transaction (one commit for all: what lets a busy terminal
-- network go faster than one disk flush per purchase). Answers in the order given; any
-- error undoes them all, and the caller then books each on its own.
DECLARE
    r record;
    v_out text[] := '{}';
BEGIN
"""

LOCK_FIRST = r"""
    -- Every purse and takings account of the batch, locked in id order before any purchase
    -- (each purchase's own lock then finds it held): batches sharing accounts queue, never
    -- deadlock.
    PERFORM 1 FROM accounts
      WHERE id IN (SELECT (x ->> 'pa')::bigint FROM json_array_elements(p_items) AS x
                   UNION SELECT (x ->> 'ta')::bigint FROM json_array_elements(p_items) AS x)
      ORDER BY id FOR UPDATE;
"""

TAIL = r"""
    FOR r IN SELECT * FROM json_to_recordset(p_items) AS x(
        t bigint, k text, n text, ik text, rh text, ir text, c bigint, cn text, u text,
        v integer, a bigint, cc integer, b bigint, s bigint, ct bigint, cert text,
        pa bigint, ta bigint)
    LOOP
        v_out := v_out || pos_fast_purchase(r.t, r.k, r.n, p_now, p_created_at, r.ik, r.rh,
                                            r.ir, r.c, r.cn, r.u, r.v, r.a, r.cc, r.b, r.s,
                                            r.ct, r.cert, p_today, p_hotlisted, r.pa, r.ta);
    END LOOP;
    RETURN v_out;
END
$$;
"""


def upgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.execute(HEAD + LOCK_FIRST + TAIL)


def downgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.execute(HEAD + TAIL)
