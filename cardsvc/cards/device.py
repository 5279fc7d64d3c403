"""Signatures of a mobile card's phone: the key pair whose public half was bound to the card
at issuance (P-256 ECDSA with SHA-256, or Ed25519)."""

from __future__ import annotations

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
