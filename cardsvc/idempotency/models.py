"""The stored answers of idempotent requests."""

from __future__ import annotations

import datetime as dt

from sqlalchemy import Integer, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from cardsvc.db import Base, UTCDateTime, utcnow


class IdempotencyRecord(Base):
    """A money-moving request, keyed by the client's idempotency key.

    The primary key is the guarantee: two concurrent requests with one key cannot both
    insert, and the loser replays the winner's stored response.
    """

    __tablename__ = "idempotency_records"

    key: Mapped[str] = mapped_column(String(100), primary_key=True)
    operation: Mapped[str] = mapped_column(String(64))
    request_hash: Mapped[str] = mapped_column(String(64))
    status_code: Mapped[int] = mapped_column(Integer, default=200)
    response: Mapped[str] = mapped_column(Text, default="")
    actor: Mapped[str] = mapped_column(String(64))
    # Indexed: the retention purge deletes by age (cardsvc.idempotency.tasks).
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow, index=True)
