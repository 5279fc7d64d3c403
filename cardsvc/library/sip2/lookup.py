"""What a library's SIP2 client may learn: whether a card is good for borrowing there.

A card is looked up by its number (what a kiosk scans) or by the library's patron id. Only
residents linked to the asking login's library are answered for: to any other library, a card
is unknown. The name goes out only where the resident agreed to share it with that library.
Every lookup is in the audit trail (which login, which patron).
"""

from __future__ import annotations

import datetime as dt
import json
from dataclasses import dataclass

from sqlalchemy import and_, select

from cardsvc.audit import service as audit
from cardsvc.cards.models import Card, CardStatus
from cardsvc.context import Ctx
from cardsvc.holders.models import Cardholder
from cardsvc.library import records
from cardsvc.library.models import Library, LibraryLink, PatronStatus, SipLogin
from cardsvc.security.crypto import burn_password_check, verify_password
from cardsvc.staff import throttle


@dataclass(frozen=True)
class Patron:
    found: bool
    status: PatronStatus | None = None
    patron_id: str | None = None
    name: str | None = None
    expires_on: dt.date | None = None
    pin_ok: bool | None = None  # None: no PIN was sent
    message: str = ""


UNKNOWN = Patron(False, message="此卡未於本館登記，請至縣民卡櫃台連結 / Card not registered with "
                                "this library: link it at a county card counter")
MESSAGES = {
    PatronStatus.VALID: "",
    PatronStatus.LOST: "此卡已掛失 / This card was reported lost",
    PatronStatus.BLOCKED: "此卡暫停使用，請洽縣民卡櫃台 / This card is blocked: please see a "
                          "county card counter",
    PatronStatus.EXPIRED: "此卡已逾期，請至縣民卡櫃台換發 / This card has expired: renew it at "
                          "a county card counter",
    PatronStatus.CLOSED: "此卡已停用 / This card is no longer in use",
}
REPLACED = "此卡已換發新卡，請使用新卡 / This card was replaced: use the new card"


def login(ctx: Ctx, username: str, password: str, source: str = "unknown"
          ) -> tuple[SipLogin, Library] | None:
    """A kiosk's 93. Wrong passwords are throttled as staff logins are (per login and source,
    per source, per login), across connections: reconnecting does not reset the count."""
    name = f"sip2:{username[:56]}"
    if throttle.active_lock(ctx.db, ctx.settings, name, source, ctx.now) is not None:
        burn_password_check(password)
        audit.record_unchained(ctx.db, ctx.actor, "library.sip_login_throttled",
                               target_type="library",
                               detail={"username": username[:64], "source": source[:64]})
        return None
    found = ctx.db.scalar(select(SipLogin).where(SipLogin.username == username))
    if found is None:
        burn_password_check(password)
        ok = False
    else:
        ok = verify_password(password, found.password_hash) and found.active
    library = ctx.db.get(Library, found.library_id) if found is not None else None
    ok = ok and library is not None and library.active
    # Unchained, like the lookups: the SIP2 server's statements commit as they run (on
    # PostgreSQL), which the chain's head lock must not be taken in.
    audit.record_unchained(ctx.db, ctx.actor,
                           "library.sip_login" if ok else "library.sip_login_failed",
                           target_type="library", target_id=library.id if library else None,
                           detail={"username": username[:64]})
    if not ok or found is None or library is None:
        throttle.record_failure(ctx.db, ctx.settings, name, source, ctx.now)
        return None
    throttle.record_success(ctx.db, name, source, ctx.now)
    return found, library


NOT_LOGGED_IN = Patron(False, message="請先登入 (93) / Log in first (93)")


def patron(ctx: Ctx, login_: SipLogin, library: Library, identifier: str,
           pin: str | None) -> Patron:
    """The answer for one card number (or patron id), audited. A login or library switched
    off since the connection logged in answers nothing more."""
    identifier = identifier.strip()
    answer = UNKNOWN
    still = ctx.db.scalar(select(SipLogin.active).where(SipLogin.id == login_.id))
    live_library = ctx.db.scalar(select(Library.active).where(Library.id == library.id))
    if not (still and live_library):
        answer = NOT_LOGGED_IN
    elif identifier.startswith(records.PATRON_ID_PREFIX):
        answer = _by_patron_id(ctx, library, identifier, pin)
    elif identifier.isascii() and identifier.isdigit() and len(identifier) <= 20:
        answer = _by_card_number(ctx, library, identifier, pin)
    audit.record_unchained(
        ctx.db, ctx.actor, "library.sip_lookup", target_type="library", target_id=library.id,
        purpose="library SIP2 patron lookup",
        detail={"login": login_.username, "patron_id": answer.patron_id,
                "status": answer.status.value if answer.status else "unknown"})
    return answer


def _answer(ctx: Ctx, card: Card | None, patron_id: str, shared: str, name: str,
            pin_hash: str | None, pin: str | None) -> Patron:
    status = records.status_of(card, ctx.today)
    pin_ok = None
    if pin is not None and pin != "":
        pin_ok = _pin_ok(ctx, patron_id, pin, pin_hash)
    replaced = card is not None and card.status == CardStatus.REPLACED
    return Patron(True, status, patron_id, name if "name" in json.loads(shared) else None,
                  card.expires_on if card is not None else None, pin_ok,
                  REPLACED if replaced else MESSAGES[status])


def _pin_ok(ctx: Ctx, patron_id: str, pin: str, pin_hash: str | None) -> bool:
    """A patron PIN checked, with guesses throttled per patron (from any kiosk): a PIN of four
    digits must not fall to a loop of 63s."""
    name, source = f"sip2pin:{patron_id}", "any"
    if pin_hash is None or throttle.active_lock(ctx.db, ctx.settings, name, source,
                                                ctx.now) is not None:
        return False
    if verify_password(pin, pin_hash):
        throttle.record_success(ctx.db, name, source, ctx.now)
        return True
    throttle.record_failure(ctx.db, ctx.settings, name, source, ctx.now)
    return False


def _by_card_number(ctx: Ctx, library: Library, number: str, pin: str | None) -> Patron:
    # One round trip: the card as scanned, the asking library's standing link of its
    # holder, and the name (sent only where shared).
    row = ctx.db.execute(
        select(Card, LibraryLink.patron_id, LibraryLink.shared_fields, LibraryLink.pin_hash,
               Cardholder.name)
        .join(LibraryLink, and_(LibraryLink.live_holder_id == Card.cardholder_id,
                                LibraryLink.library_id == library.id))
        .join(Cardholder, Cardholder.id == Card.cardholder_id)
        .where(Card.card_number == number)).first()
    if row is None:
        return UNKNOWN
    card, patron_id, shared, pin_hash, name = row
    return _answer(ctx, card, patron_id, shared, name, pin_hash, pin)


def _by_patron_id(ctx: Ctx, library: Library, patron_id: str, pin: str | None) -> Patron:
    link = ctx.db.scalar(select(LibraryLink).where(
        LibraryLink.patron_id == patron_id, LibraryLink.library_id == library.id,
        LibraryLink.live_holder_id.is_not(None)))
    if link is None:
        return UNKNOWN
    holder = ctx.db.get(Cardholder, link.cardholder_id)
    assert holder is not None  # noqa: S101 - foreign key
    return _answer(ctx, records.current_card(ctx.db, link.cardholder_id), link.patron_id,
                   link.shared_fields, holder.name, link.pin_hash, pin)
