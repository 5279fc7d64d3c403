"""The patron record a library gets, and nothing more.

Always: the library's patron id, the resident's current card number, patron category, home
branch, expiry and status. With the resident's consent, per library: the name, phone, email,
township. Never: the national ID, birth date, chip UID, keys, purse or other libraries' links.
"""

from __future__ import annotations

import datetime as dt
import json
import secrets
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from cardsvc.cards.models import LIVE_STATUSES, Card, CardStatus, Concession
from cardsvc.holders.models import Cardholder
from cardsvc.library.models import Library, LibraryLink, PatronStatus
from cardsvc.security.crypto import Keyring

# What a resident may agree to share with a library, beyond the record's fixed fields.
OPTIONAL_FIELDS = ("name", "phone", "email", "township")
# Keys of a library's category map: a concession where the card has one, else the product.
CATEGORY_KEYS = ("general", "senior", "disability", "companion", "student", "staff",
                 "default")
# The fields every record has, in the order exports write them.
FIXED_FIELDS = ("patron_id", "card_number", "category", "branch", "expires_on", "status")

PATRON_ID_PREFIX = "KMP"
_PATRON_ALPHABET = "ABCDEFGHJKLMNPQRSTUVWXYZ23456789"  # no 0/O or 1/I to misread


def new_patron_id() -> str:
    """Random: it tells nothing about the resident and cannot be recomputed from anything."""
    return PATRON_ID_PREFIX + "".join(secrets.choice(_PATRON_ALPHABET) for _ in range(12))


def current_card(db: Session, holder_id: int, *, fresh: bool = False) -> Card | None:
    """The card a library should know: an active card (the physical one first), else a live
    one (lost, blocked, expired, not yet handed over), else the latest the resident had. An
    active mobile card wins over a physical card just applied for."""
    q = select(Card).where(Card.cardholder_id == holder_id).order_by(Card.id.desc())
    if fresh:
        q = q.execution_options(populate_existing=True)
    cards = list(db.scalars(q))
    for wanted in ({CardStatus.ACTIVE}, LIVE_STATUSES):
        for form in ("physical", "mobile"):
            for card in cards:
                if card.form == form and card.status in wanted:
                    return card
    return cards[0] if cards else None


def status_of(card: Card | None, today: dt.date) -> PatronStatus:
    if card is None or card.status in (CardStatus.CLOSED, CardStatus.REPLACED):
        return PatronStatus.CLOSED
    if card.status == CardStatus.SUSPENDED:
        return PatronStatus.LOST
    if card.status in (CardStatus.BLOCKED, CardStatus.APPLIED, CardStatus.ISSUED):
        return PatronStatus.BLOCKED
    if card.status == CardStatus.EXPIRED or card.expires_on < today:
        return PatronStatus.EXPIRED
    return PatronStatus.VALID


def categories(library: Library) -> dict[str, str]:
    loaded: dict[str, str] = json.loads(library.categories)
    return loaded


def category_of(library: Library, card: Card | None) -> str:
    mapping = categories(library)
    key = "default"
    if card is not None:
        key = card.concession if card.concession != Concession.NONE else card.product
        if key == "mobile":
            key = "general"
    return mapping.get(key) or mapping["default"]


def shared_fields(link: LibraryLink) -> list[str]:
    loaded: list[str] = json.loads(link.shared_fields)
    return loaded


def build(library: Library, link: LibraryLink, holder: Cardholder, card: Card | None,
          keys: Keyring, today: dt.date) -> dict[str, Any]:
    """The record as the library receives it (feed, webhook, export, SIP2 all use it)."""
    record: dict[str, Any] = {
        "patron_id": link.patron_id,
        "card_number": card.card_number if card is not None else None,
        "category": category_of(library, card),
        "branch": library.home_branch,
        # A card's expiry already ends with its concession (eligibility.decide).
        "expires_on": card.expires_on.isoformat() if card is not None else None,
        "status": status_of(card, today).value,
    }
    shared = shared_fields(link)
    if "name" in shared:
        record["name"] = holder.name
    if "township" in shared:
        record["township"] = holder.township
    if "phone" in shared:
        record["phone"] = (keys.pii.decrypt("phone", holder.phone_enc)
                           if holder.phone_enc else None)
    if "email" in shared:
        record["email"] = (keys.pii.decrypt("email", holder.email_enc)
                           if holder.email_enc else None)
    return record


def unlinked(link: LibraryLink) -> dict[str, Any]:
    """What a library is told when the resident unlinks it: only that the patron is gone."""
    return {"patron_id": link.patron_id, "status": PatronStatus.CLOSED.value}


def encode(record: dict[str, Any]) -> str:
    return json.dumps(record, ensure_ascii=False, sort_keys=True, separators=(",", ":"))
