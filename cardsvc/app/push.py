"""What happens right after a commit that gave libraries new events: their webhook delivery
starts (and, below, after one that ended 歸戶 bindings: the e-invoice platform is told).
With a broker, a worker takes it (`cardsvc.library.tasks.deliver`); in the embedded default,
a thread of this process does, so that a counter request never waits for a library's
server. Either way the beat's sweep (or `cardsvc library push`) picks up what a failure left
for later."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Iterable

from celery import Celery

from cardsvc.einvoice import platform
from cardsvc.library import webhooks
from cardsvc.runtime import Runtime

log = logging.getLogger("cardsvc.library")
DELIVER_TASK = "cardsvc.library.tasks.deliver"


class _Push:
    """Hands work to the workers when there is a broker (a sender made on first use)."""

    def __init__(self, rt: Runtime) -> None:
        self.rt = rt
        self._sender: Celery | None = None

    def _send(self, task: str, args: list[object]) -> None:
        if self._sender is None:
            self._sender = Celery("cardsvc-push", broker=self.rt.settings.broker_url)
            self._sender.conf.task_default_queue = self.rt.settings.celery_queue
        self._sender.send_task(task, args=args)


class LibraryPush(_Push):
    def notify(self, library_ids: Iterable[int]) -> None:
        ids = list(library_ids)
        if self.rt.settings.broker_url:
            for library_id in ids:
                self._send(DELIVER_TASK, [library_id])
            return
        threading.Thread(target=self._deliver, args=(ids,), name="library-push",
                         daemon=True).start()

    def _deliver(self, ids: list[int]) -> None:
        # With no workers and no beat, this thread tries a failing library again itself,
        # after the backoff, until it is delivered or parked.
        for library_id in ids:
            while True:
                try:
                    out = webhooks.deliver(self.rt.sessions, self.rt.settings, self.rt.keys,
                                           library_id, webhooks.HttpTransport())
                except Exception:  # a thread of its own: log; the CLI can push by hand
                    log.exception("pushing library %s's feed failed", library_id)
                    break
                if out.retry_in is None:
                    break
                time.sleep(out.retry_in)


TELL_PLATFORM_TASK = "cardsvc.einvoice.tasks.tell_platform"


class PlatformUnbindPush(_Push):
    """What happens right after a commit that ended 歸戶 bindings: the MOF platform is told of
    them. With a broker, a worker does it (`cardsvc.einvoice.tasks.tell_platform`, which the
    beat also runs every five minutes for what the platform did not take); in the embedded
    default, this process does, before the request answers, as it did when the platform was
    told inside the transaction, and what it did not take waits for `cardsvc einvoice
    tell-platform`."""

    def owed(self, ids: list[int]) -> None:
        if self.rt.settings.broker_url:
            self._send(TELL_PLATFORM_TASK, [ids])
            return
        told = platform.tell(self.rt.sessions, platform.platform_of(self.rt.services), ids)
        if told.left:
            log.warning("the e-invoice platform did not take %d unbinding(s); "
                        "`cardsvc einvoice tell-platform` tells it again", told.left)
