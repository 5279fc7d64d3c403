"""Signatures others check with a public key alone (Ed25519): fare tables that terminals
verify before they charge by them. The private keys are the secrets file's signing keys; each
signature names its key id, so a rotated key leaves old signatures verifiable."""

from __future__ import annotations

import base64

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ed25519

from cardsvc.security.secrets import Secrets


def sign(secrets_: Secrets, payload: bytes) -> tuple[str, str]:
    """(key id, base64 signature) of `payload` with the active signing key."""
    kid, seed = secrets_.signing_key
    key = ed25519.Ed25519PrivateKey.from_private_bytes(seed)
    return kid, base64.b64encode(key.sign(payload)).decode()


def verifies(public_key: str, signature: bytes, payload: bytes) -> bool:
    """Whether `public_key` (base64 of the 32 raw bytes, as `public_keys` gives it) signed
    exactly `payload`; a malformed key is no better than a wrong one."""
    try:
        key = ed25519.Ed25519PublicKey.from_public_bytes(base64.b64decode(public_key))
        key.verify(signature, payload)
    except (InvalidSignature, ValueError):
        return False
    return True


def public_keys(secrets_: Secrets) -> dict[str, str]:
    """Every signing key's public half (base64 of the 32 raw bytes), by key id."""
    out = {}
    for kid, seed in sorted(secrets_.signing_keys.items()):
        pub = ed25519.Ed25519PrivateKey.from_private_bytes(seed).public_key()
        out[kid] = base64.b64encode(pub.public_bytes(
            serialization.Encoding.Raw, serialization.PublicFormat.Raw)).decode()
    return out
