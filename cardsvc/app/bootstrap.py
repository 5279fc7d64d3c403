"""First start: secrets, schema and the first admin account."""

from __future__ import annotations

import os
from dataclasses import dataclass

from cardsvc.app import migrate
from cardsvc.app.hardware import make_counter_reader
from cardsvc.app.push import LibraryPush, PlatformUnbindPush
from cardsvc.app.senders import LogSender
from cardsvc.config import Settings
from cardsvc.context import Actor
from cardsvc.db import unit_of_work
from cardsvc.einvoice.platform import UnbindTeller
from cardsvc.errors import ConfigurationError
from cardsvc.keystore.service import KeyStore
from cardsvc.library.feed import FeedNotifier
from cardsvc.notify.service import Sender
from cardsvc.runtime import Runtime
from cardsvc.staff import service as staff_service
from cardsvc.staff.roles import Role
from merchants.pos.interfaces import ClearingState
from settlement.clearing.windows import ClearingWindows


def _private(path: str | None) -> None:
    """The embedded database holds ciphertext and the audit trail: owner-only, like the keys."""
    if not path or path == ":memory:":
        return
    for candidate in (path, f"{path}-wal", f"{path}-shm"):
        if os.path.exists(candidate):
            os.chmod(candidate, 0o600)


def build_runtime(settings: Settings) -> Runtime:
    """The runtime with the hardware this deployment is configured for, and what each
    domain asks of another bound to the domain that answers it."""
    rt = Runtime.build(settings, make_counter_reader(settings))
    rt.services.bind(ClearingState, ClearingWindows())
    rt.services.bind(FeedNotifier, LibraryPush(rt))
    rt.services.bind(UnbindTeller, PlatformUnbindPush(rt))
    if settings.notify_sender == "log":
        rt.services.bind(Sender, LogSender())
    return rt


@dataclass
class BootReport:
    runtime: Runtime
    secrets_created: bool
    admin_password: str | None  # set only when the first admin was just created


def bootstrap(settings: Settings, *, migrate_embedded: bool = True) -> BootReport:
    rt = build_runtime(settings)
    embedded = rt.engine.dialect.name == "sqlite"
    if embedded and migrate_embedded:
        migrate.upgrade(rt.engine)
        _private(rt.engine.url.database)
    else:
        current, head = migrate.current_revision(rt.engine), migrate.head_revision()
        if current != head:
            raise ConfigurationError(
                f"database schema is at {current or 'nothing'}, code expects {head}: "
                "run `cardsvc db upgrade`")
    password = None
    with unit_of_work(rt.sessions) as db:
        KeyStore(db, rt.keys.secrets.kek, rt.keys.secrets.system_id).ensure_initial(
            Actor.system("bootstrap"))
        staff_service.ensure_default_desk(db, Actor.system("bootstrap"),
                                          settings.default_counter)
        if staff_service.count_staff(db) == 0:
            password = staff_service.generate_password()
            staff_service.create_staff(db, Actor.system("bootstrap"), "admin", Role.ADMIN,
                                       password, "Administrator")
    return BootReport(rt, rt.secrets_created, password)
