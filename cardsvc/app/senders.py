"""The senders the outbox can use, chosen by configuration (`CARDSVC_NOTIFY_SENDER`).

`log` writes each notice to the service log, masked: for a pilot, before the county's SMS
gateway and mail relay are contracted (each is one more `Sender` here)."""

from __future__ import annotations

import logging

log = logging.getLogger("cardsvc.notify")


class LogSender:
    def send(self, channel: str, to: str, text: str) -> None:
        masked = to[:4] + "*" * max(len(to) - 7, 0) + to[-3:] if len(to) > 7 else "***"
        log.info("notice by %s to %s: %s", channel, masked, text)
