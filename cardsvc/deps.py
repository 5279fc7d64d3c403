"""FastAPI dependencies: the unit of work, the authenticated staff member, role guards."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Annotated

from fastapi import Depends, Header, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from sqlalchemy.orm import Session

from cardsvc.context import Actor, Ctx
from cardsvc.db import unit_of_work
from cardsvc.errors import AuthenticationRequired, Forbidden
from cardsvc.idempotency.service import IDEMPOTENCY_KEY_PATTERN
from cardsvc.runtime import Runtime
from cardsvc.staff import service as staff_service
from cardsvc.staff.roles import (
    Role,
)

bearer = HTTPBearer(auto_error=False)


def runtime(request: Request) -> Runtime:
    rt: Runtime = request.app.state.runtime
    return rt


def db_session(rt: Annotated[Runtime, Depends(runtime)]) -> Iterator[Session]:
    """The request owns the transaction: commit once at the end, or roll back everything."""
    with unit_of_work(rt.sessions) as session:
        yield session


# scope="function": the transaction ends before the response is sent, so a client never sees
# success for work that then fails to commit.
DB = Annotated[Session, Depends(db_session, scope="function")]


def current_actor(
    rt: Annotated[Runtime, Depends(runtime)],
    db: DB,
    creds: Annotated[HTTPAuthorizationCredentials | None, Depends(bearer)],
) -> Actor:
    if creds is None or creds.scheme.lower() != "bearer":
        raise AuthenticationRequired("log in and send the token as 'Authorization: Bearer ...'")
    claims = rt.keys.tokens.verify(creds.credentials)
    staff = staff_service.staff_for_token(db, claims.staff_id)
    if claims.issued_at < int(staff.password_changed_at.timestamp()):
        raise AuthenticationRequired("the password was changed after this token was issued; "
                                     "log in again")
    if staff_service.is_revoked(db, claims):
        raise AuthenticationRequired("this token was logged out; log in again")
    return Actor(staff.id, staff.username, staff.role)


class RoleGuard:
    """A route's declaration of who may call it. The role matrix test reads `roles`."""

    def __init__(self, *roles: Role) -> None:
        self.roles = frozenset(r.value for r in roles)

    def __call__(self, actor: Annotated[Actor, Depends(current_actor)]) -> Actor:
        if actor.role not in self.roles:
            raise Forbidden(f"role {actor.role!r} may not do this; allowed: "
                            f"{', '.join(sorted(self.roles))}")
        return actor


class Public:
    """A route's declaration that anyone may call it, without logging in (a login, a bill
    receipt's check, a bill paid with the phone-signed token). The role-matrix test reads it
    as it reads `RoleGuard`: every route declares one or the other."""

    def __call__(self) -> None:
        return None


PUBLIC = Public()


def allow(*roles: Role) -> RoleGuard:
    return RoleGuard(*roles)


def ctx_dep(
    rt: Annotated[Runtime, Depends(runtime)], db: DB,
    actor: Annotated[Actor, Depends(current_actor)],
) -> Ctx:
    return rt.ctx(db, actor)


CtxDep = Annotated[Ctx, Depends(ctx_dep)]
RuntimeDep = Annotated[Runtime, Depends(runtime)]
IdempotencyKey = Annotated[
    str,
    Header(alias="Idempotency-Key", description="Required on every request that moves money "
           "(8-100 letters, digits, _ . : -). Same key and body: the same answer again, with "
           "Idempotent-Replayed: true; same key, another body: 409 idempotency_key_reused.",
           pattern=IDEMPOTENCY_KEY_PATTERN),
]

