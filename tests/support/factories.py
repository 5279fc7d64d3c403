"""Test data through the real API."""

from __future__ import annotations

import datetime as dt
import itertools
import uuid
from typing import Any

from cardsvc.context import TAIPEI
from cardsvc.identifiers import person_id_check_digit

_seq = itertools.count(1)


def today() -> dt.date:
    return dt.datetime.now(TAIPEI).date()


def years_ago(years: int, days: int = 0) -> dt.date:
    t = today()
    try:
        d = t.replace(year=t.year - years)
    except ValueError:
        d = t.replace(year=t.year - years, day=28)
    return d - dt.timedelta(days=days)


def new_person_id(female: bool = False) -> str:
    head = "W" + ("2" if female else "1") + f"{(next(_seq) * 7919 + uuid.uuid4().int) % 10**7:07d}"
    return head + person_id_check_digit(head)


def key() -> str:
    return f"test-{uuid.uuid4()}"


def uid() -> str:
    return "04" + uuid.uuid4().hex[:12].upper()


def holder(api: Any, *, age: int = 40, born: dt.date | None = None,
           township: str | None = "金城鎮", **extra: Any) -> dict[str, Any]:
    body = {"name": "測試居民", "person_id": new_person_id(),
            "birth_date": (born or years_ago(age)).isoformat(), "township": township,
            "phone": "0912-000-111", **extra}
    return api.ok("POST", "/cardholders", body, status=201) | {"_person_id": body["person_id"]}


def active_card(api: Any, holder_id: int, product: str = "general",
                **extra: Any) -> dict[str, Any]:
    app = api.ok("POST", "/cards/applications", {"cardholder_id": holder_id,
                                                 "product": product, **extra}, status=201)
    body = {} if product == "mobile" else {"chip_uid": uid()}
    api.ok("POST", f"/cards/{app['id']}/issue", body)
    return api.ok("POST", f"/cards/{app['id']}/activate")


def topup(api: Any, card_id: int, amount: int) -> dict[str, Any]:
    return api.ok("POST", f"/cards/{card_id}/topups", {"amount": amount}, key=key())


def phone_key() -> tuple[Any, str]:
    """A phone's key pair: the private key and the public key as a mobile card registers it."""
    import base64

    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    private = ec.generate_private_key(ec.SECP256R1())
    der = private.public_key().public_bytes(serialization.Encoding.DER,
                                            serialization.PublicFormat.SubjectPublicKeyInfo)
    return private, base64.b64encode(der).decode()


def mobile_card(api: Any, device_id: str, amount: int) -> tuple[Any, dict[str, Any]]:
    """An active mobile card bound to a new phone key, topped up with `amount`."""
    private, public = phone_key()
    card = active_card(api, holder(api)["id"], "mobile", device_id=device_id,
                       device_public_key=public)
    topup(api, card["id"], amount)
    return private, card
