"""INSERT ... ON CONFLICT DO NOTHING for both backends: one round trip where a savepoint
around a plain INSERT costs three."""

from __future__ import annotations

from typing import Any

from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.orm import Session


def insert_if_absent(db: Session, model: Any, values: dict[str, Any],
                     conflict: list[Any], returning: Any) -> Any | None:
    """Insert a row unless its unique key exists; return `returning` of the new row or None.

    On PostgreSQL a concurrent insert of the same key waits for the other transaction: if it
    commits, this returns None; if it rolls back, this inserts."""
    dialect = db.get_bind().dialect.name
    insert_fn = pg_insert if dialect == "postgresql" else sqlite_insert
    stmt = insert_fn(model).values(**values).on_conflict_do_nothing(
        index_elements=conflict).returning(returning)
    return db.execute(stmt).scalar_one_or_none()
