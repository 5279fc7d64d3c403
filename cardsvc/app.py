"""Composition root: assembles the HTTP API from the domain routers."""

from __future__ import annotations

import logging
import time
from collections.abc import Awaitable, Callable

from fastapi import FastAPI, Request, Response

from cardsvc import __version__, api_errors
from cardsvc.audit.api import router as audit_router
from cardsvc.cards.api import router as cards_router
from cardsvc.holders.api import router as holders_router
from cardsvc.runtime import Runtime
from cardsvc.staff.api import router as staff_router
from cardsvc.stats.api import router as stats_router
from merchants.api import pos_router
from merchants.api import router as merchants_router
from settlement.bills_api import pos_bills_router, public_router
from settlement.bills_api import router as bills_router

DESCRIPTION = """
The issuing-counter API of the resident card system.

* Log in at `POST /auth/login` and send `Authorization: Bearer <token>`.
* Every request that moves money needs an `Idempotency-Key` header.
* Errors are RFC 9457 problem details (`application/problem+json`) with a stable `code`.
* Reading a cardholder record needs a `purpose`; it is written to the audit trail.
"""

ROUTERS = (staff_router, holders_router, cards_router, stats_router, audit_router,
           merchants_router, bills_router, public_router)
# Called by terminals with signed requests, not by staff (merchants.api.TerminalAuth).
POS_ROUTERS = (pos_router, pos_bills_router)

log = logging.getLogger("cardsvc.access")

# Routes that need no login. The role-matrix test checks every other route has a RoleGuard.
PUBLIC_PATHS = frozenset({"/auth/login", "/health", "/openapi.json", "/docs",
                          "/docs/oauth2-redirect", "/redoc",
                          # anyone may check a bill receipt; a resident pays a bill with
                          # the phone-signed token of the mobile card
                          "/receipts/verify", "/bills/{bill_id}/pay-online"})


def create_app(runtime: Runtime) -> FastAPI:
    app = FastAPI(title="Resident card system: counter API", version=__version__,
                  description=DESCRIPTION)
    app.state.runtime = runtime
    api_errors.install(app)

    @app.middleware("http")
    async def refuse_nul(request: Request, call_next: Callable[[Request],
                                                               Awaitable[Response]]) -> Response:
        raw = request.scope.get("raw_path", b"") + b"?" + request.scope.get("query_string", b"")
        if b"%00" in raw or b"\x00" in raw:
            return api_errors.problem(400, "invalid_input", "Invalid input",
                                      "the URL must not contain NUL characters")
        return await call_next(request)

    @app.middleware("http")
    async def access_log(request: Request, call_next: Callable[[Request],
                                                               Awaitable[Response]]) -> Response:
        # Method, path and status only: query strings and bodies may hold personal data.
        started = time.perf_counter()
        response = await call_next(request)
        log.info("%s %s %s %.1fms", request.method, request.url.path, response.status_code,
                 (time.perf_counter() - started) * 1000)
        return response

    @app.get("/health", tags=["system"], summary="Liveness")
    def health() -> dict[str, str]:
        return {"status": "ok", "version": __version__}

    for router in (*ROUTERS, *POS_ROUTERS):
        app.include_router(router)
    return app
