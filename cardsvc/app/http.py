"""Composition root: assembles the HTTP API from the domain routers."""

from __future__ import annotations

import gc
import importlib.resources
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from fastapi import FastAPI
from fastapi.openapi.docs import (
    get_redoc_html,
    get_swagger_ui_html,
    get_swagger_ui_oauth2_redirect_html,
)
from fastapi.responses import HTMLResponse
from fastapi.staticfiles import StaticFiles

from cardsvc import __version__
from cardsvc.app import openapi, web
from cardsvc.app import problems as api_errors
from cardsvc.app.guard import Guard
from cardsvc.audit.api import router as audit_router
from cardsvc.audit.service import Sealer
from cardsvc.cards.api import router as cards_router
from cardsvc.deps import Public, RoleGuard
from cardsvc.einvoice.api import router as einvoice_router
from cardsvc.errors import DomainError
from cardsvc.events.api import public_router as events_public_router
from cardsvc.events.api import router as events_router
from cardsvc.holders.api import router as holders_router
from cardsvc.library.api import library_router
from cardsvc.library.api import router as library_admin_router
from cardsvc.points.api import router as points_router
from cardsvc.runtime import Runtime
from cardsvc.staff.api import router as staff_router
from cardsvc.stats.api import router as stats_router
from merchants.pos.api import FAST_ROUTES, SignedRequest, TerminalAuth, pos_router
from merchants.pos.signing import HEADERS as SIGNING_HEADER_NAMES
from merchants.registry.api import router as merchants_router
from merchants.transit.api import pos_router as pos_transit_router
from merchants.transit.api import router as transit_router
from settlement.bills.api import UPLOAD_PATHS, pos_bills_router, public_router
from settlement.bills.api import router as bills_router
from settlement.subsidies.api import router as subsidies_router

DESCRIPTION = """
The issuing-counter API of the resident card system.

* Log in at `POST /auth/login` and send `Authorization: Bearer <token>`.
* Every request that moves money needs an `Idempotency-Key` header.
* Errors are RFC 9457 problem details (`application/problem+json`) with a stable `code`.
* Reading a cardholder record needs a `purpose`; it is written to the audit trail.
"""

ROUTERS = (staff_router, holders_router, cards_router, stats_router, audit_router,
           library_admin_router, library_router, einvoice_router, events_router,
           points_router, merchants_router, transit_router, bills_router, subsidies_router,
           public_router, events_public_router)
# Called by terminals with signed requests, not by staff (merchants.pos.api.TerminalAuth).
POS_ROUTERS = (pos_router, pos_bills_router, pos_transit_router)



DOCS_ASSETS = "/docs/assets"


def _api_docs(app: FastAPI) -> None:
    """/docs and /redoc with their scripts, styles and icon served from the installed package,
    not from a public CDN (a data centre without internet showed a blank page)."""
    assets = importlib.resources.files("fastapi_offline") / "static"
    app.mount(DOCS_ASSETS, StaticFiles(directory=str(assets)), name="docs-assets")
    title = app.title
    favicon = f"{DOCS_ASSETS}/favicon.png"

    @app.get("/docs", include_in_schema=False)
    def swagger_ui() -> HTMLResponse:
        return get_swagger_ui_html(
            openapi_url="/openapi.json", title=f"{title}: API docs",
            swagger_js_url=f"{DOCS_ASSETS}/swagger-ui-bundle.js",
            swagger_css_url=f"{DOCS_ASSETS}/swagger-ui.css", swagger_favicon_url=favicon,
            oauth2_redirect_url="/docs/oauth2-redirect",
            # The online validator badge would call out to the internet on every load.
            swagger_ui_parameters={"validatorUrl": None})

    @app.get("/docs/oauth2-redirect", include_in_schema=False)
    def swagger_ui_redirect() -> HTMLResponse:
        return get_swagger_ui_oauth2_redirect_html()

    @app.get("/redoc", include_in_schema=False)
    def redoc() -> HTMLResponse:
        return get_redoc_html(openapi_url="/openapi.json", title=f"{title}: API reference",
                              redoc_js_url=f"{DOCS_ASSETS}/redoc.standalone.js",
                              redoc_favicon_url=favicon, with_google_fonts=False)


def create_app(runtime: Runtime, *, serving: bool = False) -> FastAPI:
    """The API on this runtime. `serving`: this process exists to serve it (uvicorn's worker),
    which lets startup tune the process (tests and tools that build apps leave it off)."""
    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        postgres = runtime.engine.dialect.name == "postgresql"
        # Rows the POS purchase path left unchained are sealed within a second or so.
        sealer = Sealer(runtime.sessions) if postgres else None
        if sealer is not None:
            sealer.start()
        fast = None
        if postgres and runtime.settings.pos_fast_path:
            # Imported here: it needs psycopg, which only a PostgreSQL deployment installs.
            from merchants.pos.fastpath import FastPurchases
            fast = FastPurchases(runtime.settings, runtime.keys)
        app.state.fast_purchases = fast
        if serving:
            # What was built to start (modules, the app, its schemas) lives as long as the
            # process: keep it out of the collector's full passes, which would otherwise stop
            # every request in flight for a tenth of a second now and then.
            gc.collect()
            gc.freeze()
        try:
            yield
        finally:
            app.state.fast_purchases = None
            if fast is not None:
                await fast.close()
            if sealer is not None:
                sealer.stop()

    app = FastAPI(title="Resident card system: counter API", version=__version__,
                  description=DESCRIPTION, lifespan=lifespan, docs_url=None, redoc_url=None)
    app.state.runtime = runtime
    _api_docs(app)
    api_errors.install(app)

    def staff_token_ok(token: str) -> bool:
        try:
            runtime.keys.tokens.verify(token)
        except DomainError:
            return False
        return True

    settings = runtime.settings
    app.add_middleware(Guard, max_body_bytes=settings.max_body_bytes,
                       max_upload_bytes=settings.max_upload_bytes,
                       max_header_bytes=settings.max_header_bytes,
                       upload_paths=UPLOAD_PATHS, staff_token_ok=staff_token_ok)

    @app.get("/health", tags=["system"], summary="Liveness")
    def health() -> dict[str, str]:
        return {"status": "ok", "version": __version__}

    # Routes are matched in order: the terminals' (the most requests by far) first, the
    # card-present purchase ahead of all (merchants.pos.api.purchase_endpoint).
    for router in (*POS_ROUTERS, *ROUTERS):
        app.include_router(router)
    web.install(app)
    app.router.routes[0:0] = FAST_ROUTES

    def contract() -> dict[str, Any]:
        if app.openapi_schema is None:
            app.openapi_schema = openapi.build(
                app, is_staff=lambda call: isinstance(call, RoleGuard),
                is_terminal=lambda call: isinstance(call, TerminalAuth | SignedRequest),
                is_public=lambda call: isinstance(call, Public),
                terminal_headers=SIGNING_HEADER_NAMES)
        return app.openapi_schema

    app.openapi = contract  # type: ignore[method-assign]
    return app
