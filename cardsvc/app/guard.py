"""The outer guard of the HTTP API, ahead of routing, parsing and authentication.

* Headers larger than the limit: 431, before anything reads them.
* Bodies larger than the limit: 413 as soon as the declared length or the bytes read so far
  pass it, so no request is read whole into memory first. The larger upload limit (CSV bill
  files) applies only to the routes that take uploads, and only when the request carries a
  staff token that verifies: a stranger gets the small limit everywhere.
* NUL characters in the URL: 400.
* A query parameter given more than once: 422 (no route takes a list in its query, and
  the framework would silently keep one of the values).
* The access log: one line per request, whatever happened (a request the app failed on is
  logged with its 500), with method, path and status only (query strings and bodies may hold
  personal data), and every character a log line could be forged with escaped.
* An error the app did not handle: logged once with its traceback, answered with a 500
  problem, never passed on to the server (which would log it a second time).

Plain ASGI: it costs the POS path next to nothing.
"""

from __future__ import annotations

import logging
import re
import time
from collections.abc import Callable, Iterable
from typing import Any
from urllib.parse import parse_qsl

from starlette.exceptions import HTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from cardsvc.app import problems as api_errors

log = logging.getLogger("cardsvc.access")
errors_log = logging.getLogger("cardsvc")

_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f\\\u2028\u2029]")


def loggable(text: str, limit: int = 2000) -> str:
    """`text` as one safe log line: control characters (CR, LF, ANSI escapes, ...), line
    separators and backslashes written as escapes, so nobody can start a forged line."""
    out = _CONTROL.sub(lambda m: "\\\\" if m.group() == "\\" else f"\\x{ord(m.group()):02x}",
                       text)
    return out if len(out) <= limit else out[:limit] + "…"


class BodyTooLarge(HTTPException):
    def __init__(self, limit: int) -> None:
        super().__init__(413, f"the request body is larger than {limit:,} bytes")
        self.limit = limit


def _problem(status: int, code: str, title: str, detail: str) -> Any:
    response = api_errors.problem(status, code, title, detail)
    if status in (413, 431):
        # The rest of the request was not read: the connection cannot carry another one.
        response.headers["Connection"] = "close"
    return response


class Guard:
    def __init__(self, app: ASGIApp, *, max_body_bytes: int, max_upload_bytes: int,
                 max_header_bytes: int, upload_paths: Iterable[str] = (),
                 staff_token_ok: Callable[[str], bool] | None = None) -> None:
        self.app = app
        self.max_body, self.max_upload, self.max_headers = (max_body_bytes, max_upload_bytes,
                                                            max_header_bytes)
        self.uploads = [re.compile("^" + re.sub(r"\\\{[^}]+\\\}", "[^/]+", re.escape(p)) + "$")
                        for p in upload_paths]
        self.staff_token_ok = staff_token_ok

    def _body_limit(self, scope: Scope) -> int:
        if self.staff_token_ok is None or not any(p.match(scope["path"]) for p in self.uploads):
            return self.max_body
        for name, value in scope["headers"]:
            if name == b"authorization" and value[:7].lower() == b"bearer ":
                try:
                    ok = self.staff_token_ok(value[7:].decode("ascii").strip())
                except Exception:  # a malformed token is simply not a valid one
                    ok = False
                return self.max_upload if ok else self.max_body
        return self.max_body

    def _refusal(self, scope: Scope) -> Any:
        size = len(scope.get("raw_path", b"")) + len(scope.get("query_string", b"")) + sum(
            len(k) + len(v) + 4 for k, v in scope["headers"])
        if size > self.max_headers:
            return _problem(431, "headers_too_large", "Request headers too large",
                            f"the request line and headers are larger than "
                            f"{self.max_headers:,} bytes")
        raw = scope.get("raw_path", b"") + b"?" + scope.get("query_string", b"")
        if b"%00" in raw or b"\x00" in raw:
            return _problem(400, "invalid_input", "Invalid input",
                            "the URL must not contain NUL characters")
        query = scope.get("query_string", b"")
        if query:
            names = [name for name, _ in parse_qsl(query.decode("latin-1"),
                                                   keep_blank_values=True)]
            if len(names) != len(set(names)):
                return _problem(422, "invalid_input", "Invalid input",
                                "each query parameter may be given once")
        limit = self._body_limit(scope)
        for name, value in scope["headers"]:
            if name == b"content-length":
                if not value.isdigit() or len(value) > 20 or int(value) > limit:
                    return _problem(413, "body_too_large", "Request body too large",
                                    f"the request body is larger than {limit:,} bytes")
        return None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started, status = time.perf_counter(), [0]

        async def send_status(message: Message) -> None:
            if message["type"] == "http.response.start":
                status[0] = message["status"]
            await send(message)

        try:
            refusal = self._refusal(scope)
            if refusal is not None:
                await refusal(scope, receive, send_status)
                return
            await self.app(scope, self._limited(receive, self._body_limit(scope)), send_status)
        except BodyTooLarge as exc:
            # Raised by the body reader outside FastAPI's routes (which answer it themselves).
            if status[0] == 0:
                await _problem(413, "body_too_large", "Request body too large",
                               exc.detail)(scope, receive, send_status)
        except Exception as exc:
            # Engines run with hide_parameters=True, so database errors in this trace carry
            # no bound values (no personal data) into the log.
            errors_log.error("unexpected error in %s %s", scope.get("method", ""),
                             loggable(scope.get("path", "")), exc_info=exc)
            if status[0] == 0:
                await api_errors.problem(
                    500, "internal_error", "Internal error",
                    "the request failed and nothing was changed; it is safe to retry",
                )(scope, receive, send_status)
            else:
                status[0] = status[0] or 500
        finally:
            if log.isEnabledFor(logging.INFO):
                log.info("%s %s %s %.1fms", loggable(scope.get("method", ""), 20),
                         loggable(scope.get("path", "")), status[0] or 500,
                         (time.perf_counter() - started) * 1000)

    @staticmethod
    def _limited(receive: Receive, limit: int) -> Receive:
        seen = [0]

        async def limited() -> Message:
            message = await receive()
            if message["type"] == "http.request":
                seen[0] += len(message.get("body", b""))
                if seen[0] > limit:
                    raise BodyTooLarge(limit)
            return message

        return limited
