"""The process-wide pieces: settings, keys, engine and session factory, built once."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

from sqlalchemy import Engine
from sqlalchemy.orm import Session, sessionmaker

from cardsvc.cards.reader import NO_READER, CounterReader
from cardsvc.config import Settings, get_settings
from cardsvc.context import Actor, Ctx
from cardsvc.db import make_engine, make_sessionmaker
from cardsvc.security.crypto import Keyring
from cardsvc.security.secrets import load_secrets
from cardsvc.services import Services


@dataclass
class Runtime:
    settings: Settings
    keys: Keyring
    engine: Engine
    sessions: sessionmaker[Session]
    counter: CounterReader
    secrets_created: bool = False
    # What domains ask of others, bound by the composition root (cardsvc.services).
    services: Services = field(default_factory=Services)

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

    def ctx(self, db: Session, actor: Actor) -> Ctx:
        """A unit of work's context on this runtime, acting as `actor`."""
        return Ctx(db=db, settings=self.settings, keys=self.keys, actor=actor,
                   services=self.services)

    def close(self) -> None:
        self.engine.dispose()


_process: Runtime | None = None
# How a worker builds its runtime: the composition root sets its own (hardware, the services
# domains ask of each other) when the worker loads it (cardsvc.app.worker).
_builder: Callable[[Settings], Runtime] = Runtime.build


def build_process_runtime_with(builder: Callable[[Settings], Runtime]) -> None:
    global _builder
    _builder = builder


def use_process_runtime(rt: Runtime | None) -> None:
    """Run this process's tasks against `rt` (the CLI and tests); None: build one from the
    environment on first use (a worker)."""
    global _process
    _process = rt


def process_runtime() -> Runtime:
    """The runtime of a worker process, built from its settings once."""
    global _process
    if _process is None:
        _process = _builder(get_settings())
    return _process
