"""Request signing for the POS API: shared by the server check and the POS client.

    X-Terminal-Key:  the terminal's key id
    X-Timestamp:     Unix seconds when the request was made
    X-Nonce:         16-64 characters, never reused by the terminal
    X-Signature:     hex HMAC-SHA256(secret, canonical)

    canonical = METHOD "\\n" PATH(with query) "\\n" TIMESTAMP "\\n" NONCE "\\n" hex(SHA-256(body))
"""

from __future__ import annotations

import hashlib
import hmac
import re
from typing import NamedTuple

WINDOW_SECONDS = 300
LIMITS = {"key_id": 40, "timestamp": 20, "nonce": 64, "signature": 128}  # header lengths
NONCE_RE = re.compile(r"[A-Za-z0-9_-]{16,64}")
HEADERS = ("X-Terminal-Key", "X-Timestamp", "X-Nonce", "X-Signature")


class SignedHeaders(NamedTuple):
    """The four signing headers as a request carried them (any may be missing)."""

    key_id: str | None
    timestamp: str | None
    nonce: str | None
    signature: str | None

    @property
    def complete(self) -> bool:
        return bool(self.key_id and self.timestamp and self.nonce and self.signature)

    @property
    def oversized(self) -> str | None:
        """The first header longer than any valid value, if one is."""
        for name, limit in LIMITS.items():
            value = getattr(self, name)
            if value is not None and len(value) > limit:
                return name
        return None


def unix_seconds(timestamp: str) -> int | None:
    """X-Timestamp as an int; None unless it is 1-20 ASCII digits."""
    if not (0 < len(timestamp) <= LIMITS["timestamp"] and timestamp.isascii()
            and timestamp.isdigit()):
        return None
    return int(timestamp)


def canonical(method: str, path: str, timestamp: str, nonce: str, body: bytes) -> bytes:
    return "\n".join([method.upper(), path, timestamp, nonce,
                      hashlib.sha256(body).hexdigest()]).encode()


def sign(secret: bytes, method: str, path: str, timestamp: str, nonce: str,
         body: bytes) -> str:
    return hmac.new(secret, canonical(method, path, timestamp, nonce, body),
                    hashlib.sha256).hexdigest()


def verify(secret: bytes, signature: str, method: str, path: str, timestamp: str, nonce: str,
           body: bytes) -> bool:
    return hmac.compare_digest(sign(secret, method, path, timestamp, nonce, body),
                               signature.lower())
