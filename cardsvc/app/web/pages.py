"""The counter's pages. Each page declares its roles (`PageGuard`, read by the route-by-role
test as the API's `RoleGuard` is) and works through the domains' services, so a page and the
API apply one rule each. Every form carries the session's CSRF token; every POST checks it.
Personal data never goes into a URL: searches and registrations are POSTed."""

from __future__ import annotations

import datetime as dt
import secrets
from collections.abc import Iterator
from pathlib import Path
from typing import Annotated, Any

from fastapi import APIRouter, Depends, FastAPI, Form, Query, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from fastapi.templating import Jinja2Templates
from markupsafe import Markup
from pydantic import ValidationError
from sqlalchemy.orm import Session

from cardsvc.app.web import i18n
from cardsvc.app.web import session as web_session
from cardsvc.app.web.session import WebSession
from cardsvc.audit import review, review_print
from cardsvc.audit import service as audit
from cardsvc.cards import chip, profiles, purse
from cardsvc.cards import schemas as cs
from cardsvc.cards import service as cards_service
from cardsvc.cards.errors import CardNotPresented, Ineligible, ReaderUnavailable
from cardsvc.cards.models import Product
from cardsvc.config import TOWNSHIPS
from cardsvc.context import TAIPEI, Actor, Ctx
from cardsvc.db import unit_of_work
from cardsvc.einvoice import service as einvoice
from cardsvc.errors import DomainError
from cardsvc.holders import schemas as hs
from cardsvc.holders import service as holders
from cardsvc.holders.models import EmployerKind
from cardsvc.idempotency.service import idempotent
from cardsvc.ledger import service as ledger
from cardsvc.ledger.models import Transfer
from cardsvc.library import api as library_api
from cardsvc.library import records as library_records
from cardsvc.library import schemas as ls
from cardsvc.library import service as library
from cardsvc.points import api as points_api
from cardsvc.points import service as points
from cardsvc.roc import parse_date
from cardsvc.runtime import Runtime
from cardsvc.schemas_common import MAX_ID
from cardsvc.staff import service as staff_service
from cardsvc.staff.roles import (
    AUDIT_READERS,
    CLERKS,
    READERS,
    REPORT_READERS,
    SUPERVISORS,
    Role,
)
from cardsvc.stats import service as stats
from settlement.bills import api as bill_api
from settlement.bills import service as bill_service
from settlement.bills.barcodes import SlipError
from settlement.bills.models import Bill

TEMPLATES = Jinja2Templates(directory=str(Path(__file__).with_name("templates")))
LOGIN_CSRF = "kmc_login"
# Why a clerk looks a resident up: each goes to the audit trail with the search.
PURPOSES = ("counter service", "card application", "lost or replaced card",
            "top-up or refund", "bill payment")

router = APIRouter(prefix="/counter", include_in_schema=False)


class LoginNeeded(Exception):
    def __init__(self, expired: bool) -> None:
        self.expired = expired


class PageForbidden(Exception):
    pass


def _runtime(request: Request) -> Runtime:
    rt: Runtime = request.app.state.runtime
    return rt


def _db(request: Request) -> Iterator[Session]:
    with unit_of_work(_runtime(request).sessions) as db:
        yield db


DB = Annotated[Session, Depends(_db, scope="function")]


class PageGuard:
    """A page's declaration of who may see it. Without a session the browser goes to the
    login page; with another role it gets the 403 page."""

    def __init__(self, *roles: Role) -> None:
        self.roles = frozenset(r.value for r in roles)

    def __call__(self, request: Request, db: DB) -> WebSession:
        s = web_session.read(_runtime(request), db, request)
        if s is None:
            raise LoginNeeded(expired=web_session.COOKIE in request.cookies)
        if s.actor.role not in self.roles:
            raise PageForbidden()
        return s


class PublicPage:
    """A page anyone may open (the login page)."""

    def __call__(self) -> None:
        return None


def page(*roles: Role) -> Any:
    return Depends(PageGuard(*roles))


def _lang(request: Request) -> str:
    return i18n.pick(request.cookies.get(web_session.LANG_COOKIE))


def render(request: Request, template: str, s: WebSession | None, status: int = 200,
           **context: Any) -> HTMLResponse:
    lang = _lang(request)
    tr = i18n.translations(lang)
    return TEMPLATES.TemplateResponse(request, template, {
        "_": tr.gettext, "lang": lang, "languages": i18n.LANGUAGES, "s": s,
        "roc": lambda day: i18n.roc_date(day, lang), **context}, status_code=status)


def _ctx(request: Request, db: Session, s: WebSession) -> Ctx:
    return _runtime(request).ctx(db, s.actor)


def _refused(exc: DomainError) -> tuple[str, str, str]:
    """A service's refusal on a page: its stable title in the clerk's language, then the
    service's own detail (which names the card or bill) in small print."""
    return ("", exc.title, exc.detail)


def _check_csrf(s: WebSession, csrf: str | None) -> None:
    if not web_session.csrf_ok(s, csrf):
        raise PageForbidden()


def install_handlers(app: FastAPI) -> None:
    @app.exception_handler(LoginNeeded)
    async def _login(request: Request, exc: LoginNeeded) -> Response:
        return RedirectResponse("/counter/login" + ("?expired=1" if exc.expired else ""), 303)

    @app.exception_handler(PageForbidden)
    async def _forbidden(request: Request, exc: PageForbidden) -> Response:
        return render(request, "forbidden.html", None, status=403)


# --- login, logout, language ---------------------------------------------------------------


def _login_form(request: Request, db: Session, status: int = 200, **context: Any) -> Response:
    """The login page with a fresh form token, also set as a cookie: a login POST carries
    both (before there is a session, the pair is what shows it came from this page)."""
    token = secrets.token_urlsafe(24)
    resp = render(request, "login.html", None, status=status, desks=staff_service.desks(db),
                  login_csrf=token, **{"expired": False, "error": None, **context})
    resp.set_cookie(LOGIN_CSRF, token, path="/counter", httponly=True, samesite="strict",
                    secure=request.url.scheme == "https")
    return resp


@router.get("/login", dependencies=[Depends(PublicPage())])
def login_page(request: Request, db: DB, expired: int = 0) -> Response:
    return _login_form(request, db, expired=bool(expired))


@router.post("/login", dependencies=[Depends(PublicPage())])
def login(request: Request, db: DB, username: Annotated[str, Form(max_length=64)],
          password: Annotated[str, Form(max_length=200)],
          desk: Annotated[str, Form(max_length=32)],
          csrf: Annotated[str, Form(max_length=64)] = "") -> Response:
    expected = request.cookies.get(LOGIN_CSRF, "")
    if not expected or not secrets.compare_digest(expected, csrf):
        raise PageForbidden()
    rt = _runtime(request)
    desks = staff_service.desks(db)
    error = None
    if desk not in {d.code for d in desks}:
        error = "Choose your desk from the list."
    else:
        try:
            ctx = rt.ctx(db, Actor(None, username[:64], "anonymous"))
            result = staff_service.login(ctx, username, password,
                                         request.client.host if request.client else "unknown")
        except DomainError as exc:
            db.commit() if exc.keep_writes else db.rollback()
            error = ("Too many failed logins; wait a moment and try again."
                     if exc.code == "login_throttled" else
                     "Username or password is wrong, or the account is disabled.")
        else:
            done = RedirectResponse("/counter", 303)
            web_session.start(done, request, web_session.cookie_value(rt, result.token, desk),
                              rt.settings.token_ttl_seconds)
            done.delete_cookie(LOGIN_CSRF, path="/counter")
            return done
    return _login_form(request, db, status=401 if "password" in error else 422, error=error,
                       username=username)


@router.post("/logout")
def logout(request: Request, db: DB, s: Annotated[WebSession, page(*Role)],
           csrf: Annotated[str, Form(max_length=64)] = "") -> Response:
    """End the session: its token is refused from now on, even from a copied cookie."""
    _check_csrf(s, csrf)
    staff_service.revoke(db, s.actor, s.claims)
    db.commit()
    resp = RedirectResponse("/counter/login", 303)
    web_session.end(resp)
    return resp


@router.post("/language", dependencies=[Depends(PublicPage())])
def language(request: Request, lang: Annotated[str, Form(max_length=16)],
             back: Annotated[str, Form(max_length=200)] = "/counter") -> Response:
    target = back if back.startswith("/counter") and "//" not in back else "/counter"
    resp = RedirectResponse(target, 303)
    resp.set_cookie(web_session.LANG_COOKIE, i18n.pick(lang), path="/counter",
                    max_age=365 * 86_400, samesite="strict", httponly=True)
    return resp


# --- the day -------------------------------------------------------------------------------


@router.get("")
def home(request: Request, db: DB,
         s: Annotated[WebSession, page(Role.CLERK, Role.SUPERVISOR, Role.AUDITOR,
                                       Role.ADMIN)]) -> Response:
    ctx = _ctx(request, db, s)
    drawer = ledger.cash_drawer(ctx, s.desk, ctx.today)
    waiting = chip.waiting_loads(ctx)
    return render(request, "home.html", s, drawer=drawer, waiting=waiting, today=ctx.today)


@router.get("/drawers")
def drawers(request: Request, db: DB,
            s: Annotated[WebSession, page(*SUPERVISORS)]) -> Response:
    """The end-of-day drawer report: every desk's expected cash and the count against it."""
    ctx = _ctx(request, db, s)
    rows = [ledger.cash_drawer(ctx, d.code, ctx.today) for d in staff_service.desks(db)]
    return render(request, "drawers.html", s, rows=rows, today=ctx.today,
                  counts=staff_service.drawer_counts(db, ctx.today))


@router.post("/drawers/{desk}/count")
def count_drawer(request: Request, db: DB, s: Annotated[WebSession, page(*SUPERVISORS)],
                 desk: str, counted: Annotated[int, Form(ge=0, le=100_000_000)],
                 note: Annotated[str, Form(max_length=200)] = "",
                 csrf: Annotated[str, Form(max_length=64)] = "") -> Response:
    """A count is compared with what the ledger says the drawer holds now; the difference is
    kept with the count."""
    _check_csrf(s, csrf)
    ctx = _ctx(request, db, s)
    expected = ledger.cash_drawer(ctx, desk, ctx.today).expected
    try:
        staff_service.count_drawer(ctx, desk, ctx.today, expected, counted, note)
    except DomainError as exc:
        db.rollback()
        return render(request, "forbidden.html", s, status=exc.status)
    db.commit()
    return drawers(request, db, s)


# --- residents -----------------------------------------------------------------------------


@router.get("/residents")
def residents(request: Request, s: Annotated[WebSession, page(*READERS)]) -> Response:
    return render(request, "residents.html", s, purposes=PURPOSES, results=None, form={},
                  error=None)


@router.post("/residents")
def search(request: Request, db: DB, s: Annotated[WebSession, page(*READERS)],
           purpose: Annotated[str, Form(max_length=64)],
           query: Annotated[str, Form(max_length=100)],
           csrf: Annotated[str, Form(max_length=64)] = "") -> Response:
    _check_csrf(s, csrf)
    ctx = _ctx(request, db, s)
    text = query.strip()
    by_id = len(text) == 10 and text[0].isalpha() and text[1:].isdigit()
    try:
        results = holders.search(ctx, purpose, text if by_id else None,
                                 None if by_id else text, 20)
    except DomainError as exc:
        return render(request, "residents.html", s, status=422, purposes=PURPOSES,
                      results=None, form={"purpose": purpose}, error=exc.detail)
    return render(request, "residents.html", s, purposes=PURPOSES, results=results,
                  form={"purpose": purpose}, error=None)


@router.get("/residents/new")
def new_resident(request: Request, s: Annotated[WebSession, page(*CLERKS)]) -> Response:
    return render(request, "resident_new.html", s, townships=TOWNSHIPS, form={}, errors={},
                  created=None)


FIELD_NAMES = {"name", "person_id", "birth_date", "township", "phone", "email"}
# What the clerk reads under a field the rules refused (the page's words for the API's rule).
FIELD_MESSAGES = {
    "name": "Write the resident's name.",
    "person_id": "Not a valid national ID or resident certificate number: check the letters "
                 "and the check digit.",
    "birth_date": "A birth date lies between 1900-01-01 and today.",
    "township": "Choose a township from the list.",
    "phone": "A phone number is digits, spaces and dashes.",
    "email": "This is not an e-mail address.",
}
UNREADABLE_DATE = "Write the date as 2026-12-06, or in the ROC calendar as 115/12/06."
DUPLICATE = "This resident is already registered: find them instead."


@router.post("/residents/new")
def register(request: Request, db: DB, s: Annotated[WebSession, page(*CLERKS)],
             name: Annotated[str, Form(max_length=100)] = "",
             person_id: Annotated[str, Form(max_length=20)] = "",
             birth_date: Annotated[str, Form(max_length=30)] = "",
             township: Annotated[str, Form(max_length=8)] = "",
             phone: Annotated[str, Form(max_length=30)] = "",
             email: Annotated[str, Form(max_length=200)] = "",
             csrf: Annotated[str, Form(max_length=64)] = "") -> Response:
    _check_csrf(s, csrf)
    form = {"name": name, "person_id": person_id, "birth_date": birth_date,
            "township": township, "phone": phone, "email": email}
    errors: dict[str, str] = {}
    try:
        holders.valid_person_id(person_id)  # the register rule, told before anything else
    except DomainError:
        errors["person_id"] = FIELD_MESSAGES["person_id"]
    try:
        born = parse_date(birth_date)
    except ValueError:
        errors["birth_date"], born = UNREADABLE_DATE, dt.date(1900, 1, 1)
    try:
        data = hs.CardholderCreate(name=name.strip(), person_id=person_id.strip(),
                                   birth_date=born,
                                   township=township or None, phone=phone.strip() or None,
                                   email=email.strip() or None)
    except ValidationError as exc:
        for e in exc.errors():
            field = str(e["loc"][0]) if e["loc"] else "name"
            field = field if field in FIELD_NAMES else "name"
            errors.setdefault(field, FIELD_MESSAGES[field])
        data = None
    if data is not None and not errors:
        ctx = _ctx(request, db, s)
        try:
            holder = holders.register(ctx, data)
        except DomainError as exc:
            if exc.code == "duplicate_cardholder":
                errors["person_id"] = DUPLICATE
            else:
                field = str(exc.extra.get("field", "person_id"))
                field = field if field in FIELD_NAMES else "person_id"
                errors[field] = FIELD_MESSAGES[field]
        else:
            return render(request, "resident_new.html", s, townships=TOWNSHIPS, form={},
                          errors={}, created=holders.summary(ctx, holder))
    return render(request, "resident_new.html", s, status=422, townships=TOWNSHIPS,
                  form=form, errors=errors, created=None)


# --- a resident's page and the card at the counter -------------------------------------------

# The eligibility rules in words a resident understands (the API's `rule` ids).
RULE_WORDS = {
    "general.registered_in_county": "A general card is for residents registered in the county.",
    "general.min_age": "A general card is for residents aged 7 and over.",
    "mobile.registered_in_county": "A mobile card is for residents registered in the county.",
    "mobile.min_age": "A mobile card is for residents aged 7 and over.",
    "mobile.device_binding": "A mobile card is applied for in the resident's phone app.",
    "student.enrolment_valid": "A student card needs a valid enrolment: record the school's "
                               "proof first.",
    "staff.employment_valid": "A staff card needs a current employment with the county, its "
                              "agencies or schools, the council or a township office.",
    "senior.registered_in_county": "A senior or 愛心 card is for residents registered in the "
                                   "county.",
    "senior.age_or_disability": "A senior or 愛心 card needs age 65 on the issue date, a valid "
                                "disability certificate, or registration as its companion.",
}
PRODUCTS = ("general", "senior", "student", "staff")
# A concession's name on the page (its code is also a product's: these read differently).
CONCESSION_LABELS = {"senior": "aged 65 and over", "disability": "disability (愛心)",
                     "companion": "companion (陪伴)", "student": "enrolled student",
                     "staff": "county staff", "none": "none"}


def _resident(request: Request, db: Session, s: WebSession, holder_id: int, purpose: str,
              status: int = 200, account: str = "", **context: Any) -> Response:
    """The resident's page: read for `purpose` (audited, as on the API)."""
    ctx = _ctx(request, db, s)
    try:
        record = holders.read_full(ctx, holder_id, purpose, False)
    except DomainError as exc:
        return render(request, "forbidden.html", s, status=exc.status)
    rows = []
    for card in cards_service.list_for_holder(ctx, holder_id):
        rows.append((card, purse.purse(ctx, card.id, 5)))
    links = [library.link_out(ctx, link) for link in library.links_of(ctx, holder_id)]
    libraries = [lib for lib in library.list_libraries(ctx) if lib.active]
    rewards = points.list_items(ctx, active_only=True)
    bills = bill_service.paid_with_cards(ctx, [card.id for card, _ in rows])
    # Bills are the biller's, keyed by account number: the accounts the resident paid before
    # with a card, and one the clerk looked up, show what is still open.
    accounts = {b.account_number for b, _ in bills} | ({account} if account else set())
    unpaid = bill_service.unpaid_of_accounts(ctx, accounts)
    bindings = einvoice.standing_bindings(ctx, [card.id for card, _ in rows])
    invoices = einvoice.resident(ctx, holder_id)
    points_balance = points.balance(ctx, holder_id)
    expiring = points.expiring(ctx, holder_id)
    db.commit()  # the read is in the audit trail whatever the page shows next
    return render(request, "resident.html", s, status=status, r=record, cards=rows,
                  links=links, invoices=invoices.invoices[:10], winnings=invoices.winnings,
                  points_balance=points_balance, expiring=expiring, libraries=libraries,
                  rewards=rewards, shareable=library_records.OPTIONAL_FIELDS, bills=bills,
                  unpaid=unpaid, account=account, bindings=bindings,
                  employer_kinds=[k.value for k in EmployerKind],
                  purpose=purpose, products=PRODUCTS, idem=secrets.token_urlsafe(18),
                  concessions=CONCESSION_LABELS,
                  **{"notice": None, "refusal": None, "consent_link": None, **context})


@router.post("/residents/{holder_id:int}")
def resident(request: Request, db: DB, s: Annotated[WebSession, page(*READERS)],
             holder_id: int, purpose: Annotated[str, Form(min_length=3, max_length=200)],
             csrf: Annotated[str, Form(max_length=64)] = "") -> Response:
    _check_csrf(s, csrf)
    return _resident(request, db, s, holder_id, purpose)


@router.post("/residents/{holder_id:int}/apply")
def apply(request: Request, db: DB, s: Annotated[WebSession, page(*CLERKS)], holder_id: int,
          product: Annotated[str, Form(max_length=16)],
          purpose: Annotated[str, Form(min_length=3, max_length=200)],
          csrf: Annotated[str, Form(max_length=64)] = "") -> Response:
    _check_csrf(s, csrf)
    ctx = _ctx(request, db, s)
    try:
        card = cards_service.apply(ctx, cs.CardApplication(
            cardholder_id=holder_id, product=Product(product), counter=s.desk))
    except Ineligible as exc:
        db.rollback()
        rule = str(exc.extra.get("rule", ""))
        return _resident(request, db, s, holder_id, purpose, status=422,
                         refusal=(rule, RULE_WORDS.get(rule, exc.detail), exc.detail))
    except DomainError as exc:
        db.rollback()
        return _resident(request, db, s, holder_id, purpose, status=exc.status,
                         refusal=_refused(exc))
    except ValueError:  # not one of the products offered
        db.rollback()
        return _resident(request, db, s, holder_id, purpose, status=422,
                         refusal=("", "Choose a product.", ""))
    return _resident(request, db, s, holder_id, purpose,
                     notice=("Applied: card", card.card_number))


@router.post("/cards/{card_id:int}/issue")
def issue(request: Request, db: DB, s: Annotated[WebSession, page(*CLERKS)], card_id: int,
          purpose: Annotated[str, Form(min_length=3, max_length=200)],
          csrf: Annotated[str, Form(max_length=64)] = "") -> Response:
    """Personalise the blank card on the counter's reader (the page shows "waiting for the
    card" meanwhile); no card in time is a clear message, and nothing is half done."""
    _check_csrf(s, csrf)
    ctx = _ctx(request, db, s)
    card = cards_service.get(ctx, card_id)
    try:
        chip.issue(ctx, card_id, None, _runtime(request).counter)
    except CardNotPresented:
        db.rollback()
        return _resident(request, db, s, card.cardholder_id, purpose, status=409,
                         refusal=("", "No card arrived on the reader: put a blank card on it "
                                      "and issue again.", ""))
    except ReaderUnavailable as exc:
        db.rollback()
        return _resident(request, db, s, card.cardholder_id, purpose, status=503,
                         refusal=("", "This desk's card reader does not answer: check it is "
                                      "plugged in, then issue again.", exc.detail))
    except DomainError as exc:
        db.rollback()
        return _resident(request, db, s, card.cardholder_id, purpose, status=exc.status,
                         refusal=_refused(exc))
    return _resident(request, db, s, card.cardholder_id, purpose,
                     notice=("Personalised: card", card.card_number))


@router.post("/cards/{card_id:int}/hand-over")
def hand_over(request: Request, db: DB, s: Annotated[WebSession, page(*CLERKS)], card_id: int,
              purpose: Annotated[str, Form(min_length=3, max_length=200)],
              csrf: Annotated[str, Form(max_length=64)] = "") -> Response:
    _check_csrf(s, csrf)
    ctx = _ctx(request, db, s)
    try:
        card = cards_service.simple_transition(ctx, card_id, "activate",
                                               "handed over at the counter")
    except DomainError as exc:
        db.rollback()
        card = cards_service.get(ctx, card_id)
        return _resident(request, db, s, card.cardholder_id, purpose, status=exc.status,
                         refusal=_refused(exc))
    return _resident(request, db, s, card.cardholder_id, purpose,
                     notice=("Handed over: card", card.card_number))


@router.post("/cards/{card_id:int}/top-up")
def top_up(request: Request, db: DB, s: Annotated[WebSession, page(*CLERKS)], card_id: int,
           amount: Annotated[int, Form(ge=1, le=1_000_000)],
           idem: Annotated[str, Form(min_length=8, max_length=100)],
           purpose: Annotated[str, Form(min_length=3, max_length=200)],
           csrf: Annotated[str, Form(max_length=64)] = "") -> Response:
    """A cash top-up with its printable receipt. The form's idempotency key was made when the
    page was drawn: a double click or a reload replays the first answer, never a second
    charge; a tab closed mid-way leaves either the whole top-up or none."""
    _check_csrf(s, csrf)
    ctx = _ctx(request, db, s)
    card = cards_service.get(ctx, card_id)
    try:
        result = chip.counter_topup(ctx, card_id, cs.TopUpRequest(amount=amount, counter=s.desk),
                                    f"web:{idem}", _runtime(request).counter)
    except DomainError as exc:
        db.rollback()
        return _resident(request, db, s, card.cardholder_id, purpose, status=exc.status,
                         refusal=_refused(exc))
    body = result.body
    booked = ctx.db.get(Transfer, body.get("transfer_id")) if body.get("transfer_id") else None
    at = booked.created_at if booked is not None else ctx.now  # a replay shows the original
    return render(request, "receipt.html", s, card=card, amount=body["amount"],
                  balance=body["balance"], transfer=body.get("transfer_id"),
                  replayed=result.replayed, purpose=purpose, at=at.astimezone(TAIPEI),
                  holder_id=card.cardholder_id)


def _card_step(request: Request, db: Session, s: WebSession, card_id: int, purpose: str,
               step: Any, done: str) -> Response:
    """A lifecycle step on a card, then the resident's page with what happened or why not."""
    ctx = _ctx(request, db, s)
    card = cards_service.get(ctx, card_id)
    holder_id, number = card.cardholder_id, card.card_number
    try:
        step(ctx)
    except DomainError as exc:
        db.rollback()
        return _resident(request, db, s, holder_id, purpose, status=exc.status,
                         refusal=_refused(exc))
    return _resident(request, db, s, holder_id, purpose, notice=(done, number))


@router.post("/cards/{card_id:int}/lost")
def report_lost(request: Request, db: DB, s: Annotated[WebSession, page(*CLERKS)],
                card_id: int, purpose: Annotated[str, Form(min_length=3, max_length=200)],
                csrf: Annotated[str, Form(max_length=64)] = "") -> Response:
    _check_csrf(s, csrf)
    return _card_step(request, db, s, card_id, purpose, lambda ctx: cards_service.simple_transition(
        ctx, card_id, "suspend", "lost: reported at the counter"), "Reported lost: card")


@router.post("/cards/{card_id:int}/reinstate")
def reinstate(request: Request, db: DB, s: Annotated[WebSession, page(*CLERKS)],
              card_id: int, purpose: Annotated[str, Form(min_length=3, max_length=200)],
              csrf: Annotated[str, Form(max_length=64)] = "") -> Response:
    _check_csrf(s, csrf)
    return _card_step(request, db, s, card_id, purpose, lambda ctx: cards_service.simple_transition(
        ctx, card_id, "reinstate", "found by the resident"), "Found again: card")


@router.post("/cards/{card_id:int}/replace")
def replace(request: Request, db: DB, s: Annotated[WebSession, page(*CLERKS)], card_id: int,
            reason: Annotated[str, Form(max_length=16)],
            idem: Annotated[str, Form(min_length=8, max_length=100)],
            purpose: Annotated[str, Form(min_length=3, max_length=200)],
            fee_payment: Annotated[str, Form(max_length=8)] = "cash",
            csrf: Annotated[str, Form(max_length=64)] = "") -> Response:
    """A new card on the reader; the balance carried over is shown. One replacement per
    idempotency key, however often the form is sent."""
    _check_csrf(s, csrf)
    ctx = _ctx(request, db, s)
    card = cards_service.get(ctx, card_id)
    try:
        # A fee waiver is the supervisor's (the service refuses it to anyone else).
        data = cs.ReplaceRequest(reason=reason, counter=s.desk,  # type: ignore[arg-type]
                                 fee_payment=fee_payment)  # type: ignore[arg-type]
        result = chip.counter_replace(ctx, card_id, data, f"web:{idem}",
                                      _runtime(request).counter)
    except (DomainError, ValidationError) as exc:
        db.rollback()
        return _resident(request, db, s, card.cardholder_id, purpose, status=422,
                         refusal=_refused(exc) if isinstance(exc, DomainError)
                         else ("", "Choose a reason.", ""))
    body = result.body
    return _resident(request, db, s, card.cardholder_id, purpose, notice=(
        "Replaced: the new card, with the balance carried over, is",
        f"{body['new_card']['card_number']} (NT${body['balance_moved']:,}; "
        f"fee NT${body['fee']:,})"))


@router.post("/cards/{card_id:int}/close")
def close(request: Request, db: DB, s: Annotated[WebSession, page(*CLERKS)], card_id: int,
          idem: Annotated[str, Form(min_length=8, max_length=100)],
          purpose: Annotated[str, Form(min_length=3, max_length=200)],
          csrf: Annotated[str, Form(max_length=64)] = "") -> Response:
    """Close the card and pay its balance out in cash (once per idempotency key)."""
    _check_csrf(s, csrf)
    ctx = _ctx(request, db, s)
    card = cards_service.get(ctx, card_id)
    try:
        result = idempotent(ctx, f"web:{idem}", "card.close",
                            {"card_id": card_id, "reason": "closed at the counter",
                             "counter": s.desk},
                            lambda: cards_service.close(ctx, card_id, cs.CloseRequest(
                                reason="closed at the counter", counter=s.desk)))
    except DomainError as exc:
        db.rollback()
        return _resident(request, db, s, card.cardholder_id, purpose, status=exc.status,
                         refusal=_refused(exc))
    return _resident(request, db, s, card.cardholder_id, purpose, notice=(
        "Closed: pay out in cash", f"NT${result.body['refund_cash']:,}"))


# --- bills at the counter ----------------------------------------------------------------------


@router.get("/bills")
def bills_page(request: Request, s: Annotated[WebSession, page(*CLERKS)]) -> Response:
    return render(request, "bills.html", s, bill=None, slip={}, error=None, paid=None,
                  idem=secrets.token_urlsafe(18))


@router.post("/bills")
def bill_lookup(request: Request, db: DB, s: Annotated[WebSession, page(*CLERKS)],
                segment1: Annotated[str, Form(max_length=40)] = "",
                segment2: Annotated[str, Form(max_length=40)] = "",
                segment3: Annotated[str, Form(max_length=40)] = "",
                csrf: Annotated[str, Form(max_length=64)] = "") -> Response:
    """The slip's three barcodes, typed or scanned: a wrong one is named."""
    _check_csrf(s, csrf)
    slip = {"segment1": segment1, "segment2": segment2, "segment3": segment3}
    ctx = _ctx(request, db, s)
    try:
        bill = bill_service.by_barcodes(ctx, segment1, segment2, segment3)
    except SlipError as exc:
        return render(request, "bills.html", s, status=422, bill=None, slip=slip,
                      error=("Barcode %(n)s of the slip is wrong.", exc.segment, exc.detail, ""),
                      paid=None, idem=secrets.token_urlsafe(18))
    except DomainError as exc:
        return render(request, "bills.html", s, status=exc.status, bill=None, slip=slip,
                      error=("", 0, exc.detail, exc.title), paid=None,
                      idem=secrets.token_urlsafe(18))
    return render(request, "bills.html", s, bill=bill, slip=slip, error=None, paid=None,
                  idem=secrets.token_urlsafe(18))


@router.post("/bills/{bill_id:int}/pay")
def bill_pay(request: Request, db: DB, s: Annotated[WebSession, page(*CLERKS)], bill_id: int,
             card_number: Annotated[str, Form(max_length=16, pattern=r"^[0-9]{16}$")],
             idem: Annotated[str, Form(min_length=8, max_length=100)],
             csrf: Annotated[str, Form(max_length=64)] = "") -> Response:
    """Paid from the resident's account-held (mobile) purse, once per idempotency key."""
    _check_csrf(s, csrf)
    ctx = _ctx(request, db, s)
    try:
        card = cards_service.by_number(ctx, card_number)
        result = idempotent(
            ctx, f"web:{idem}", "bills.pay", {"bill": bill_id, "card_id": card.id,
                                              "amount": None, "channel": "counter"},
            lambda: bill_api.payment_out(bill_service.pay_from_purse(
                ctx, bill_id, card.id, "counter")))
    except DomainError as exc:
        db.rollback()
        bill = ctx.db.get(Bill, bill_id)
        return render(request, "bills.html", s, status=exc.status, bill=bill, slip={},
                      error=("", 0, exc.detail, exc.title), paid=None,
                      idem=secrets.token_urlsafe(18))
    return render(request, "bills.html", s, bill=None, slip={}, error=None,
                  paid=result.body, idem=secrets.token_urlsafe(18))


# --- supervisors and auditors --------------------------------------------------------------------


@router.post("/cards/{card_id:int}/block")
def block(request: Request, db: DB, s: Annotated[WebSession, page(*SUPERVISORS)],
          card_id: int, reason: Annotated[str, Form(min_length=3, max_length=200)],
          purpose: Annotated[str, Form(min_length=3, max_length=200)],
          csrf: Annotated[str, Form(max_length=64)] = "") -> Response:
    _check_csrf(s, csrf)
    return _card_step(request, db, s, card_id, purpose, lambda ctx: cards_service.simple_transition(
        ctx, card_id, "block", reason), "Blocked: card")


@router.post("/cards/{card_id:int}/unblock")
def unblock(request: Request, db: DB, s: Annotated[WebSession, page(*SUPERVISORS)],
            card_id: int, reason: Annotated[str, Form(min_length=3, max_length=200)],
            purpose: Annotated[str, Form(min_length=3, max_length=200)],
            csrf: Annotated[str, Form(max_length=64)] = "") -> Response:
    _check_csrf(s, csrf)
    return _card_step(request, db, s, card_id, purpose, lambda ctx: cards_service.simple_transition(
        ctx, card_id, "unblock", reason), "Unblocked: card")


def _period(date_from: str | None, date_to: str | None, today: dt.date) -> tuple[dt.date, dt.date]:
    try:
        first = parse_date(date_from) if date_from else today.replace(day=1)
        last = parse_date(date_to) if date_to else today
    except ValueError:
        first, last = today.replace(day=1), today
    return first, last


@router.get("/statistics")
def statistics(request: Request, db: DB, s: Annotated[WebSession, page(*REPORT_READERS)],
               date_from: str | None = None, date_to: str | None = None) -> Response:
    """Cards issued in a period, with a chart and the CSV to download."""
    ctx = _ctx(request, db, s)
    first, last = _period(date_from, date_to, ctx.today)
    try:
        report = stats.issuance(ctx, first, last)
    except DomainError as exc:
        return render(request, "forbidden.html", s, status=exc.status)
    return render(request, "statistics.html", s, report=report, first=first, last=last,
                  chart=Markup(stats.to_svg(report)))  # noqa: S704 - our own SVG, escaped


@router.get("/statistics.csv")
def statistics_csv(request: Request, db: DB, s: Annotated[WebSession, page(*REPORT_READERS)],
                   date_from: str | None = None, date_to: str | None = None) -> Response:
    ctx = _ctx(request, db, s)
    first, last = _period(date_from, date_to, ctx.today)
    report = stats.issuance(ctx, first, last)
    return Response(stats.to_csv(report), media_type="text/csv; charset=utf-8", headers={
        "Content-Disposition": f'attachment; filename="issuance-{first}-{last}.csv"'})


@router.get("/audit")
@router.get("/audit/events")  # the access review's row links (`review_print.event_link`)
def audit_trail(request: Request, db: DB, s: Annotated[WebSession, page(*AUDIT_READERS)],
                action: Annotated[str | None, Query(max_length=64)] = None,
                before_id: Annotated[int | None, Query(ge=1, le=MAX_ID)] = None,
                limit: Annotated[int, Query(ge=1, le=100)] = 100) -> Response:
    """The audit trail, read-only, with the chain's verification."""
    ctx = _ctx(request, db, s)
    rows = audit.read_events(ctx, action=(action or None), before_id=before_id, limit=limit)
    verdict = audit.verify_chain(db)
    return render(request, "audit.html", s, rows=rows, verdict=verdict, action=action or "")


@router.get("/review")
def access_review(request: Request, db: DB, s: Annotated[WebSession, page(*AUDIT_READERS)],
                  date_from: str | None = None, date_to: str | None = None) -> Response:
    """The ethics office's access review of a period, to read and print; each flagged
    line's audit rows open in the trail's page."""
    ctx = _ctx(request, db, s)
    first, last = _period(date_from, date_to, ctx.today)
    try:
        report = review.access_review(ctx, first, last)
    except DomainError as exc:
        db.rollback()
        return render(request, "forbidden.html", s, status=exc.status)
    db.commit()  # producing the review is in the audit trail
    return HTMLResponse(review_print.review_html(report))


@router.post("/residents/{holder_id:int}/access-log")
def access_log(request: Request, db: DB, s: Annotated[WebSession, page(*READERS)],
               holder_id: int, purpose: Annotated[str, Form(min_length=3, max_length=200)],
               csrf: Annotated[str, Form(max_length=64)] = "") -> Response:
    """個資查詢: who saw the resident's data, printed for them at the counter (audited)."""
    _check_csrf(s, csrf)
    ctx = _ctx(request, db, s)
    try:
        log = review.access_log(ctx, holder_id, f"the resident asked who saw their data "
                                                f"({purpose})"[:200])
    except DomainError as exc:
        db.rollback()
        return render(request, "forbidden.html", s, status=exc.status)
    db.commit()
    return HTMLResponse(review_print.access_log_html(log))


# --- proofs of a concession -------------------------------------------------------------------


def _proof(request: Request, db: Session, s: WebSession, holder_id: int, purpose: str,
           build: Any, record: Any, done: str) -> Response:
    """Record a proof (enrolment, certificate, employment): its end date may be written in
    the ROC calendar; a refusal is shown on the resident's page."""
    ctx = _ctx(request, db, s)
    try:
        data = build()
        record(ctx, holder_id, data)
    except ValueError:  # an unreadable date, or a pydantic validation error
        db.rollback()
        return _resident(request, db, s, holder_id, purpose, status=422,
                         refusal=("", UNREADABLE_PROOF, ""))
    except DomainError as exc:
        db.rollback()
        return _resident(request, db, s, holder_id, purpose, status=exc.status,
                         refusal=_refused(exc))
    return _resident(request, db, s, holder_id, purpose, notice=(done, ""))


UNREADABLE_PROOF = ("Check the proof: its last day is written as 2026-12-06 or 115/12/06, at "
                    "most a year ago, and every field is filled in.")


@router.post("/residents/{holder_id:int}/enrolments")
def add_enrolment(request: Request, db: DB, s: Annotated[WebSession, page(*CLERKS)],
                  holder_id: int, school: Annotated[str, Form(max_length=100)],
                  valid_until: Annotated[str, Form(max_length=30)],
                  purpose: Annotated[str, Form(min_length=3, max_length=200)],
                  csrf: Annotated[str, Form(max_length=64)] = "") -> Response:
    _check_csrf(s, csrf)
    return _proof(request, db, s, holder_id, purpose, lambda: hs.EnrolmentCreate(
        school=school.strip(), valid_until=parse_date(valid_until)),
        profiles.record_enrolment, "Enrolment recorded")


@router.post("/residents/{holder_id:int}/certificates")
def add_certificate(request: Request, db: DB, s: Annotated[WebSession, page(*CLERKS)],
                    holder_id: int, certificate_no: Annotated[str, Form(max_length=40)],
                    valid_until: Annotated[str, Form(max_length=30)],
                    purpose: Annotated[str, Form(min_length=3, max_length=200)],
                    csrf: Annotated[str, Form(max_length=64)] = "") -> Response:
    _check_csrf(s, csrf)
    return _proof(request, db, s, holder_id, purpose, lambda: hs.DisabilityCertificateCreate(
        certificate_no=certificate_no.strip(), valid_until=parse_date(valid_until)),
        profiles.record_certificate, "Disability certificate recorded")


@router.post("/residents/{holder_id:int}/employments")
def add_employment(request: Request, db: DB, s: Annotated[WebSession, page(*CLERKS)],
                   holder_id: int, employer: Annotated[str, Form(max_length=100)],
                   employer_kind: Annotated[str, Form(max_length=24)],
                   valid_until: Annotated[str, Form(max_length=30)],
                   purpose: Annotated[str, Form(min_length=3, max_length=200)],
                   csrf: Annotated[str, Form(max_length=64)] = "") -> Response:
    _check_csrf(s, csrf)
    return _proof(request, db, s, holder_id, purpose, lambda: hs.EmploymentCreate(
        employer=employer.strip(), employer_kind=EmployerKind(employer_kind),
        valid_until=parse_date(valid_until)), profiles.record_employment,
        "Employment recorded")


# --- libraries and points at the counter ---------------------------------------------------------


@router.post("/residents/{holder_id:int}/library-links")
def link_library(request: Request, db: DB, s: Annotated[WebSession, page(*CLERKS)],
                 holder_id: int, library_id: Annotated[int, Form(ge=1)],
                 purpose: Annotated[str, Form(min_length=3, max_length=200)],
                 shared: Annotated[list[str] | None, Form()] = None,
                 pin: Annotated[str, Form(max_length=8)] = "",
                 csrf: Annotated[str, Form(max_length=64)] = "") -> Response:
    """The resident's consent to a library: what they agreed to share, a PIN if they want
    one; then the consent receipt to print."""
    _check_csrf(s, csrf)
    ctx = _ctx(request, db, s)
    try:
        data = ls.LinkCreate(library_id=library_id,
                             shared_fields=shared or [],  # type: ignore[arg-type]
                             pin=pin or None)
        created = library.link(ctx, holder_id, data)
    except (DomainError, ValidationError) as exc:
        db.rollback()
        return _resident(request, db, s, holder_id, purpose, status=422,
                         refusal=_refused(exc) if isinstance(exc, DomainError)
                         else ("", "Check the PIN (4-8 digits).", ""))
    return _resident(request, db, s, holder_id, purpose,
                     notice=("Linked: patron", created.patron_id), consent_link=created.id)


@router.get("/library-links/{link_id:int}/consent")
def consent(request: Request, db: DB, s: Annotated[WebSession, page(*READERS)],
            link_id: int) -> Response:
    """The consent receipt, to print for the resident (the API's receipt)."""
    ctx = _ctx(request, db, s)
    try:
        found = library.get_link(ctx, link_id)
    except DomainError as exc:
        return render(request, "forbidden.html", s, status=exc.status)
    lib = library.get_library(ctx, found.library_id)
    return HTMLResponse(library_api.receipt_html(
        lib, found.patron_id, found.consent_text, library_records.shared_fields(found),
        found.consented_at.isoformat(), found.consented_by,
        found.unlinked_at.isoformat() if found.unlinked_at else None))


@router.post("/library-links/{link_id:int}/unlink")
def unlink_library(request: Request, db: DB, s: Annotated[WebSession, page(*CLERKS)],
                   link_id: int, purpose: Annotated[str, Form(min_length=3, max_length=200)],
                   csrf: Annotated[str, Form(max_length=64)] = "") -> Response:
    _check_csrf(s, csrf)
    ctx = _ctx(request, db, s)
    try:
        found = library.unlink(ctx, link_id)
    except DomainError as exc:
        db.rollback()
        return render(request, "forbidden.html", s, status=exc.status)
    return _resident(request, db, s, found.cardholder_id, purpose,
                     notice=("Unlinked: patron", found.patron_id))


@router.post("/residents/{holder_id:int}/redeem")
def redeem(request: Request, db: DB, s: Annotated[WebSession, page(*CLERKS)],
           holder_id: int, item_id: Annotated[int, Form(ge=1)],
           idem: Annotated[str, Form(min_length=8, max_length=100)],
           purpose: Annotated[str, Form(min_length=3, max_length=200)],
           quantity: Annotated[int, Form(ge=1, le=100)] = 1,
           csrf: Annotated[str, Form(max_length=64)] = "") -> Response:
    """Event points for a reward handed over now (once per idempotency key)."""
    _check_csrf(s, csrf)
    ctx = _ctx(request, db, s)
    try:
        result = idempotent(ctx, f"web:{idem}", "points.redeem",
                            {"holder": holder_id, "item_id": item_id, "quantity": quantity},
                            lambda: points_api.redemption(ctx, holder_id, item_id, quantity))
    except DomainError as exc:
        db.rollback()
        return _resident(request, db, s, holder_id, purpose, status=exc.status,
                         refusal=_refused(exc))
    return _resident(request, db, s, holder_id, purpose,
                     notice=("Redeemed: points", f"{result.body['points']:,}"))


# --- e-invoice carrier and bills on the resident's page -----------------------------------------


@router.post("/cards/{card_id:int}/carrier/bind")
def carrier_bind(request: Request, db: DB, s: Annotated[WebSession, page(*CLERKS)],
                 card_id: int, purpose: Annotated[str, Form(min_length=3, max_length=200)],
                 mobile_barcode: Annotated[str, Form(max_length=16)] = "",
                 csrf: Annotated[str, Form(max_length=64)] = "") -> Response:
    """歸戶: the card's carrier aggregates to the resident's mobile barcode."""
    _check_csrf(s, csrf)
    barcode = mobile_barcode.strip().upper()
    return _card_step(request, db, s, card_id, purpose,
                      lambda ctx: einvoice.bind(ctx, card_id, barcode),
                      "Carrier bound to the mobile barcode: card")


@router.post("/cards/{card_id:int}/carrier/unbind")
def carrier_unbind(request: Request, db: DB, s: Annotated[WebSession, page(*CLERKS)],
                   card_id: int, purpose: Annotated[str, Form(min_length=3, max_length=200)],
                   csrf: Annotated[str, Form(max_length=64)] = "") -> Response:
    _check_csrf(s, csrf)
    return _card_step(request, db, s, card_id, purpose,
                      lambda ctx: einvoice.unbind(ctx, card_id),
                      "Carrier no longer bound to the mobile barcode: card")


@router.post("/residents/{holder_id:int}/bills")
def resident_bills(request: Request, db: DB, s: Annotated[WebSession, page(*CLERKS)],
                   holder_id: int, purpose: Annotated[str, Form(min_length=3, max_length=200)],
                   account: Annotated[str, Form(max_length=40)] = "",
                   csrf: Annotated[str, Form(max_length=64)] = "") -> Response:
    """The unpaid bills of an account number the resident gives (from an old slip)."""
    _check_csrf(s, csrf)
    wanted = account.strip().upper()
    if not bill_service.ACCOUNT_NUMBER.fullmatch(wanted):
        return _resident(request, db, s, holder_id, purpose, status=422,
                         refusal=("", "An account number is 4-20 letters, digits or -.", ""))
    return _resident(request, db, s, holder_id, purpose, account=wanted)
