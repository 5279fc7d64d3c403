"""Staff accounts and logins."""

from __future__ import annotations

import datetime as dt
import re
import secrets
from dataclasses import dataclass

from sqlalchemy import delete, func, select
from sqlalchemy.orm import Session

from cardsvc.audit import service as audit
from cardsvc.context import Actor, Ctx
from cardsvc.db import utcnow
from cardsvc.errors import AuthenticationRequired, Conflict, InvalidInput, NotFound
from cardsvc.security.crypto import (
    TokenClaims,
    burn_password_check,
    hash_password,
    verify_password,
)
from cardsvc.staff import throttle
from cardsvc.staff.errors import (
    InvalidCredentials,
    LastAdmin,
    LoginThrottled,
    OwnAccount,
    StaffExists,
)
from cardsvc.staff.models import Desk, DrawerCount, RevokedToken, Staff
from cardsvc.staff.roles import Role

# As typed: upper case is taken and stored in lower case.
USERNAME_PATTERN = r"^[A-Za-z][A-Za-z0-9._-]{1,63}$"
USERNAME_RE = re.compile(r"[a-z][a-z0-9._-]{1,63}")
MIN_PASSWORD = 10


def generate_password() -> str:
    return secrets.token_urlsafe(12)


def _check_password_strength(password: str) -> None:
    if len(password) < MIN_PASSWORD:
        raise InvalidInput(f"password must be at least {MIN_PASSWORD} characters")


def create_staff(
    db: Session, actor: Actor, username: str, role: str, password: str,
    display_name: str | None = None, department: str | None = None,
) -> Staff:
    username = username.strip().lower()
    if not USERNAME_RE.fullmatch(username):
        raise InvalidInput("username: 2-64 characters, lower-case letters, digits, . _ -; "
                           "starting with a letter")
    if role not in {r.value for r in Role}:
        raise InvalidInput(f"role must be one of {', '.join(r.value for r in Role)}")
    department = (department or "").strip() or None
    if role == Role.ORGANISER and department is None:
        raise InvalidInput("an organiser works for a department: give it", field="department")
    _check_password_strength(password)
    if db.scalar(select(Staff.id).where(Staff.username == username)) is not None:
        raise StaffExists(f"staff account {username!r} already exists")
    staff = Staff(username=username, display_name=display_name or username, role=role,
                  department=department, password_hash=hash_password(password), active=True)
    db.add(staff)
    db.flush()
    audit.record_for(db, actor, "staff.create", target_type="staff", target_id=staff.id,
                     detail={"username": username, "role": role,
                                                 "department": department})
    return staff


def update_staff(ctx: Ctx, staff_id: int, role: str | None, active: bool | None,
                 display_name: str | None) -> Staff:
    if role is not None and role not in {r.value for r in Role}:
        raise InvalidInput(f"role must be one of {', '.join(r.value for r in Role)}")
    admins: list[int] = []
    if role is not None or active is not None:
        # The active admins first, in id order, then the account: every change takes its
        # locks in that order, so two admins changing each other queue instead of
        # deadlocking.
        admins = _lock_active_admins(ctx)
    staff = ctx.db.get(Staff, staff_id, with_for_update=True, populate_existing=True)
    if staff is None:
        raise NotFound(f"no staff account {staff_id}")
    changes: dict[str, object] = {}
    own = staff.id == ctx.actor.staff_id
    if own and role is not None and role != staff.role:
        raise OwnAccount("you cannot change your own role; another administrator can")
    if own and active is False:
        raise OwnAccount("you cannot disable your own account; another administrator can")
    stays_admin = (role or staff.role) == Role.ADMIN and (staff.active if active is None
                                                           else active)
    if staff.id in admins and not stays_admin and not [i for i in admins if i != staff.id]:
        raise LastAdmin(f"{staff.username} is the last active administrator: make another "
                        "account admin first")
    if role is not None:
        changes["role"] = [staff.role, role]
        staff.role = role
    if active is not None:
        changes["active"] = [staff.active, active]
        staff.active = active
    if display_name is not None:
        staff.display_name = display_name
        changes["display_name"] = True
    audit.record(ctx, "staff.update", target_type="staff", target_id=staff.id, detail=changes)
    return staff


def _lock_active_admins(ctx: Ctx) -> list[int]:
    return list(ctx.db.scalars(select(Staff.id).where(Staff.role == Role.ADMIN,
                                                      Staff.active.is_(True))
                               .order_by(Staff.id).with_for_update()))


def set_password(db: Session, actor: Actor, staff_id: int, password: str) -> None:
    staff = db.get(Staff, staff_id)
    if staff is None:
        raise NotFound(f"no staff account {staff_id}")
    _check_password_strength(password)
    staff.password_hash = hash_password(password)
    staff.password_changed_at = dt.datetime.now(dt.UTC)
    audit.record_for(db, actor, "staff.password_set", target_type="staff", target_id=staff.id)


def count_staff(db: Session) -> int:
    return int(db.scalar(select(func.count()).select_from(Staff)) or 0)


def find_by_username(db: Session, username: str) -> Staff | None:
    return db.scalar(select(Staff).where(Staff.username == username.strip().lower()))


@dataclass(frozen=True)
class LoginResult:
    token: str
    expires_at: dt.datetime
    staff: Staff


def login(ctx: Ctx, username: str, password: str, source: str = "unknown") -> LoginResult:
    """Check a password; throttle and audit failures (`cardsvc.staff.throttle`): `source` is
    the client's address.

    Failures raise errors marked `keep_writes`, so the failure counter and its audit row are
    committed even though the request fails.
    """
    db, now = ctx.db, ctx.now
    uname = username.strip().lower()[:64]
    anonymous = Actor(None, uname, "anonymous")
    lock = throttle.active_lock(db, ctx.settings, uname, source, now)
    if lock is not None:
        audit.record_for(db, anonymous, "auth.login_throttled", target_type="staff",
                         target_id=uname, detail={"source": source, "by": lock.key.split(":")[0]})
        raise LoginThrottled(f"too many failed logins; try again in {lock.seconds} s",
                             retry_after=lock.seconds, keep_writes=True)
    staff = find_by_username(db, uname)
    ok = False
    if staff is None:
        burn_password_check(password)
    else:
        ok = verify_password(password, staff.password_hash) and staff.active
    if not ok:
        counts = throttle.record_failure(db, ctx.settings, uname, source, now)
        audit.record_for(db, anonymous, "auth.login_failed", target_type="staff",
                         target_id=uname, detail={"source": source, **counts})
        raise InvalidCredentials("username or password is wrong, or the account is disabled",
                                 keep_writes=True)
    if staff is None:  # pragma: no cover - ok is False without a staff row
        raise InvalidCredentials("username or password is wrong")
    throttle.record_success(db, uname, source, now)
    token, claims = ctx.keys.tokens.issue(staff.id, now.timestamp())
    audit.record_for(db, Actor(staff.id, staff.username, staff.role), "auth.login",
                     target_type="staff", target_id=staff.id)
    return LoginResult(token, dt.datetime.fromtimestamp(claims.expires_at, dt.UTC), staff)


def revoke(db: Session, actor: Actor, claims: TokenClaims) -> None:
    """End a token now (a logout): refused from here on, wherever it was copied to."""
    if db.get(RevokedToken, claims.token_id) is None:
        db.add(RevokedToken(token_id=claims.token_id, staff_id=claims.staff_id,
                            revoked_at=utcnow(),
                            expires_at=dt.datetime.fromtimestamp(claims.expires_at, dt.UTC)))
        db.flush()
    audit.record_for(db, actor, "auth.logout", target_type="staff", target_id=claims.staff_id)


def is_revoked(db: Session, claims: TokenClaims) -> bool:
    return db.get(RevokedToken, claims.token_id) is not None


def purge_revoked(db: Session, now: dt.datetime) -> int:
    """Forget revocations of tokens that have expired anyway."""
    result = db.execute(delete(RevokedToken).where(RevokedToken.expires_at < now))
    return int(getattr(result, "rowcount", 0) or 0)


def staff_for_token(db: Session, claims_staff_id: int) -> Staff:
    staff = db.get(Staff, claims_staff_id)
    if staff is None or not staff.active:
        raise AuthenticationRequired("the account behind this token is disabled")
    return staff


DESK_CODE = re.compile(r"[A-Z0-9][A-Z0-9-]{1,31}")


def desks(db: Session, *, active_only: bool = True) -> list[Desk]:
    q = select(Desk).order_by(Desk.code)
    if active_only:
        q = q.where(Desk.active.is_(True))
    return list(db.scalars(q))


def add_desk(db: Session, actor: Actor, code: str, name: str) -> Desk:
    code = code.strip().upper()
    if not DESK_CODE.fullmatch(code):
        raise InvalidInput("a desk code is 2-32 letters, digits and dashes, e.g. KM-JC-1",
                           field="code")
    if db.scalar(select(Desk.id).where(Desk.code == code)) is not None:
        raise Conflict(f"desk {code} exists", field="code")
    desk = Desk(code=code, name=name.strip()[:100] or code)
    db.add(desk)
    db.flush()
    audit.record_for(db, actor, "staff.desk_add", target_type="desk", target_id=code,
                     detail={"name": desk.name})
    return desk


def ensure_default_desk(db: Session, actor: Actor, code: str) -> None:
    """First start: the configured default counter is the first desk."""
    if db.scalar(select(Desk.id).limit(1)) is None:
        add_desk(db, actor, code, "總櫃台 Main counter")


def count_drawer(ctx: Ctx, desk: str, day: dt.date, expected: int, counted: int,
                 note: str) -> DrawerCount:
    """Record a drawer count; the difference is kept with it (and in the audit trail)."""
    if desk not in {d.code for d in desks(ctx.db, active_only=False)}:
        raise NotFound(f"no desk {desk}")
    if not 0 <= counted <= 100_000_000:
        raise InvalidInput("the counted cash is a whole number of NT$", field="counted")
    row = DrawerCount(desk=desk, business_date=day, expected=expected, counted=counted,
                      difference=counted - expected, note=note.strip()[:200],
                      counted_by=ctx.actor.username, counted_at=ctx.now)
    ctx.db.add(row)
    ctx.db.flush()
    audit.record(ctx, "staff.drawer_count", target_type="desk", target_id=desk,
                 detail={"day": day.isoformat(), "expected": expected, "counted": counted,
                         "difference": row.difference})
    return row


def drawer_counts(db: Session, day: dt.date) -> dict[str, DrawerCount]:
    """The latest count of each desk's drawer on `day`."""
    out: dict[str, DrawerCount] = {}
    for row in db.scalars(select(DrawerCount).where(DrawerCount.business_date == day)
                          .order_by(DrawerCount.id)):
        out[row.desk] = row
    return out


def desk_for(ctx: Ctx, requested: str | None) -> str:
    """The cash drawer a counter action uses: a registered, open desk when one is named (a
    typo must not open a new drawer), the configured default counter when none is."""
    if requested is None:
        return ctx.settings.default_counter
    code = requested.strip().upper()
    desk = ctx.db.scalar(select(Desk).where(Desk.code == code))
    if desk is None or not desk.active:
        raise InvalidInput(f"no open desk {requested!r}: name a registered desk "
                           "(`cardsvc staff desks`)", field="counter")
    return desk.code
