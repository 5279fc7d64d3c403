"""QR codes: the mobile card's short-lived payment token, and merchants' static QR codes.

Payment token (shown by the resident's phone, scanned by the POS):

    KMQR1.<base64url(JSON {"v":1,"card":"<16 digits>","tid":"<random>","iat":<s>,"exp":<s>})>
         .<base64url(signature)>

signed by the phone's own key (P-256 ECDSA with SHA-256, or Ed25519), whose public half was
bound to the mobile card at issuance. The backend accepts a token once, and only while it is
fresh (configurable seconds).
"""

from __future__ import annotations

import base64
import io
import json
import secrets
import time
from dataclasses import dataclass
from typing import Any

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519

PREFIX = "KMQR1"


def _b64(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def make_payment_token(private_key: Any, card_number: str, ttl_seconds: int,
                       now: float | None = None) -> str:
    """What the residents' app does (used by the POS simulator, the demo and the tests)."""
    issued = int(now if now is not None else time.time())
    payload = _b64(json.dumps({"v": 1, "card": card_number, "tid": secrets.token_urlsafe(12),
                               "iat": issued, "exp": issued + ttl_seconds},
                              separators=(",", ":")).encode())
    signed = f"{PREFIX}.{payload}".encode()
    if isinstance(private_key, ed25519.Ed25519PrivateKey):
        sig = private_key.sign(signed)
    else:
        sig = private_key.sign(signed, ec.ECDSA(hashes.SHA256()))
    return f"{PREFIX}.{payload}.{_b64(sig)}"


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
    try:
        prefix, payload, sig = token.split(".")
        if prefix != PREFIX:
            return None
        data = json.loads(_unb64(payload))
        if data.get("v") != 1:
            return None
        card, tid, iat, exp = data["card"], data["tid"], int(data["iat"]), int(data["exp"])
        if not (isinstance(card, str) and len(card) == 16 and card.isascii() and card.isdigit()
                and isinstance(tid, str) and 8 <= len(tid) <= 64):
            return None
        return PaymentToken(card, tid, iat, exp, f"{prefix}.{payload}".encode(), _unb64(sig))
    except (ValueError, KeyError, TypeError):
        return None


def signature_valid(public_key_pem: str, token: PaymentToken) -> bool:
    key = serialization.load_pem_public_key(public_key_pem.encode())
    try:
        if isinstance(key, ed25519.Ed25519PublicKey):
            key.verify(token.signature, token.signed)
        elif isinstance(key, ec.EllipticCurvePublicKey):
            key.verify(token.signature, token.signed, ec.ECDSA(hashes.SHA256()))
        else:
            return False
    except InvalidSignature:
        return False
    return True


def merchant_qr_payload(merchant_id: int, terminal_id: int | None, location: str) -> str:
    """What a shop's static QR code says: which merchant (and counter), and where."""
    from urllib.parse import quote
    target = f"kinmencard://merchant/{merchant_id}"
    if terminal_id is not None:
        target += f"/terminal/{terminal_id}"
    return f"{target}?loc={quote(location)}" if location else target


class PayloadTooLong(ValueError):
    """More than the largest QR code holds."""


def render_qr(payload: str, fmt: str) -> bytes:
    import qrcode
    import qrcode.exceptions
    import qrcode.image.pure
    import qrcode.image.svg

    factory = (qrcode.image.svg.SvgPathImage if fmt == "svg"
               else qrcode.image.pure.PyPNGImage)
    code = qrcode.QRCode(box_size=10, border=4, image_factory=factory)
    # One byte-mode segment: the library's segment optimiser fails on some texts (a long run
    # of digits, e.g. a location of 150 zeros, ends in "glog(0)"), and a URL gains little from
    # numeric segments anyway.
    code.add_data(payload, optimize=0)
    try:
        code.make(fit=True)
    except (qrcode.exceptions.DataOverflowError, ValueError):
        # Past version 40: the library raises either, depending on how far past.
        raise PayloadTooLong(f"{len(payload.encode())} bytes do not fit in a QR code") from None
    img = code.make_image()
    buf = io.BytesIO()
    img.save(buf)
    return buf.getvalue()
