"""The secrets file: every key the backend holds, kept out of the repository and the database.

The embedded default generates the file on first start (mode 0600). In production it is
mounted from the county's key store and `CARDSVC_GENERATE_SECRETS=false` makes a missing file a
hard error instead of a silent new key set.
"""

from __future__ import annotations

import base64
import json
import os
import secrets
from dataclasses import dataclass, field, replace
from pathlib import Path

from cardsvc.errors import ConfigurationError

SECRETS_FORMAT = 1


def _b64(raw: bytes) -> str:
    return base64.b64encode(raw).decode("ascii")


def _unb64(text: str) -> bytes:
    return base64.b64decode(text.encode("ascii"), validate=True)


@dataclass(frozen=True)
class Secrets:
    """Key material, loaded once per process."""

    token_key: bytes
    lookup_key: bytes
    pii_keys: dict[str, bytes]
    pii_active: str
    # Key-encryption key of the card key store: card master keys live in the database,
    # wrapped under it (cardsvc.keystore).
    kek: bytes = b""
    # System identifier bound into every card key diversification (AN10922).
    system_id: bytes = b""
    # Ed25519 private keys (32-byte seeds) by key id, for what others verify with the public
    # key alone (fare tables a terminal checks). Old ids stay so old signatures still verify.
    signing_keys: dict[str, bytes] = field(default_factory=dict)
    signing_active: str = ""

    @property
    def signing_key(self) -> tuple[str, bytes]:
        """(key id, seed) of the active signing key."""
        if self.signing_active not in self.signing_keys:
            raise ConfigurationError("secrets file has no signing key: add one with "
                                     "`cardsvc keys new-signing-key`")
        return self.signing_active, self.signing_keys[self.signing_active]

    def to_json(self) -> str:
        return json.dumps(
            {
                "format": SECRETS_FORMAT,
                "token_key": _b64(self.token_key),
                "lookup_key": _b64(self.lookup_key),
                "pii_keys": {kid: _b64(k) for kid, k in self.pii_keys.items()},
                "pii_active": self.pii_active,
                "kek": _b64(self.kek),
                "system_id": self.system_id.hex(),
                "signing_keys": {kid: _b64(k) for kid, k in self.signing_keys.items()},
                "signing_active": self.signing_active,
            },
            indent=2,
        )

    @classmethod
    def from_json(cls, text: str) -> Secrets:
        try:
            data = json.loads(text)
            if data.get("format") != SECRETS_FORMAT:
                raise ConfigurationError("secrets file has an unknown format version")
            pii_keys = {kid: _unb64(k) for kid, k in data["pii_keys"].items()}
            result = cls(
                token_key=_unb64(data["token_key"]),
                lookup_key=_unb64(data["lookup_key"]),
                pii_keys=pii_keys,
                pii_active=data["pii_active"],
                kek=_unb64(data["kek"]),
                system_id=bytes.fromhex(data["system_id"]),
                signing_keys={kid: _unb64(k)
                              for kid, k in data.get("signing_keys", {}).items()},
                signing_active=data.get("signing_active", ""),
            )
        except (KeyError, TypeError, ValueError) as exc:
            # Never echo the file's content: it is key material.
            raise ConfigurationError(
                f"secrets file is malformed ({type(exc).__name__})"
            ) from None
        if result.pii_active not in result.pii_keys:
            raise ConfigurationError("secrets file: pii_active names no key in pii_keys")
        for key in result.pii_keys.values():
            if len(key) != 32:
                raise ConfigurationError("secrets file: every PII key must be 32 bytes")
        if len(result.kek) != 32:
            raise ConfigurationError("secrets file: kek must be 32 bytes")
        if not 1 <= len(result.system_id) <= 16:
            raise ConfigurationError("secrets file: system_id must be 1-16 bytes")
        if any(len(k) != 32 for k in result.signing_keys.values()):
            raise ConfigurationError("secrets file: every signing key must be 32 bytes")
        if result.signing_keys and result.signing_active not in result.signing_keys:
            raise ConfigurationError("secrets file: signing_active names no key in "
                                     "signing_keys")
        return result

    @classmethod
    def generate(cls) -> Secrets:
        return cls(
            token_key=secrets.token_bytes(32),
            lookup_key=secrets.token_bytes(32),
            pii_keys={"p1": secrets.token_bytes(32)},
            pii_active="p1",
            kek=secrets.token_bytes(32),
            system_id=secrets.token_bytes(8),
            signing_keys={"s1": secrets.token_bytes(32)},
            signing_active="s1",
        )

    def with_new_signing_key(self) -> Secrets:
        """A copy with a fresh signing key made active; old ones stay for verifying."""
        n = 1 + max((int(k[1:]) for k in self.signing_keys if k[1:].isdigit()), default=0)
        kid = f"s{n}"
        return replace(self, signing_keys={**self.signing_keys, kid: secrets.token_bytes(32)},
                       signing_active=kid)

    def with_new_pii_key(self) -> Secrets:
        """A copy with a fresh PII key made active; old keys stay for reading old rows."""
        n = 1 + max(int(k[1:]) for k in self.pii_keys if k[1:].isdigit())
        kid = f"p{n}"
        keys = dict(self.pii_keys)
        keys[kid] = secrets.token_bytes(32)
        return replace(self, pii_keys=keys, pii_active=kid)


def write_secrets(path: Path, value: Secrets) -> None:
    """Write atomically with mode 0600 from the start (no window where others can read)."""
    path = Path(path)
    tmp = path.with_name(path.name + ".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as fh:
        fh.write(value.to_json())
    os.chmod(tmp, 0o600)
    os.replace(tmp, path)


def load_secrets(path: Path, generate: bool) -> tuple[Secrets, bool]:
    """Load the secrets file; create it when allowed. Returns (secrets, created)."""
    path = Path(path)
    if not path.exists():
        if not generate:
            raise ConfigurationError(
                f"secrets file {path} does not exist and CARDSVC_GENERATE_SECRETS is off"
            )
        value = Secrets.generate()
        write_secrets(path, value)
        return value, True
    mode = path.stat().st_mode & 0o777
    if mode & 0o077:
        raise ConfigurationError(
            f"secrets file {path} is readable by others (mode {mode:o}); run chmod 600 on it"
        )
    value = Secrets.from_json(path.read_text(encoding="utf-8"))
    if not value.signing_keys and generate:
        # A file from before signing keys: the embedded default adds one, as on first start.
        value = value.with_new_signing_key()
        write_secrets(path, value)
    return value, False
