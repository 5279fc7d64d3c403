"""The outbox is sent by the scheduled task through the sender the root binds, and waits
while none is bound."""

from __future__ import annotations

from sqlalchemy import select

from cardsvc.notify.models import Notification, NotificationStatus
from cardsvc.notify.service import FakeSender, Sender
from cardsvc.notify.tasks import send
from tests.support import factories as f


def test_notices_wait_without_a_sender_and_go_once_with_one(rt, clerk, tasks_here) -> None:  # type: ignore[no-untyped-def]
    holder = f.holder(clerk)
    with rt.sessions.begin() as db:
        db.add(Notification(dedup_key="test:1", cardholder_id=holder["id"], kind="test",
                            text="你中獎了 / you won", status=NotificationStatus.PENDING,
                            attempts=0))
    assert send() == 0  # nothing bound: the notice waits
    sender = FakeSender()
    rt.services.bind(Sender, sender)
    assert send() == 1 and send() == 0
    assert sender.sent == [("sms", "0912-000-111", "你中獎了 / you won")]
    with rt.sessions() as db:
        note = db.scalar(select(Notification))
        assert note is not None and note.status == "sent" and note.channel == "sms"
