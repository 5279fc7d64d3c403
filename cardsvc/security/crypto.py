"""Personal-data encryption at rest, blind indexes, staff passwords and bearer tokens."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import os
import secrets as pysecrets
import time
from dataclasses import dataclass

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from cardsvc.errors import AuthenticationRequired
from cardsvc.security.secrets import Secrets


class PiiCipher:
    """AES-256-GCM per field. Stored form: ``<key id>:<base64(nonce || ciphertext)>``.

    The key id beside the ciphertext lets keys rotate: new writes use the active key, old rows
    stay readable until re-encrypted. The field name is bound as associated data, so a
    ciphertext copied from one column into another fails to decrypt.
    """

    def __init__(self, keys: dict[str, bytes], active: str) -> None:
        self._aead = {kid: AESGCM(k) for kid, k in keys.items()}
        self.active = active

    def encrypt(self, field: str, plaintext: str) -> str:
        nonce = os.urandom(12)
        ct = self._aead[self.active].encrypt(nonce, plaintext.encode("utf-8"), field.encode())
        return f"{self.active}:{base64.b64encode(nonce + ct).decode('ascii')}"

    def decrypt(self, field: str, stored: str) -> str:
        kid, _, body = stored.partition(":")
        aead = self._aead.get(kid)
        if aead is None:
            raise ValueError(f"no PII key with id {kid!r} in the secrets file")
        raw = base64.b64decode(body)
        try:
            return aead.decrypt(raw[:12], raw[12:], field.encode()).decode("utf-8")
        except InvalidTag:
            raise ValueError(f"stored {field} does not authenticate (tampered?)") from None

    def key_id(self, stored: str) -> str:
        return stored.partition(":")[0]


def blind_index(key: bytes, namespace: str, value: str) -> str:
    """Keyed hash for equality lookups of an encrypted value (e.g. national ID)."""
    return hmac.new(key, f"{namespace}\x00{value}".encode(), hashlib.sha256).hexdigest()


# --- passwords ---------------------------------------------------------------------------
# scrypt from the standard library: memory-hard, no native dependency to build on a counter PC.
_SCRYPT_N = 2**14
_SCRYPT_R = 8
_SCRYPT_P = 1


def hash_password(password: str) -> str:
    salt = os.urandom(16)
    digest = hashlib.scrypt(
        password.encode("utf-8"), salt=salt, n=_SCRYPT_N, r=_SCRYPT_R, p=_SCRYPT_P, dklen=32
    )
    salt_b64, digest_b64 = base64.b64encode(salt).decode(), base64.b64encode(digest).decode()
    return f"scrypt${_SCRYPT_N}${_SCRYPT_R}${_SCRYPT_P}${salt_b64}${digest_b64}"


def verify_password(password: str, stored: str) -> bool:
    try:
        scheme, n, r, p, salt_b64, digest_b64 = stored.split("$")
        if scheme != "scrypt":
            return False
        digest = hashlib.scrypt(
            password.encode("utf-8"),
            salt=base64.b64decode(salt_b64),
            n=int(n),
            r=int(r),
            p=int(p),
            dklen=32,
        )
    except (ValueError, TypeError):
        return False
    return hmac.compare_digest(digest, base64.b64decode(digest_b64))


# A fixed hash to verify against when the username is unknown, so a login for a missing
# account costs the same time as one for an existing account.
_DUMMY_HASH = hash_password(pysecrets.token_hex(8))


def burn_password_check(password: str) -> None:
    verify_password(password, _DUMMY_HASH)


# --- bearer tokens -----------------------------------------------------------------------


@dataclass(frozen=True)
class TokenClaims:
    staff_id: int
    issued_at: int
    expires_at: int
    token_id: str


def _b64url(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode("ascii")


def _unb64url(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


class TokenSigner:
    """Short-lived staff tokens: ``base64url(claims).base64url(HMAC-SHA256)``.

    The role is deliberately not in the token: it is read from the staff row on each request,
    so a demotion or a disabled account takes effect at once.
    """

    def __init__(self, key: bytes, ttl_seconds: int) -> None:
        self._key = key
        self.ttl = ttl_seconds

    def issue(self, staff_id: int, now: float | None = None) -> tuple[str, TokenClaims]:
        issued = int(now if now is not None else time.time())
        claims = TokenClaims(staff_id, issued, issued + self.ttl, pysecrets.token_hex(8))
        body = _b64url(
            json.dumps(
                {"sub": staff_id, "iat": claims.issued_at, "exp": claims.expires_at,
                 "jti": claims.token_id},
                separators=(",", ":"),
            ).encode()
        )
        sig = _b64url(hmac.new(self._key, body.encode(), hashlib.sha256).digest())
        return f"{body}.{sig}", claims

    def verify(self, token: str, now: float | None = None) -> TokenClaims:
        body, _, sig = token.partition(".")
        expected = _b64url(hmac.new(self._key, body.encode(), hashlib.sha256).digest())
        if not sig or not hmac.compare_digest(sig, expected):
            raise AuthenticationRequired("bearer token is invalid")
        try:
            data = json.loads(_unb64url(body))
            claims = TokenClaims(int(data["sub"]), int(data["iat"]), int(data["exp"]),
                                 str(data["jti"]))
        except (ValueError, KeyError, TypeError):
            raise AuthenticationRequired("bearer token is invalid") from None
        if (now if now is not None else time.time()) >= claims.expires_at:
            raise AuthenticationRequired("bearer token has expired; log in again")
        return claims


@dataclass(frozen=True)
class Keyring:
    """What the running service derives from the secrets file."""

    secrets: Secrets
    pii: PiiCipher
    tokens: TokenSigner

    @classmethod
    def from_secrets(cls, value: Secrets, token_ttl_seconds: int) -> Keyring:
        return cls(
            secrets=value,
            pii=PiiCipher(value.pii_keys, value.pii_active),
            tokens=TokenSigner(value.token_key, token_ttl_seconds),
        )

    def lookup_hash(self, namespace: str, value: str) -> str:
        return blind_index(self.secrets.lookup_key, namespace, value)
