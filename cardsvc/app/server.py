"""Serving the API with uvicorn, with the request head bounded in the server itself.

The app's guard (`cardsvc.app.guard`) refuses a request whose headers are too large, but only
once the server has read them all: httptools, uvicorn's fast parser, keeps no limit of its own,
so a client could make the server hold megabytes of one header line. The protocol below counts
the bytes of a head still open and answers 431 once they pass the limit (the one h11 takes as
`h11_max_incomplete_event_size`, which this module sets for both parsers).
"""

from __future__ import annotations

from typing import Any

import uvicorn
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

DEFAULT_HEAD_LIMIT = 16_384

# The service's log: the app's own access log and errors (cardsvc, cardsvc.access) next to
# uvicorn's, one format. Given to uvicorn as its log config, it reaches every worker process
# (a logging.basicConfig in the parent would not).
LOG_FORMAT = "%(asctime)s %(levelname)s %(name)s %(message)s"
LOGGING: dict[str, Any] = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {"plain": {"format": LOG_FORMAT}},
    "handlers": {"stderr": {"class": "logging.StreamHandler", "formatter": "plain",
                            "stream": "ext://sys.stderr"}},
    "loggers": {
        "cardsvc": {"handlers": ["stderr"], "level": "INFO", "propagate": False},
        "uvicorn": {"handlers": ["stderr"], "level": "INFO", "propagate": False},
        # The app writes its own access log, without query strings (they may hold personal
        # data): uvicorn's stays off.
        "uvicorn.access": {"handlers": [], "level": "WARNING", "propagate": False},
    },
}


class BoundedHttpToolsProtocol(HttpToolsProtocol):
    def __init__(self, config: Any, *args: Any, **kwargs: Any) -> None:
        super().__init__(config, *args, **kwargs)
        self._head_limit = int(getattr(config, "h11_max_incomplete_event_size", None)
                               or DEFAULT_HEAD_LIMIT)
        self._head_open = False
        self._head_bytes = 0
        self._messages = 0

    def on_message_begin(self) -> None:
        super().on_message_begin()
        self._messages += 1
        self._head_open, self._head_bytes = True, 0

    def on_headers_complete(self) -> None:
        self._head_open = False
        super().on_headers_complete()

    def data_received(self, data: bytes) -> None:
        messages, was_open = self._messages, self._head_open
        super().data_received(data)
        if not self._head_open or self.transport.is_closing():
            return
        # Only a chunk that lay wholly inside the head counts (where a head began in a chunk
        # is not known); that under-counts by at most one read, which bounds the memory all
        # the same.
        if was_open and messages == self._messages:
            self._head_bytes += len(data)
        if self._head_bytes > self._head_limit:
            body = f"request headers larger than {self._head_limit} bytes".encode()
            self.transport.write(
                b"HTTP/1.1 431 Request Header Fields Too Large\r\n"
                b"content-type: text/plain; charset=utf-8\r\n"
                b"content-length: " + str(len(body)).encode() + b"\r\n"
                b"connection: close\r\n\r\n" + body)
            self.transport.close()


def serve(app: Any, *, host: str, port: int, head_limit: int, workers: int = 1,
          **options: Any) -> None:
    """Run `app` (an ASGI app, or an import string when `workers` > 1) under uvicorn."""

    uvicorn.run(app, host=host, port=port, workers=workers if workers > 1 else None,
                http=BoundedHttpToolsProtocol, h11_max_incomplete_event_size=head_limit,
                log_config=LOGGING, access_log=False, **options)
