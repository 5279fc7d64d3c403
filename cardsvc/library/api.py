"""Library routes: the registry (admins), links at the counter (clerks), and what a library's
own systems read with the library's feed key (`/library/v1/...`, HTTP Basic)."""

from __future__ import annotations

import html
from typing import Annotated, Any

from fastapi import APIRouter, Body, Depends, Query, Response
from fastapi.responses import HTMLResponse
from fastapi.security import HTTPBasic, HTTPBasicCredentials

from cardsvc.audit import service as audit
from cardsvc.context import Actor, Ctx
from cardsvc.deps import DB, PUBLIC, CtxDep, RuntimeDep, allow
from cardsvc.library import records, service
from cardsvc.library import schemas as s
from cardsvc.library.models import Library
from cardsvc.schemas_common import IdPath
from cardsvc.staff.roles import ADMINS, CLERKS, READERS, VIEWERS

router = APIRouter(tags=["libraries"])
library_router = APIRouter(prefix="/library/v1", tags=["library systems"])

_basic = HTTPBasic(auto_error=False, description="The library's feed key id and key")
LIBRARY_AUTH: dict[int | str, dict[str, Any]] = {
    401: {"description": "`library_auth_required`: no or wrong feed key"},
    409: {"description": "`library_inactive`"}}


# --- registry (admins) ---------------------------------------------------------------------


@router.post("/libraries", response_model=s.LibraryCredentials, status_code=201,
             dependencies=[Depends(allow(*ADMINS))],
             responses={409: {"description": "`library_exists`"}},
             summary="Register a library; its feed key (and webhook secret) are shown in this "
                     "answer only")
def create_library(body: s.LibraryCreate, ctx: CtxDep) -> s.LibraryCredentials:
    return service.create_library(ctx, body)


@router.get("/libraries", response_model=list[s.LibraryOut],
            dependencies=[Depends(allow(*VIEWERS))], summary="Libraries and their feeds")
def list_libraries(ctx: CtxDep) -> list[s.LibraryOut]:
    return [service.library_out(ctx, lib) for lib in service.list_libraries(ctx)]


@router.get("/libraries/{library_id:int}", response_model=s.LibraryOut,
            dependencies=[Depends(allow(*VIEWERS))])
def get_library(library_id: IdPath, ctx: CtxDep) -> s.LibraryOut:
    return service.library_out(ctx, service.get_library(ctx, library_id))


@router.patch("/libraries/{library_id:int}", response_model=s.LibraryCredentials,
              dependencies=[Depends(allow(*ADMINS))],
              summary="Change a library; a first webhook URL's secret is shown in this answer")
def update_library(library_id: IdPath, body: s.LibraryUpdate,
                   ctx: CtxDep) -> s.LibraryCredentials:
    return service.update_library(ctx, library_id, body)


@router.post("/libraries/{library_id:int}/rotate-credentials",
             response_model=s.LibraryCredentials, dependencies=[Depends(allow(*ADMINS))],
             summary="New feed key and webhook secret; the old ones stop working at once")
def rotate_credentials(library_id: IdPath, ctx: CtxDep) -> s.LibraryCredentials:
    return service.rotate_credentials(ctx, library_id)


@router.post("/libraries/{library_id:int}/resume", response_model=s.LibraryOut,
             dependencies=[Depends(allow(*ADMINS))],
             summary="Resume a parked webhook feed where it stopped")
def resume(library_id: IdPath, ctx: CtxDep) -> s.LibraryOut:
    return service.resume_feed(ctx, library_id)


@router.post("/libraries/{library_id:int}/sip-logins", response_model=s.SipLoginCredentials,
             status_code=201, dependencies=[Depends(allow(*ADMINS))],
             summary="A SIP2 login for a library's kiosk or proxy; the password is shown once")
def add_sip_login(library_id: IdPath, body: s.SipLoginCreate,
                  ctx: CtxDep) -> s.SipLoginCredentials:
    return service.add_sip_login(ctx, library_id, body)


@router.get("/libraries/{library_id:int}/sip-logins", response_model=list[s.SipLoginOut],
            dependencies=[Depends(allow(*ADMINS))])
def list_sip_logins(library_id: IdPath, ctx: CtxDep) -> list[s.SipLoginOut]:
    return [service.sip_login_out(x) for x in service.list_sip_logins(ctx, library_id)]


@router.post("/libraries/sip-logins/{login_id:int}/deactivate", response_model=s.SipLoginOut,
             dependencies=[Depends(allow(*ADMINS))],
             summary="Switch a SIP2 login off (its open connections get no more answers)")
def deactivate_sip_login(login_id: IdPath, ctx: CtxDep) -> s.SipLoginOut:
    return service.sip_login_out(service.deactivate_sip_login(ctx, login_id))


# --- links at the counter ------------------------------------------------------------------


@router.post("/cardholders/{holder_id:int}/library-links", response_model=s.LinkOut,
             status_code=201, dependencies=[Depends(allow(*CLERKS))],
             responses={409: {"description": "`library_already_linked`, `library_no_card`, "
                                             "`library_inactive`"},
                        422: {"description": "`library_field_not_offered`"}},
             summary="Link a library: the resident's consent, and a patron id of its own")
def link(holder_id: IdPath, body: s.LinkCreate, ctx: CtxDep) -> s.LinkOut:
    return service.link_out(ctx, service.link(ctx, holder_id, body))


@router.get("/cardholders/{holder_id:int}/library-links", response_model=list[s.LinkOut],
            dependencies=[Depends(allow(*READERS))],
            summary="A resident's library links, standing and withdrawn")
def links(holder_id: IdPath, ctx: CtxDep) -> list[s.LinkOut]:
    found = [service.link_out(ctx, x) for x in service.links_of(ctx, holder_id)]
    audit.record(ctx, "library.links_read", target_type="cardholder", target_id=holder_id)
    return found


@router.post("/library-links/{link_id:int}/unlink", response_model=s.LinkOut,
             dependencies=[Depends(allow(*CLERKS))],
             summary="Withdraw the consent: the library is told the patron is gone")
def unlink(link_id: IdPath, ctx: CtxDep) -> s.LinkOut:
    return service.link_out(ctx, service.unlink(ctx, link_id))


@router.get("/library-links/{link_id:int}/consent", response_class=HTMLResponse,
            dependencies=[Depends(allow(*READERS))],
            responses={200: {"content": {"text/html": {}}}},
            summary="The consent receipt, to print for the resident")
def consent_receipt(link_id: IdPath, ctx: CtxDep) -> HTMLResponse:
    found = service.get_link(ctx, link_id)
    library = service.get_library(ctx, found.library_id)
    audit.record(ctx, "library.consent_read", target_type="cardholder",
                 target_id=found.cardholder_id, detail={"link_id": link_id})
    return HTMLResponse(receipt_html(library, found.patron_id, found.consent_text,
                                     records.shared_fields(found), found.consented_at.isoformat(),
                                     found.consented_by,
                                     found.unlinked_at.isoformat() if found.unlinked_at else None))


def receipt_html(library: Library, patron_id: str, text: str, shared: list[str], at: str,
                 by: str, unlinked: str | None) -> str:
    e = html.escape
    withdrawn = (f"<p><strong>已取消 Withdrawn:</strong> {e(unlinked)}</p>" if unlinked else "")
    paragraphs = "".join(f"<p>{e(line)}</p>" for line in text.splitlines())
    return f"""<!doctype html>
<html lang="zh-Hant"><head><meta charset="utf-8">
<title>借閱證同意書 Library consent — {e(library.name)}</title>
<style>body{{font-family:sans-serif;max-width:40em;margin:2em auto}}
dt{{font-weight:bold}}@media print{{body{{margin:0}}}}</style></head>
<body><h1>借閱證同意書 Library consent</h1>
<dl><dt>圖書館 Library</dt><dd>{e(library.name)} ({e(library.code)})</dd>
<dt>讀者代號 Patron id</dt><dd>{e(patron_id)}</dd>
<dt>另提供 Also shared</dt><dd>{e(", ".join(shared) or "—")}</dd>
<dt>同意時間 Agreed</dt><dd>{e(at)}</dd><dt>承辦 Taken by</dt><dd>{e(by)}</dd></dl>
{paragraphs}{withdrawn}
<p>簽名 Signature: ______________________</p></body></html>
"""


# --- what a library's own systems read -----------------------------------------------------


def library_ctx(rt: RuntimeDep, db: DB,
                creds: Annotated[HTTPBasicCredentials | None, Depends(_basic)]) -> Ctx:
    ctx = rt.ctx(db, Actor.system("library"))
    library = service.authenticate(ctx, creds.username if creds else None,
                                   creds.password if creds else None)
    out = rt.ctx(db, Actor(None, f"library:{library.code}", "library"))
    out.db.info["cardsvc.library"] = library
    return out


LibraryCtx = Annotated[Ctx, Depends(library_ctx)]
MAX_SEQ = 2**31 - 1  # a feed's sequence numbers are 32-bit integers


def _library(ctx: Ctx) -> Library:
    library: Library = ctx.db.info["cardsvc.library"]
    return library


@library_router.get("/feed", response_model=s.FeedPage, dependencies=[Depends(PUBLIC)],
                    responses=LIBRARY_AUTH,
                    summary="This library's patron changes after a sequence number, in order "
                            "(a replay gives the same events)")
def pull_feed(ctx: LibraryCtx,
              after: Annotated[int, Query(ge=0, le=MAX_SEQ)] = 0,
              limit: Annotated[int, Query(ge=1, le=service.FEED_PAGE)] = service.FEED_PAGE
              ) -> s.FeedPage:
    return service.feed_page(ctx, _library(ctx), after, limit)


@library_router.get("/patrons.csv", dependencies=[Depends(PUBLIC)], response_class=Response,
                    responses={**LIBRARY_AUTH, 200: {"content": {"text/csv": {}}}},
                    summary="Every current patron as a Koha patron-import CSV (match on the "
                            "KMPATRON attribute)")
def patrons_csv(ctx: LibraryCtx) -> Response:
    library = _library(ctx)
    return Response(service.koha_csv(service.export_records(ctx, library)),
                    media_type="text/csv; charset=utf-8",
                    headers={"Content-Disposition":
                             f'attachment; filename="patrons-{library.code}.csv"'})


@library_router.get("/patrons.json", response_model=list[dict[str, object]],
                    dependencies=[Depends(PUBLIC)], responses=LIBRARY_AUTH,
                    summary="Every current patron record, as the feed gives them")
def patrons_json(ctx: LibraryCtx) -> list[dict[str, object]]:
    return service.export_records(ctx, _library(ctx))


@library_router.post("/reconcile", response_model=s.DiffReport, dependencies=[Depends(PUBLIC)],
                     responses=LIBRARY_AUTH,
                     summary="Send the library's own patron export (Koha CSV); get back what "
                             "differs from what it should hold")
def reconcile(ctx: LibraryCtx,
              content: Annotated[bytes, Body(media_type="text/csv", min_length=1)]
              ) -> s.DiffReport:
    return service.diff(ctx, _library(ctx), content)
