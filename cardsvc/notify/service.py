"""Emptying the outbox through a sender (domains write to it in their own transactions,
once per dedup key).

Senders are the edge of the world (an SMS gateway, a mail relay): the root binds one; the
fake keeps what it was given, for tests and the demo."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Protocol

from sqlalchemy import select

from cardsvc.context import Ctx
from cardsvc.holders.models import Cardholder
from cardsvc.notify.models import Notification, NotificationStatus

BATCH = 200


class Sender(Protocol):
    def send(self, channel: str, to: str, text: str) -> None:
        """Deliver one message, or raise OSError when it could not be sent now."""
        ...


@dataclass
class FakeSender:
    """Keeps every message instead of sending it."""

    sent: list[tuple[str, str, str]] = field(default_factory=list)

    def send(self, channel: str, to: str, text: str) -> None:
        self.sent.append((channel, to, text))


def deliver(ctx: Ctx, sender: Sender) -> int:
    """Send what is pending, by phone where the resident left one, else by e-mail."""
    pending = list(ctx.db.scalars(select(Notification).where(
        Notification.status == NotificationStatus.PENDING).order_by(Notification.id)
        .limit(BATCH).with_for_update(skip_locked=True)))
    sent = 0
    for note in pending:
        holder = ctx.db.get(Cardholder, note.cardholder_id)
        assert holder is not None  # noqa: S101 - foreign key
        note.attempts += 1
        if holder.phone_enc:
            channel, to = "sms", ctx.keys.pii.decrypt("phone", holder.phone_enc)
        elif holder.email_enc:
            channel, to = "email", ctx.keys.pii.decrypt("email", holder.email_enc)
        else:
            note.status = NotificationStatus.FAILED
            continue
        try:
            sender.send(channel, to, note.text)
        except OSError:
            continue  # stays pending: the next round tries again
        note.status, note.channel, note.sent_at = NotificationStatus.SENT, channel, ctx.now
        sent += 1
    ctx.db.flush()
    return sent
