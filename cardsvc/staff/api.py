from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Request, Response
from fastapi.security import HTTPAuthorizationCredentials
from sqlalchemy import select

from cardsvc.context import Actor
from cardsvc.deps import DB, PUBLIC, CtxDep, allow, bearer, current_actor, runtime
from cardsvc.errors import AuthenticationRequired
from cardsvc.runtime import Runtime
from cardsvc.schemas_common import IdPath
from cardsvc.staff import service
from cardsvc.staff.models import Staff
from cardsvc.staff.roles import (
    ADMINS,
    EVERYONE,
)
from cardsvc.staff.schemas import (
    LoginRequest,
    LoginResponse,
    PasswordSet,
    StaffCreate,
    StaffOut,
    StaffUpdate,
)

router = APIRouter(tags=["staff"])














@router.post("/auth/login", response_model=LoginResponse, dependencies=[Depends(PUBLIC)],
             responses={401: {"description": "`invalid_credentials`: the username or password "
                                             "is wrong, or the account is disabled"},
                        429: {"description": "`login_throttled`: too many failed logins from "
                                             "this address; `Retry-After` says how long"}},
             summary="Log in with username and password; get a short-lived bearer token")
def login(body: LoginRequest, db: DB, rt: Annotated[Runtime, Depends(runtime)],
          request: Request) -> LoginResponse:
    ctx = rt.ctx(db, Actor(None, "anonymous", "anonymous"))
    # The client's address as the server sees it (behind the county's reverse proxy, run
    # uvicorn with --forwarded-allow-ips for the proxy so this is the real client).
    source = request.client.host if request.client else "unknown"
    result = service.login(ctx, body.username, body.password, source)
    return LoginResponse(access_token=result.token, expires_at=result.expires_at,
                         username=result.staff.username, role=result.staff.role)


@router.post("/auth/logout", status_code=204, dependencies=[Depends(allow(*EVERYONE))],
             summary="Log out: this token is refused from now on")
def logout(db: DB, rt: Annotated[Runtime, Depends(runtime)],
           actor: Annotated[Actor, Depends(current_actor)],
           creds: Annotated[HTTPAuthorizationCredentials | None, Depends(bearer)]) -> Response:
    if creds is not None:
        service.revoke(db, actor, rt.keys.tokens.verify(creds.credentials))
    return Response(status_code=204)


@router.get("/auth/me", response_model=StaffOut, dependencies=[Depends(allow(*EVERYONE))])
def me(db: DB, actor: Annotated[Actor, Depends(current_actor)]) -> Staff:
    staff = db.get(Staff, actor.staff_id)
    if staff is None:  # deleted between the token check and here
        raise AuthenticationRequired("the account behind this token is gone")
    return staff


@router.get("/staff", response_model=list[StaffOut], dependencies=[Depends(allow(*ADMINS))])
def list_staff(ctx: CtxDep) -> list[Staff]:
    return list(ctx.db.scalars(select(Staff).order_by(Staff.id)))


@router.post("/staff", response_model=StaffOut, status_code=201,
             dependencies=[Depends(allow(*ADMINS))])
def create_staff(body: StaffCreate, ctx: CtxDep) -> Staff:
    return service.create_staff(ctx.db, ctx.actor, body.username, body.role.value,
                                body.password, body.display_name, body.department)


@router.patch("/staff/{staff_id:int}", response_model=StaffOut,
              dependencies=[Depends(allow(*ADMINS))])
def update_staff(staff_id: IdPath, body: StaffUpdate, ctx: CtxDep) -> Staff:
    return service.update_staff(ctx, staff_id, body.role.value if body.role else None,
                                body.active, body.display_name)


@router.post("/staff/{staff_id:int}/password", status_code=204,
             dependencies=[Depends(allow(*ADMINS))])
def set_password(staff_id: IdPath, body: PasswordSet, ctx: CtxDep) -> None:
    service.set_password(ctx.db, ctx.actor, staff_id, body.password)
