"""The database as an attacker with the disk would read it: for checking that personal data
is not stored in the clear, or is gone once erased."""

from __future__ import annotations

import json
from pathlib import Path

from sqlalchemy import inspect, text

from cardsvc.runtime import Runtime


def all_database_text(rt: Runtime) -> str:
    """Everything the database holds, as text: the raw file for SQLite (plus its WAL, and
    whatever its free pages still hold), every row of every table for PostgreSQL."""
    if rt.engine.dialect.name == "sqlite":
        rt.engine.dispose()
        assert rt.engine.url.database is not None
        path = Path(rt.engine.url.database)
        raw = path.read_bytes()
        wal = Path(f"{path}-wal")
        if wal.exists():
            raw += wal.read_bytes()
        return raw.decode("utf-8", errors="replace")
    parts = []
    with rt.engine.connect() as conn:
        for table in inspect(conn).get_table_names():
            for row in conn.execute(text(f'SELECT * FROM "{table}"')):
                parts.append(json.dumps([str(v) for v in row], ensure_ascii=False))
    return "\n".join(parts)
