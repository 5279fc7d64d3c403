"""A POS client that signs every request (used by the POS simulator and the tests; a POS
vendor can read it as the reference for docs/pos-integration.md)."""

from __future__ import annotations

import base64
import json
import secrets
import time
from typing import Any

import httpx

from merchants.pos import signing


class PosClient:
    def __init__(self, http: httpx.Client, key_id: str, secret_b64: str,
                 clock: Any = time.time) -> None:
        self.http = http
        self.key_id = key_id
        self._secret = base64.urlsafe_b64decode(secret_b64 + "=" * (-len(secret_b64) % 4))
        self._clock = clock

    def signed_headers(self, method: str, path: str, body: bytes, *,
                       timestamp: str | None = None, nonce: str | None = None,
                       idempotency_key: str | None = None) -> dict[str, str]:
        ts = timestamp or str(int(self._clock()))
        nc = nonce or secrets.token_urlsafe(18)
        headers = {
            "X-Terminal-Key": self.key_id,
            "X-Timestamp": ts,
            "X-Nonce": nc,
            "X-Signature": signing.sign(self._secret, method, path, ts, nc, body),
            "Content-Type": "application/json",
        }
        if idempotency_key:
            headers["Idempotency-Key"] = idempotency_key
        return headers

    def request(self, method: str, path: str, payload: Any = None, *,
                idempotency_key: str | None = None, **sign_overrides: str) -> httpx.Response:
        body = b"" if payload is None else json.dumps(payload, separators=(",", ":")).encode()
        headers = self.signed_headers(method, path, body, idempotency_key=idempotency_key,
                                      **sign_overrides)
        return self.http.request(method, path, content=body, headers=headers)
