"""Libraries and links: the registry (admins), residents' consent at the counter, what a
library may read (its feed, a full export, a difference report against its own export)."""

from __future__ import annotations

import csv
import hashlib
import hmac
import io
import json
import secrets
from collections.abc import Iterator, Sequence
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.exc import IntegrityError

from cardsvc.audit import service as audit
from cardsvc.context import Ctx
from cardsvc.errors import InvalidInput, NotFound
from cardsvc.holders import service as holders
from cardsvc.holders.models import Cardholder
from cardsvc.library import feed, records
from cardsvc.library import schemas as s
from cardsvc.library.errors import (
    AlreadyLinked,
    FieldNotOffered,
    LibraryAuthRequired,
    LibraryExists,
    LibraryInactive,
    NoCardToLink,
)
from cardsvc.library.models import (
    EventKind,
    Library,
    LibraryEvent,
    LibraryFeed,
    LibraryLink,
    PatronStatus,
    SipLogin,
)
from cardsvc.security.crypto import hash_password

FEED_PAGE = 500
# The unique patron attribute a Koha import matches on (its code in the library's Koha).
KOHA_PATRON_ATTRIBUTE = "KMPATRON"
KOHA_COLUMNS = ("cardnumber", "surname", "firstname", "categorycode", "branchcode",
                "dateexpiry", "email", "phone", "patron_attributes")


# --- credentials ---------------------------------------------------------------------------


def key_hash(key: str) -> str:
    # Feed keys are 32 random bytes: a plain digest is enough (no password to stretch).
    return "sha256$" + hashlib.sha256(key.encode()).hexdigest()


def _new_feed_key(library: Library) -> str:
    library.feed_key_id = "lib_" + secrets.token_hex(8)
    key = secrets.token_urlsafe(32)
    library.feed_key_hash = key_hash(key)
    return key


def _new_webhook_secret(ctx: Ctx, library: Library) -> str:
    secret = secrets.token_urlsafe(32)
    library.webhook_secret_enc = ctx.keys.pii.encrypt("library_webhook", secret)
    return secret


def webhook_secret(ctx: Ctx, library: Library) -> str | None:
    if library.webhook_secret_enc is None:
        return None
    return ctx.keys.pii.decrypt("library_webhook", library.webhook_secret_enc)


def authenticate(ctx: Ctx, key_id: str | None, key: str | None) -> Library:
    """The library whose feed key this is (HTTP Basic: user = key id, password = key)."""
    library = None
    if key_id and key:
        library = ctx.db.scalar(select(Library).where(Library.feed_key_id == key_id))
    expected = library.feed_key_hash if library is not None else key_hash("-")
    if library is None or not hmac.compare_digest(expected, key_hash(key or "")):
        raise LibraryAuthRequired("send the library's feed key id and key with HTTP Basic "
                                  "authentication")
    if not library.active:
        raise LibraryInactive(f"library {library.code} is not active")
    return library


# --- registry ------------------------------------------------------------------------------


def get_library(ctx: Ctx, library_id: int) -> Library:
    library = ctx.db.get(Library, library_id)
    if library is None:
        raise NotFound(f"no library {library_id}")
    return library


def list_libraries(ctx: Ctx) -> list[Library]:
    return list(ctx.db.scalars(select(Library).order_by(Library.code)))


def _feed_state(ctx: Ctx, library_id: int) -> s.FeedState:
    f = ctx.db.get(LibraryFeed, library_id)
    if f is None:
        return s.FeedState(last_seq=0, delivered_seq=0, failures=0, parked_at=None,
                           next_attempt_at=None, last_error=None)
    return s.FeedState(last_seq=f.last_seq, delivered_seq=f.delivered_seq,
                       failures=f.failures, parked_at=f.parked_at,
                       next_attempt_at=f.next_attempt_at, last_error=f.last_error)


def library_out(ctx: Ctx, library: Library) -> s.LibraryOut:
    links = ctx.db.scalar(select(func.count()).select_from(LibraryLink).where(
        LibraryLink.library_id == library.id, LibraryLink.live_holder_id.is_not(None))) or 0
    return s.LibraryOut(
        id=library.id, code=library.code, name=library.name, ils=library.ils,
        categories=records.categories(library), home_branch=library.home_branch,
        optional_fields=json.loads(library.optional_fields), webhook_url=library.webhook_url,
        feed_key_id=library.feed_key_id, active=library.active, links=int(links),
        feed=_feed_state(ctx, library.id))


def create_library(ctx: Ctx, data: s.LibraryCreate) -> s.LibraryCredentials:
    if ctx.db.scalar(select(Library.id).where(Library.code == data.code)) is not None:
        raise LibraryExists(f"a library with code {data.code} exists", field="code")
    library = Library(code=data.code, name=data.name, ils=data.ils.value,
                      categories=json.dumps(data.categories, sort_keys=True),
                      home_branch=data.home_branch,
                      optional_fields=json.dumps(sorted(set(data.optional_fields))),
                      webhook_url=data.webhook_url, active=True, created_at=ctx.now,
                      updated_at=ctx.now)
    key = _new_feed_key(library)
    secret = _new_webhook_secret(ctx, library) if data.webhook_url else None
    try:
        with ctx.db.begin_nested():
            ctx.db.add(library)
            ctx.db.flush()
    except IntegrityError:
        raise LibraryExists(f"a library with code {data.code} exists", field="code") from None
    ctx.db.add(LibraryFeed(library_id=library.id, last_seq=0, delivered_seq=0, failures=0))
    ctx.db.flush()
    audit.record(ctx, "library.create", target_type="library", target_id=library.id,
                 detail={"code": library.code, "ils": library.ils,
                         "optional_fields": json.loads(library.optional_fields),
                         "webhook": bool(library.webhook_url)})
    return s.LibraryCredentials(**library_out(ctx, library).model_dump(), feed_key=key,
                                webhook_secret=secret)


def update_library(ctx: Ctx, library_id: int, data: s.LibraryUpdate) -> s.LibraryCredentials:
    library = get_library(ctx, library_id)
    changed: dict[str, Any] = {}
    secret = None
    if data.name is not None:
        library.name = changed["name"] = data.name
    if data.categories is not None:
        library.categories = json.dumps(data.categories, sort_keys=True)
        changed["categories"] = data.categories
    if data.home_branch is not None:
        library.home_branch = changed["home_branch"] = data.home_branch
    if data.optional_fields is not None:
        library.optional_fields = json.dumps(sorted(set(data.optional_fields)))
        changed["optional_fields"] = sorted(set(data.optional_fields))
    if data.clear_webhook:
        library.webhook_url = library.webhook_secret_enc = None
        changed["webhook"] = None
    elif data.webhook_url is not None:
        if library.webhook_secret_enc is None:
            secret = _new_webhook_secret(ctx, library)
        library.webhook_url = data.webhook_url
        changed["webhook"] = "set"
    if data.active is not None:
        library.active = changed["active"] = data.active
    library.updated_at = ctx.now
    ctx.db.flush()
    audit.record(ctx, "library.update", target_type="library", target_id=library.id,
                 detail=changed)
    if data.optional_fields is not None or data.categories is not None \
            or data.home_branch is not None:
        _withdraw_fields(ctx, library)
        refresh_library(ctx, library, "library.update")
    return s.LibraryCredentials(**library_out(ctx, library).model_dump(), feed_key=None,
                                webhook_secret=secret)


def _withdraw_fields(ctx: Ctx, library: Library) -> None:
    """Fields a library may no longer receive leave its links' consent too."""
    allowed = set(json.loads(library.optional_fields))
    for link in _live_links(ctx, library.id):
        shared = records.shared_fields(link)
        if not set(shared) <= allowed:
            link.shared_fields = json.dumps(sorted(set(shared) & allowed))


def rotate_credentials(ctx: Ctx, library_id: int) -> s.LibraryCredentials:
    library = get_library(ctx, library_id)
    key = _new_feed_key(library)
    secret = _new_webhook_secret(ctx, library) if library.webhook_url else None
    ctx.db.flush()
    audit.record(ctx, "library.rotate_credentials", target_type="library",
                 target_id=library.id, detail={"feed_key_id": library.feed_key_id})
    return s.LibraryCredentials(**library_out(ctx, library).model_dump(), feed_key=key,
                                webhook_secret=secret)


def resume_feed(ctx: Ctx, library_id: int) -> s.LibraryOut:
    """A parked webhook feed goes on where it stopped."""
    library = get_library(ctx, library_id)
    f = ctx.db.get(LibraryFeed, library.id, with_for_update=True)
    if f is not None:
        f.parked_at = None
        f.failures = 0
        f.next_attempt_at = None
    ctx.db.flush()
    audit.record(ctx, "library.feed_resume", target_type="library", target_id=library.id)
    return library_out(ctx, library)


def add_sip_login(ctx: Ctx, library_id: int, data: s.SipLoginCreate) -> s.SipLoginCredentials:
    library = get_library(ctx, library_id)
    password = data.password or secrets.token_urlsafe(12)
    login = SipLogin(library_id=library.id, username=data.username,
                     password_hash=hash_password(password), expiry_field=data.expiry_field,
                     encoding=data.encoding, active=True, created_at=ctx.now)
    try:
        with ctx.db.begin_nested():
            ctx.db.add(login)
            ctx.db.flush()
    except IntegrityError:
        raise InvalidInput(f"the SIP2 login {data.username} exists", field="username") from None
    audit.record(ctx, "library.sip_login_create", target_type="library", target_id=library.id,
                 detail={"username": login.username})
    return s.SipLoginCredentials(**sip_login_out(login).model_dump(), password=password)


def deactivate_sip_login(ctx: Ctx, login_id: int) -> SipLogin:
    """A kiosk's login stops working at once, also on connections it has open."""
    found = ctx.db.get(SipLogin, login_id)
    if found is None:
        raise NotFound(f"no SIP2 login {login_id}")
    if found.active:
        found.active = False
        audit.record(ctx, "library.sip_login_deactivate", target_type="library",
                     target_id=found.library_id, detail={"username": found.username})
    return found


def sip_login_out(login: SipLogin) -> s.SipLoginOut:
    return s.SipLoginOut(id=login.id, library_id=login.library_id, username=login.username,
                         expiry_field=login.expiry_field, encoding=login.encoding,
                         active=login.active, created_at=login.created_at)


def list_sip_logins(ctx: Ctx, library_id: int) -> list[SipLogin]:
    get_library(ctx, library_id)
    return list(ctx.db.scalars(select(SipLogin).where(SipLogin.library_id == library_id)
                               .order_by(SipLogin.id)))


# --- links ---------------------------------------------------------------------------------


CONSENT_TEMPLATE = (
    "本人同意將下列資料提供予「{library}」作為借閱證使用：讀者代號、目前卡號、讀者類別、"
    "所屬館別、有效期限、卡片狀態{extra_zh}。不提供身分證統一編號、出生日期、晶片序號及電子"
    "票證資料。本人得隨時於櫃台取消，取消後該館即獲通知。\n"
    "I agree that {library} receives, to serve me as a library patron: a patron id, my current "
    "card number, patron category, home branch, expiry and card status{extra_en}. It never "
    "receives my national ID, birth date, chip UID or purse. I may withdraw at any counter; "
    "the library is then told."
)
FIELD_WORDS = {"name": ("姓名", "name"), "phone": ("電話", "phone"),
               "email": ("電子郵件", "email"), "township": ("鄉鎮", "township")}


def consent_text(library: Library, shared: Sequence[str]) -> str:
    extra_zh = "".join(f"、{FIELD_WORDS[f][0]}" for f in shared)
    extra_en = "".join(f", {FIELD_WORDS[f][1]}" for f in shared)
    return CONSENT_TEMPLATE.format(library=library.name, extra_zh=extra_zh, extra_en=extra_en)


def link_out(ctx: Ctx, link: LibraryLink) -> s.LinkOut:
    library = get_library(ctx, link.library_id)
    return s.LinkOut(id=link.id, library_id=library.id, library_code=library.code,
                     library_name=library.name, cardholder_id=link.cardholder_id,
                     patron_id=link.patron_id, shared_fields=records.shared_fields(link),
                     has_pin=link.pin_hash is not None, consented_at=link.consented_at,
                     consented_by=link.consented_by, unlinked_at=link.unlinked_at,
                     unlinked_by=link.unlinked_by)


def link(ctx: Ctx, holder_id: int, data: s.LinkCreate) -> LibraryLink:
    """The resident agrees to be a patron of a library: the consent, a patron id of that
    library's own, and the library's first event about them."""
    holder = holders.get(ctx, holder_id, for_update=True)
    library = get_library(ctx, data.library_id)
    if not library.active:
        raise LibraryInactive(f"library {library.code} is not active")
    offered = set(json.loads(library.optional_fields))
    refused = sorted(set(data.shared_fields) - offered)
    if refused:
        raise FieldNotOffered(f"{library.code} may not receive {', '.join(refused)}; it may "
                              f"receive {', '.join(sorted(offered)) or 'no optional field'}",
                              field="shared_fields")
    card = records.current_card(ctx.db, holder.id)
    if card is None or records.status_of(card, ctx.today) == PatronStatus.CLOSED:
        raise NoCardToLink("the resident has no card to borrow with: apply for one first")
    if ctx.db.scalar(select(LibraryLink.id).where(LibraryLink.library_id == library.id,
                                                  LibraryLink.live_holder_id == holder.id)):
        raise AlreadyLinked(f"the resident is already linked to {library.code}")
    shared = sorted(set(data.shared_fields))
    new = LibraryLink(library_id=library.id, cardholder_id=holder.id, live_holder_id=holder.id,
                      patron_id=records.new_patron_id(), shared_fields=json.dumps(shared),
                      consent_text=consent_text(library, shared), consented_at=ctx.now,
                      consented_by=ctx.actor.username,
                      pin_hash=hash_password(data.pin) if data.pin else None)
    try:
        with ctx.db.begin_nested():
            ctx.db.add(new)
            ctx.db.flush()
    except IntegrityError:
        raise AlreadyLinked(f"the resident is already linked to {library.code}") from None
    record = records.build(library, new, holder, card, ctx.keys, ctx.today)
    feed.append(ctx, library.id, new, EventKind.PATRON, record, "link")
    audit.record(ctx, "library.link", target_type="cardholder", target_id=holder.id,
                 detail={"library": library.code, "patron_id": new.patron_id,
                         "shared_fields": shared, "pin": data.pin is not None})
    return new


def get_link(ctx: Ctx, link_id: int) -> LibraryLink:
    found = ctx.db.get(LibraryLink, link_id)
    if found is None:
        raise NotFound(f"no library link {link_id}")
    return found


def unlink(ctx: Ctx, link_id: int) -> LibraryLink:
    """As easy as linking: the library is told the patron is gone, and gets nothing more."""
    found = get_link(ctx, link_id)
    holders.get(ctx, found.cardholder_id, for_update=True)
    if found.live_holder_id is None:
        return found  # already unlinked: the same answer again
    found.live_holder_id = None
    found.unlinked_at = ctx.now
    found.unlinked_by = ctx.actor.username
    found.pin_hash = None
    feed.append(ctx, found.library_id, found, EventKind.UNLINKED, records.unlinked(found),
                "unlink")
    library = get_library(ctx, found.library_id)
    audit.record(ctx, "library.unlink", target_type="cardholder", target_id=found.cardholder_id,
                 detail={"library": library.code, "patron_id": found.patron_id})
    return found


def links_of(ctx: Ctx, holder_id: int) -> list[LibraryLink]:
    holders.get(ctx, holder_id, erased_ok=True)
    return list(ctx.db.scalars(select(LibraryLink).where(LibraryLink.cardholder_id == holder_id)
                               .order_by(LibraryLink.id)))


def _live_links(ctx: Ctx, library_id: int) -> list[LibraryLink]:
    return list(ctx.db.scalars(select(LibraryLink).where(
        LibraryLink.library_id == library_id, LibraryLink.live_holder_id.is_not(None))
        .order_by(LibraryLink.id)))


def refresh_library(ctx: Ctx, library: Library, cause: str) -> int:
    """Every patron of a library whose record a change of the library's settings altered."""
    return feed.refresh(ctx, [link.cardholder_id for link in _live_links(ctx, library.id)],
                        cause)


# --- what a library reads ------------------------------------------------------------------


def feed_page(ctx: Ctx, library: Library, after: int, limit: int = FEED_PAGE) -> s.FeedPage:
    rows = list(ctx.db.scalars(select(LibraryEvent).where(
        LibraryEvent.library_id == library.id, LibraryEvent.seq > after)
        .order_by(LibraryEvent.seq).limit(limit + 1)))
    more = len(rows) > limit
    rows = rows[:limit]
    events = [s.FeedEvent(seq=r.seq, event_id=r.event_id, kind=r.kind, patron_id=r.patron_id,
                          record=json.loads(r.record), created_at=r.created_at) for r in rows]
    if rows:
        audit.record(ctx, "library.disclose", target_type="library", target_id=library.id,
                     purpose="library feed (pull)",
                     detail={"library": library.code, "from_seq": rows[0].seq,
                             "to_seq": rows[-1].seq,
                             "patrons": sorted({r.patron_id for r in rows})})
    return s.FeedPage(library=library.code, events=events,
                      next_after=rows[-1].seq if rows else after, more=more)


def current_records(ctx: Ctx, library: Library) -> Iterator[dict[str, Any]]:
    for link_row in _live_links(ctx, library.id):
        holder = ctx.db.get(Cardholder, link_row.cardholder_id)
        assert holder is not None  # noqa: S101 - foreign key
        yield records.build(library, link_row, holder,
                            records.current_card(ctx.db, holder.id), ctx.keys, ctx.today)


def export_records(ctx: Ctx, library: Library) -> list[dict[str, Any]]:
    out = list(current_records(ctx, library))
    audit.record(ctx, "library.disclose", target_type="library", target_id=library.id,
                 purpose="library full export",
                 detail={"library": library.code, "records": len(out)})
    return out


def koha_row(record: dict[str, Any]) -> dict[str, str]:
    """One line of a Koha patron import. A library that may not know the name files the
    patron under the patron id; the patron id is the unique attribute the import matches on,
    so a replaced card's new number overwrites the old one."""
    return {"cardnumber": record.get("card_number") or "",
            "surname": record.get("name") or record["patron_id"],
            "firstname": "",
            "categorycode": record["category"],
            "branchcode": record["branch"],
            "dateexpiry": record.get("expires_on") or "",
            "email": record.get("email") or "",
            "phone": record.get("phone") or "",
            "patron_attributes": f"{KOHA_PATRON_ATTRIBUTE}:{record['patron_id']}"}


def koha_csv(rows: list[dict[str, Any]]) -> str:
    out = io.StringIO()
    writer = csv.DictWriter(out, fieldnames=KOHA_COLUMNS, lineterminator="\r\n")
    writer.writeheader()
    for record in rows:
        writer.writerow(koha_row(record))
    return out.getvalue()


def _their_patron_id(row: dict[str, str]) -> str | None:
    for part in (row.get("patron_attributes") or "").split(","):
        code, _, value = part.strip().partition(":")
        if code == KOHA_PATRON_ATTRIBUTE and value:
            return value.strip()
    return None


def diff(ctx: Ctx, library: Library, content: bytes) -> s.DiffReport:
    """The library's own export (a Koha patron CSV) against what it should hold."""
    try:
        text = content.decode("utf-8-sig")
    except UnicodeDecodeError:
        raise InvalidInput("the export must be UTF-8 text") from None
    reader = csv.DictReader(io.StringIO(text, newline=""))
    try:
        header = reader.fieldnames
    except csv.Error as exc:
        raise InvalidInput(f"the export is not readable CSV: {exc}") from None
    if not header or "cardnumber" not in header:
        raise InvalidInput("the export must be CSV with a header naming at least cardnumber "
                           "and patron_attributes")
    ours = {r["patron_id"]: koha_row(r) for r in current_records(ctx, library)}
    by_card = {row["cardnumber"]: pid for pid, row in ours.items() if row["cardnumber"]}
    lines: list[s.DiffLine] = []
    seen: set[str] = set()
    compared = 0
    compare = ("cardnumber", "categorycode", "branchcode", "dateexpiry")
    try:
        for row in reader:
            compared += 1
            row = {k: (v or "").strip() for k, v in row.items() if k}
            pid = _their_patron_id(row) or by_card.get(row.get("cardnumber", ""))
            mine = ours.get(pid) if pid else None
            if mine is None:
                lines.append(s.DiffLine(patron_id=pid, card_number=row.get("cardnumber"),
                                        problem="not ours (unlinked, or unknown)",
                                        theirs=row, ours=None))
                continue
            seen.add(pid or "")
            wrong = {k: row.get(k, "") for k in compare if row.get(k, "") != mine[k]}
            if wrong:
                lines.append(s.DiffLine(patron_id=pid, card_number=row.get("cardnumber"),
                                        problem="differs: " + ", ".join(sorted(wrong)),
                                        theirs=wrong, ours={k: mine[k] for k in wrong}))
    except csv.Error as exc:
        raise InvalidInput(f"the export is not readable CSV ({exc})") from None
    for pid, mine in ours.items():
        if pid not in seen:
            lines.append(s.DiffLine(patron_id=pid, card_number=mine["cardnumber"],
                                    problem="missing in the library's system", theirs=None,
                                    ours={k: mine[k] for k in compare}))
    audit.record(ctx, "library.reconcile", target_type="library", target_id=library.id,
                 detail={"library": library.code, "compared": compared,
                         "differences": len(lines)})
    return s.DiffReport(library=library.code, compared=compared, differences=lines)
