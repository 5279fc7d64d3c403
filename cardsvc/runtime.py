"""The process-wide pieces: settings, keys, engine and session factory, built once."""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import Engine
from sqlalchemy.orm import Session, sessionmaker

from cardsvc.cards.reader import NO_READER, CounterReader
from cardsvc.config import Settings
from cardsvc.db import make_engine, make_sessionmaker
from cardsvc.security.crypto import Keyring
from cardsvc.security.secrets import load_secrets


@dataclass
class Runtime:
    settings: Settings
    keys: Keyring
    engine: Engine
    sessions: sessionmaker[Session]
    counter: CounterReader
    secrets_created: bool = False

    @classmethod
    def build(cls, settings: Settings, counter: CounterReader = NO_READER) -> Runtime:
        """The pieces from `settings`; `counter` is the counter's card reader, which the
        composition root chooses (`cardsvc.app.hardware`): none by default."""
        value, created = load_secrets(settings.secrets_file, settings.generate_secrets)
        engine = make_engine(settings.database_url)
        return cls(settings=settings,
                   keys=Keyring.from_secrets(value, settings.token_ttl_seconds),
                   engine=engine, sessions=make_sessionmaker(engine), counter=counter,
                   secrets_created=created)

    def close(self) -> None:
        self.engine.dispose()
