"""QR codes: the mobile card's short-lived payment token, and merchants' static QR codes.

Payment token (shown by the resident's phone, scanned by the POS):

    KMQR1.<base64url(JSON {"v":1,"card":"<16 digits>","tid":"<random>","iat":<s>,"exp":<s>})>
         .<base64url(signature)>

signed by the phone's own key (P-256 ECDSA with SHA-256, or Ed25519), whose public half was
bound to the mobile card at issuance. The backend accepts a token once, and only while it is
fresh (configurable seconds).
"""

from __future__ import annotations

import secrets
import time
from dataclasses import dataclass
from typing import Any

from cardsvc.cards import device

PREFIX = "KMQR1"


def make_payment_token(private_key: Any, card_number: str, ttl_seconds: int,
                       now: float | None = None) -> str:
    """What the residents' app does (used by the POS simulator, the demo and the tests)."""
    issued = int(now if now is not None else time.time())
    return device.make_token(private_key, PREFIX, {
        "v": 1, "card": card_number, "tid": secrets.token_urlsafe(12), "iat": issued,
        "exp": issued + ttl_seconds})


@dataclass(frozen=True)
class PaymentToken:
    card_number: str
    token_id: str
    issued_at: int
    expires_at: int
    signed: bytes
    signature: bytes


def parse_payment_token(token: str) -> PaymentToken | None:
    """The token's parts, or None when it is not a well-formed token."""
    opened = device.open_token(token, PREFIX)
    if opened is None:
        return None
    data, signed, signature = opened
    try:
        if data.get("v") != 1:
            return None
        card, tid, iat, exp = data["card"], data["tid"], int(data["iat"]), int(data["exp"])
    except (ValueError, KeyError, TypeError):
        return None
    if not (isinstance(card, str) and len(card) == 16 and card.isascii() and card.isdigit()
            and isinstance(tid, str) and 8 <= len(tid) <= 64):
        return None
    return PaymentToken(card, tid, iat, exp, signed, signature)


def signature_valid(public_key_pem: str, token: PaymentToken) -> bool:
    return device.verify(public_key_pem, token.signed, token.signature)
