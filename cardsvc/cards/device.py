"""Signatures of a mobile card's phone: the key pair whose public half was bound to the card
at issuance (P-256 ECDSA with SHA-256, or Ed25519)."""

from __future__ import annotations

import base64
import json
from typing import Any

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519


def sign(private_key: Any, message: bytes) -> bytes:
    """What the residents' app does (the demo and the tests use it too)."""
    if isinstance(private_key, ed25519.Ed25519PrivateKey):
        return bytes(private_key.sign(message))
    return bytes(private_key.sign(message, ec.ECDSA(hashes.SHA256())))


def verify(public_key_pem: str, message: bytes, signature: bytes) -> bool:
    key = serialization.load_pem_public_key(public_key_pem.encode())
    try:
        if isinstance(key, ed25519.Ed25519PublicKey):
            key.verify(signature, message)
        elif isinstance(key, ec.EllipticCurvePublicKey):
            key.verify(signature, message, ec.ECDSA(hashes.SHA256()))
        else:
            return False
    except InvalidSignature:
        return False
    return True


# A phone's signed token: PREFIX.<base64url(JSON claims)>.<base64url(signature over
# "PREFIX.<payload>")>. The payment QR (KMQR1) and the event check-in (KMCI1) are two.


def _b64(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def make_token(private_key: Any, prefix: str, claims: dict[str, Any]) -> str:
    payload = _b64(json.dumps(claims, separators=(",", ":")).encode())
    return f"{prefix}.{payload}.{_b64(sign(private_key, f'{prefix}.{payload}'.encode()))}"


def open_token(token: str, prefix: str) -> tuple[dict[str, Any], bytes, bytes] | None:
    """(claims, signed bytes, signature) of a well-formed token of this kind, else None.
    The signature is not checked here: the caller knows whose key to check it with."""
    try:
        head, payload, sig = token.split(".")
        if head != prefix:
            return None
        claims = json.loads(_unb64(payload))
        if not isinstance(claims, dict):
            return None
        return claims, f"{head}.{payload}".encode(), _unb64(sig)
    except (ValueError, TypeError):
        return None
