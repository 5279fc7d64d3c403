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
CTX_KEY = "cardsvc.ctx"


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

    def __post_init__(self) -> None:
        # Work that runs at commit on behalf of the unit of work (a library's feed, which
        # builds records that need the keys and the business day) finds its context here.
        self.db.info[CTX_KEY] = self

    @property
    def today(self) -> dt.date:
        """The business day in Asia/Taipei (eligibility, expiry and statistics use it)."""
        return self.now.astimezone(TAIPEI).date()


def ctx_of(db: Session) -> Ctx | None:
    """The context of the latest service call in this unit of work, if any."""
    found = db.info.get(CTX_KEY)
    return found if isinstance(found, Ctx) else None
