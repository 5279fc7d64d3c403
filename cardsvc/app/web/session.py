"""Counter sessions in a cookie: the staff token (the API's own, with its lifetime and its
checks) and the desk chosen at login, bound together by a MAC; a CSRF token per session.

The cookie is HttpOnly (no script reads it), SameSite=Strict (no other site's page sends it)
and Secure when the page came over HTTPS. Every form carries the session's CSRF token, and
every POST checks it.
"""

from __future__ import annotations

import hashlib
import hmac
from dataclasses import dataclass

from fastapi import Request, Response
from sqlalchemy.orm import Session

from cardsvc.context import Actor
from cardsvc.errors import DomainError
from cardsvc.runtime import Runtime
from cardsvc.security.crypto import TokenClaims
from cardsvc.staff import service as staff_service

COOKIE = "kmc_session"
LANG_COOKIE = "kmc_lang"
PATH = "/counter"


def _key(rt: Runtime, purpose: bytes) -> bytes:
    return hmac.new(rt.keys.secrets.token_key, b"counter-web:" + purpose,
                    hashlib.sha256).digest()


def _mac(rt: Runtime, token: str, desk: str) -> str:
    return hmac.new(_key(rt, b"session"), f"{token}\n{desk}".encode(),
                    hashlib.sha256).hexdigest()[:32]


@dataclass(frozen=True)
class WebSession:
    actor: Actor
    display_name: str
    desk: str
    csrf: str
    expires_at: int
    claims: TokenClaims


def cookie_value(rt: Runtime, token: str, desk: str) -> str:
    return f"{token}~{desk}~{_mac(rt, token, desk)}"


def csrf_of(rt: Runtime, token: str) -> str:
    return hmac.new(_key(rt, b"csrf"), token.encode(), hashlib.sha256).hexdigest()[:32]


def read(rt: Runtime, db: Session, request: Request) -> WebSession | None:
    """The session of this request, or None (no cookie, altered, expired, account disabled
    or its password changed since)."""
    raw = request.cookies.get(COOKIE, "")
    token, _, rest = raw.partition("~")
    desk, _, mac = rest.partition("~")
    if not token or not hmac.compare_digest(mac, _mac(rt, token, desk)):
        return None
    try:
        claims = rt.keys.tokens.verify(token)
        staff = staff_service.staff_for_token(db, claims.staff_id)
    except DomainError:
        return None
    if claims.issued_at < int(staff.password_changed_at.timestamp()):
        return None
    if staff_service.is_revoked(db, claims):
        return None  # logged out, wherever the cookie was copied to
    return WebSession(Actor(staff.id, staff.username, staff.role), staff.display_name, desk,
                      csrf_of(rt, token), claims.expires_at, claims)


def csrf_ok(session: WebSession, submitted: str | None) -> bool:
    return bool(submitted) and hmac.compare_digest(session.csrf, submitted or "")


def start(response: Response, request: Request, value: str, max_age: int) -> None:
    response.set_cookie(COOKIE, value, max_age=max_age, path=PATH, httponly=True,
                        samesite="strict", secure=request.url.scheme == "https")


def end(response: Response) -> None:
    response.delete_cookie(COOKIE, path=PATH, httponly=True, samesite="strict")
