"""The rules of check-in: tickets, challenges, the phone's token, age bands, small cells."""

from __future__ import annotations

import datetime as dt
import hashlib
import secrets

# Tickets: ten characters of Crockford's base32 (no I, L, O, U: read aloud and typed from a
# slip without confusion), 50 bits: a clash among an event's tickets is a one-in-ten-million
# event even at 10,000 check-ins, and it is refused, never merged.
TICKET_ALPHABET = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"
TICKET_LENGTH = 10


def ticket_for(proof_ref: str) -> str:
    """A check-in's ticket, from what proved it (the station's random nonce, the phone's
    random token id): the station prints the same ticket offline as the server gives."""
    n = int.from_bytes(hashlib.sha256(b"cardsvc-ticket-v1" + proof_ref.encode()).digest()[:8])
    return "".join(TICKET_ALPHABET[(n >> (5 * i)) & 31] for i in range(TICKET_LENGTH))


def valid_ticket(text: str) -> bool:
    return len(text) == TICKET_LENGTH and all(c in TICKET_ALPHABET for c in text)


def new_nonce() -> str:
    return secrets.token_hex(16)


def challenge(event_id: int, nonce: str) -> bytes:
    """The challenge a station gives the card (AUTHENTICATE's host random): it binds the
    card's answer to this event and this tap, so an answer recorded at one event, or one tap,
    proves nothing at another. The station picks the nonce; it needs no key."""
    return hashlib.sha256(b"cardsvc-checkin-v1" + event_id.to_bytes(8, "big")
                          + bytes.fromhex(nonce)).digest()[:16]


# The mobile card's check-in token (signed by the phone's key, as the payment token is).
TOKEN_PREFIX = "KMCI1"  # noqa: S105 - a format tag, not a secret

# Age bands of the participation statistics (age on the day of the check-in).
AGE_BANDS = ((0, "0-14"), (15, "15-24"), (25, "25-44"), (45, "45-64"), (65, "65+"))


def age_band(birth: dt.date, on: dt.date) -> str:
    age = on.year - birth.year - ((on.month, on.day) < (birth.month, birth.day))
    band = AGE_BANDS[0][1]
    for floor, name in AGE_BANDS:
        if age >= floor:
            band = name
    return band


# A statistics cell of fewer residents than this is shown as "<5", so that nobody can be
# picked out of a small count.
SMALL_CELL = 5
