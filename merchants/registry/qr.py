"""QR codes as images: a shop's static QR code (which merchant, which counter, where), and
the rendering other domains use (bill receipts)."""

from __future__ import annotations

import io
from urllib.parse import quote

import qrcode
import qrcode.exceptions
import qrcode.image.pure
import qrcode.image.svg


def merchant_qr_payload(merchant_id: int, terminal_id: int | None, location: str) -> str:
    """What a shop's static QR code says: which merchant (and counter), and where."""
    target = f"kinmencard://merchant/{merchant_id}"
    if terminal_id is not None:
        target += f"/terminal/{terminal_id}"
    return f"{target}?loc={quote(location)}" if location else target


class PayloadTooLong(ValueError):
    """More than the largest QR code holds."""


def render_qr(payload: str, fmt: str) -> bytes:

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
