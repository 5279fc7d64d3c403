"""What every service call receives: the unit of work, settings, keys and the acting person."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from zoneinfo import ZoneInfo

from sqlalchemy.orm import Session

from cardsvc.config import BUSINESS_TZ, Settings
from cardsvc.db import utcnow
from cardsvc.security.crypto import Keyring
from cardsvc.services import Services

TAIPEI = ZoneInfo(BUSINESS_TZ)


@dataclass(frozen=True)
class Actor:
    staff_id: int | None
    username: str
    role: str

    @classmethod
    def system(cls, name: str = "system") -> Actor:
        return cls(None, name, "system")


@dataclass
class Ctx:
    db: Session
    settings: Settings
    keys: Keyring
    actor: Actor
    now: dt.datetime = field(default_factory=utcnow)
    services: Services = field(default_factory=Services)

    @property
    def today(self) -> dt.date:
        """The business day in Asia/Taipei (eligibility, expiry and statistics use it)."""
        return self.now.astimezone(TAIPEI).date()
