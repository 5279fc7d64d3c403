"""The POS API over HTTP: terminals' signed requests (their signature checked before what
they sent), purchases (the card-present one routed ahead of everything, with its PostgreSQL
fast path), QR payments, refunds, voids, status, hotlist, offline batches."""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated, TypeVar

from fastapi import APIRouter, Depends, Header, Query, Request, Response
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ValidationError
from sqlalchemy import text
from sqlalchemy.orm import Session
from starlette.concurrency import run_in_threadpool
from starlette.routing import Route

from cardsvc.context import Actor, Ctx
from cardsvc.db import unit_of_work
from cardsvc.deps import DB, IdempotencyKey, RuntimeDep
from cardsvc.einvoice import schemas as es
from cardsvc.idempotency.api import replayable
from cardsvc.idempotency.service import IDEMPOTENCY_KEY_PATTERN, idempotent, validate_key
from cardsvc.runtime import Runtime
from cardsvc.schemas_common import MAX_ID, IdPath
from merchants.pos import auth, invoices
from merchants.pos import schemas as ps
from merchants.pos import service as pos
from merchants.pos.errors import BadSignature
from merchants.pos.signing import LIMITS, SignedHeaders
from merchants.registry.models import Terminal

if TYPE_CHECKING:
    from merchants.pos.fastpath import FastPurchases

M = TypeVar("M", bound=BaseModel)


pos_router = APIRouter(prefix="/pos/v1", tags=["POS API"])


async def raw_body(request: Request) -> bytes:
    return await request.body()


async def signed_headers(
    key_id: Annotated[str | None, Header(alias="X-Terminal-Key",
                                         max_length=LIMITS["key_id"])] = None,
    timestamp: Annotated[str | None, Header(alias="X-Timestamp",
                                            max_length=LIMITS["timestamp"])] = None,
    nonce: Annotated[str | None, Header(alias="X-Nonce", max_length=LIMITS["nonce"])] = None,
    signature: Annotated[str | None, Header(alias="X-Signature",
                                            max_length=LIMITS["signature"])] = None,
) -> SignedHeaders:
    return SignedHeaders(key_id, timestamp, nonce, signature)


def authenticate(rt: Runtime, db: Session, method: str, path: str, body: bytes,
                 signed: SignedHeaders) -> Ctx:
    """Check a terminal's signed request; the context of its work, acting as the terminal."""
    ctx = rt.ctx(db, Actor(None, "pos", "terminal"))
    terminal = auth.authenticate_request(ctx, signed.key_id, signed.timestamp, signed.nonce,
                                            signed.signature, method, path, body)
    # The nonce is spent whatever happens next: commit it before the work starts. That
    # commit need not wait for the disk (a crash could forget a nonce of the last moment,
    # whose timestamp window then still has to be open for a replay).
    if db.get_bind().dialect.name == "postgresql":
        db.execute(text("SET LOCAL synchronous_commit TO OFF"))
    db.commit()
    ctx.actor = Actor(None, f"terminal:{terminal.id}", "terminal")
    ctx.db.info["terminal_id"] = terminal.id
    return ctx


def _signed_path(request: Request) -> str:
    return request.url.path + (f"?{request.url.query}" if request.url.query else "")


class TerminalAuth:
    """A POS route's declaration that it is called by a terminal with a signed request (the
    role-matrix test checks every /pos route carries it or `SignedRequest`)."""

    def __call__(self, request: Request, rt: RuntimeDep, db: DB,
                 body: Annotated[bytes, Depends(raw_body)],
                 signed: Annotated[SignedHeaders, Depends(signed_headers)]) -> Ctx:
        return authenticate(rt, db, request.method, _signed_path(request), body, signed)


class SignedRequest:
    """The async form of `TerminalAuth` for routes that verify the signature themselves (the
    card-present purchase): refuses an unsigned request at once, hands on the headers (read
    directly: the route documents them in `SIGNING_HEADERS`)."""

    async def __call__(self, request: Request) -> SignedHeaders:
        h = request.headers
        signed = SignedHeaders(h.get("x-terminal-key"), h.get("x-timestamp"), h.get("x-nonce"),
                               h.get("x-signature"))
        if not signed.complete:
            raise BadSignature(auth.UNSIGNED)
        too_long = signed.oversized
        if too_long is not None:
            raise BadSignature(f"the {too_long} header is longer than any valid value")
        return signed


SIGNING_HEADERS = [
    {"name": name, "in": "header", "required": True,
     "schema": {"type": "string", "maxLength": LIMITS[limit]}, "description": text_}
    for name, limit, text_ in (
        ("X-Terminal-Key", "key_id", "the terminal's key id"),
        ("X-Timestamp", "timestamp", "Unix seconds when the request was made"),
        ("X-Nonce", "nonce", "16-64 characters, never reused by the terminal"),
        ("X-Signature", "signature", "hex HMAC-SHA256 of the canonical request"))
] + [{"name": "Idempotency-Key", "in": "header", "required": True,
      "schema": {"type": "string", "pattern": IDEMPOTENCY_KEY_PATTERN},
      "description": "8-100 letters, digits, _ . : -; a retry sends the same key and body and "
                     "gets the same answer"}]


def _body(model: type[M], raw: bytes) -> M:
    """A request body checked as FastAPI checks one (same errors, same problem codes)."""
    try:
        return model.model_validate_json(raw)
    except ValidationError as exc:
        raise RequestValidationError([{**e, "loc": ("body", *e["loc"])}
                                      for e in exc.errors()]) from None


TERMINAL = TerminalAuth()


PosCtx = Annotated[Ctx, Depends(TERMINAL)]


SIGNED = SignedRequest()




@pos_router.post("/ping", response_model=ps.PingOut,
                 summary="Check credentials, signature and clock")
def ping(ctx: PosCtx) -> ps.PingOut:
    terminal = ctx.db.get(Terminal, ctx.db.info["terminal_id"])
    assert terminal is not None  # noqa: S101 - authenticated just above
    return ps.PingOut(terminal_id=terminal.id, merchant_id=terminal.merchant_id,
                   server_time=ctx.now)


def terminal_of(ctx: Ctx) -> Terminal:
    t = ctx.db.get(Terminal, ctx.db.info["terminal_id"])
    assert t is not None  # noqa: S101 - authenticated by TerminalAuth
    return t


def pos_idempotency_key(ctx: Ctx, key: str | None) -> str:
    # Keys are per terminal: two terminals may use the same key without meeting.
    return f"t{ctx.db.info['terminal_id']}:{validate_key(key)}"


@pos_router.post("/purchases", response_model=ps.TransactionOut,
                 responses={404: {"description": "unknown_card"},
                            409: {"description": "card_hotlisted, card_expired, "
                                                 "replayed_certificate, balance_mismatch"},
                            422: {"description": "bad_certificate, amount_over_limit"}},
                 summary="Card-present purchase: submit the card's transaction certificate",
                 openapi_extra={"parameters": SIGNING_HEADERS, "requestBody": {
                     "required": True, "content": {"application/json": {
                         "schema": ps.CardPurchase.model_json_schema()}}}})
async def pos_purchase(request: Request,
                       signed: Annotated[SignedHeaders, Depends(SIGNED)]) -> Response:
    return await purchase_answer(request, signed)


async def purchase_endpoint(request: Request) -> Response:
    """`pos_purchase` as a plain Starlette endpoint. The app routes purchases here, ahead of
    FastAPI's routing and parameter machinery, which cost more than the rest of the request;
    the FastAPI route documents it in the OpenAPI schema (and answers where this is not
    mounted)."""
    return await purchase_answer(request, await SIGNED(request))


async def purchase_answer(request: Request, signed: SignedHeaders) -> Response:
    # Body and headers are read here, not declared as parameters, for the same reason.
    raw, path = await request.body(), _signed_path(request)
    rt: Runtime = request.app.state.runtime
    try:
        body = _body(ps.CardPurchase, raw)
    except RequestValidationError:
        # As on every POS route, who is asking is checked before what they sent: a stranger
        # learns nothing about the schema, and a terminal's nonce is spent either way.
        await run_in_threadpool(_authenticated, rt, request.method, path, raw, signed)
        raise
    idempotency_key = request.headers.get("idempotency-key")
    fast: FastPurchases | None = getattr(request.app.state, "fast_purchases", None)
    if fast is not None:
        # PostgreSQL: an accepted purchase is one database call, without a thread.
        answer = await fast.purchase(request.method, path, raw, signed, body, idempotency_key)
        if answer is not None:
            return Response(answer, media_type="application/json")
    return await run_in_threadpool(_purchase, rt, request.method, path, raw, signed, body,
                                   idempotency_key)


# The busiest POS route, routed before all others (see `purchase_endpoint`).
FAST_ROUTES = [Route("/pos/v1/purchases", purchase_endpoint, methods=["POST"])]


def _authenticated(rt: Runtime, method: str, path: str, raw: bytes,
                   signed: SignedHeaders) -> None:
    with unit_of_work(rt.sessions) as db:
        authenticate(rt, db, method, path, raw, signed)


def _purchase(rt: Runtime, method: str, path: str, raw: bytes, signed: SignedHeaders,
              body: ps.CardPurchase, idempotency_key: str | None) -> JSONResponse:
    """Every purchase the fast path leaves (refusals, retries, SQLite) is decided here."""
    with unit_of_work(rt.sessions) as db:
        ctx = authenticate(rt, db, method, path, raw, signed)
        terminal = terminal_of(ctx)
        return replayable(idempotent(
            ctx, pos_idempotency_key(ctx, idempotency_key), pos.PURCHASE_OPERATION,
            body.model_dump(),
            lambda: pos.purchase(ctx, terminal, body, idempotency_key or "")))


@pos_router.post("/refunds", response_model=ps.TransactionOut,
                 summary="Refund all or part of a purchase (never more than is left)")
def pos_refund(body: ps.RefundRequest, ctx: PosCtx,
               idempotency_key: IdempotencyKey) -> JSONResponse:
    terminal = terminal_of(ctx)
    return replayable(idempotent(
        ctx, pos_idempotency_key(ctx, idempotency_key), "pos.refund", body.model_dump(),
        lambda: pos.refund(ctx, terminal, body, idempotency_key or "")))


@pos_router.post("/voids", response_model=ps.TransactionOut,
                 summary="Void the terminal's last purchase of the day")
def pos_void(body: ps.VoidRequest, ctx: PosCtx,
             idempotency_key: IdempotencyKey) -> JSONResponse:
    terminal = terminal_of(ctx)
    return replayable(idempotent(
        ctx, pos_idempotency_key(ctx, idempotency_key), "pos.void", body.model_dump(),
        lambda: pos.void(ctx, terminal, body)))


@pos_router.post("/invoices", response_model=es.InvoiceOut,
                 responses={404: {"description": "invoice_unknown_purchase"},
                            409: {"description": "invoice_number_used"},
                            422: {"description": "invoice_seller_mismatch, "
                                                 "invoice_amount_mismatch, "
                                                 "invoice_period_mismatch, invoice_invalid"}},
                 summary="Report the e-invoice issued for a purchase onto the card's carrier")
def pos_invoice(body: es.InvoiceReport, ctx: PosCtx,
                idempotency_key: IdempotencyKey) -> JSONResponse:
    terminal = terminal_of(ctx)
    return replayable(idempotent(
        ctx, pos_idempotency_key(ctx, idempotency_key), "pos.invoice", body.model_dump(),
        lambda: invoices.report(ctx, terminal, body)))


@pos_router.post("/invoices/void", response_model=es.InvoiceOut,
                 responses={404: {"description": "`not_found`: this merchant issued no such "
                                                 "invoice in that period"}},
                 summary="Void (作廢) an invoice this merchant issued")
def pos_invoice_void(body: es.InvoiceVoid, ctx: PosCtx,
                     idempotency_key: IdempotencyKey) -> JSONResponse:
    terminal = terminal_of(ctx)
    return replayable(idempotent(
        ctx, pos_idempotency_key(ctx, idempotency_key), "pos.invoice_void", body.model_dump(),
        lambda: invoices.void(ctx, terminal, body)))


@pos_router.post("/invoices/allowances", response_model=es.InvoiceOut,
                 responses={404: {"description": "`not_found`: this merchant issued no such "
                                                 "invoice in that period"},
                            409: {"description": "invoice_voided"},
                            422: {"description": "invoice_amount_mismatch"}},
                 summary="An allowance (折讓) on an invoice this merchant issued")
def pos_invoice_allowance(body: es.AllowanceRequest, ctx: PosCtx,
                          idempotency_key: IdempotencyKey) -> JSONResponse:
    terminal = terminal_of(ctx)
    return replayable(idempotent(
        ctx, pos_idempotency_key(ctx, idempotency_key), "pos.invoice_allowance",
        body.model_dump(), lambda: invoices.allowance(ctx, terminal, body)))


@pos_router.get("/transactions/{transaction_id:int}", response_model=ps.TransactionOut,
                summary="Status of one of this merchant's transactions")
def pos_status(transaction_id: IdPath, ctx: PosCtx) -> ps.TransactionOut:
    return pos.status(ctx, terminal_of(ctx), transaction_id)


@pos_router.get("/hotlist", response_model=ps.HotlistOut,
                summary="Blocked cards as deltas since the version the terminal holds")
def pos_hotlist(ctx: PosCtx, since: Annotated[int, Query(ge=0, le=MAX_ID)] = 0) -> ps.HotlistOut:
    return pos.hotlist(ctx, since)


@pos_router.post("/qr-purchases", response_model=ps.TransactionOut,
                 summary="QR purchase: the phone's payment token, debited online",
                 responses={409: {"description": "qr_token_expired, qr_token_spent, "
                                                 "insufficient_funds, card_hotlisted"},
                            422: {"description": "qr_token_invalid, amount_over_limit"}})
def pos_qr_purchase(body: ps.QrPurchase, ctx: PosCtx,
                    idempotency_key: IdempotencyKey) -> JSONResponse:
    terminal = terminal_of(ctx)
    return replayable(idempotent(
        ctx, pos_idempotency_key(ctx, idempotency_key), "pos.qr_purchase", body.model_dump(),
        lambda: pos.qr_purchase(ctx, terminal, body, idempotency_key or "")))


@pos_router.post("/batches", response_model=ps.BatchOut,
                 summary="Upload an offline terminal's records (stored once, cleared later)")
def pos_batch(body: ps.OfflineBatch, ctx: PosCtx) -> ps.BatchOut:
    return pos.upload_batch(ctx, terminal_of(ctx), body)
