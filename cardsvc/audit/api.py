from __future__ import annotations

from typing import Annotated, Literal

from fastapi import APIRouter, Depends, Query
from fastapi.responses import HTMLResponse, Response

from cardsvc.audit import review, review_print, service
from cardsvc.audit.models import AuditEvent
from cardsvc.audit.schemas import AccessLog, AccessReview, AuditEventOut, VerifyOut
from cardsvc.deps import CtxDep, allow
from cardsvc.schemas_common import MAX_ID, IdPath, IsoDate, Purpose
from cardsvc.staff.roles import (
    AUDIT_READERS,
    READERS,
)

router = APIRouter(prefix="/audit", tags=["audit"])


@router.get("/events", response_model=list[AuditEventOut],
            dependencies=[Depends(allow(*AUDIT_READERS))],
            summary="Read the audit trail (newest first); reading it is itself audited")
def events(ctx: CtxDep,
           action: Annotated[str | None, Query(max_length=64)] = None,
           actor: Annotated[str | None, Query(max_length=64)] = None,
           target_type: Annotated[str | None, Query(max_length=32)] = None,
           target_id: Annotated[str | None, Query(max_length=64)] = None,
           before_id: Annotated[int | None, Query(gt=0, le=MAX_ID)] = None,
           limit: Annotated[int, Query(ge=1, le=500)] = 100) -> list[AuditEvent]:
    return service.read_events(ctx, action=action, actor=actor, target_type=target_type,
                               target_id=target_id, before_id=before_id, limit=limit)


@router.get("/verify", response_model=VerifyOut,
            dependencies=[Depends(allow(*AUDIT_READERS))],
            summary="Check the hash chain; names the first broken row")
def verify(ctx: CtxDep) -> VerifyOut:
    service.seal_pending(ctx.db)
    r = service.verify_chain(ctx.db)
    return VerifyOut(ok=r.ok, rows_checked=r.rows_checked, first_bad_id=r.first_bad_id,
                     problem=r.problem)


@router.get("/review", response_model=AccessReview,
            dependencies=[Depends(allow(*AUDIT_READERS))],
            responses={200: {"content": {"text/csv": {}, "text/html": {}}},
                       422: {"description": "`review_period_reversed`, "
                                            "`review_period_too_long`, `invalid_input`"}},
            summary="The ethics office's access review of a period (business days, "
                    "Asia/Taipei): reads of personal data and flagged lines; audited")
def access_review(ctx: CtxDep,
                  date_from: Annotated[IsoDate, Query(alias="from")],
                  date_to: Annotated[IsoDate, Query(alias="to")],
                  format: Annotated[Literal["json", "csv", "html"], Query()] = "json",
                  ) -> AccessReview | Response:
    report = review.access_review(ctx, date_from, date_to)
    if format == "csv":
        return Response(review_print.review_csv(report), media_type="text/csv; charset=utf-8",
                        headers={"Content-Disposition": 'attachment; filename="access-review-'
                                 f'{date_from}-{date_to}.csv"'})
    if format == "html":
        return HTMLResponse(review_print.review_html(report))
    return report


@router.get("/cardholders/{holder_id:int}/access-log", response_model=AccessLog,
            dependencies=[Depends(allow(*READERS))],
            responses={200: {"content": {"text/html": {}}},
                       404: {"description": "`not_found`: no such resident"}},
            summary="個資查詢: who read the resident's data, found them in a search, or received "
                    "it (libraries, terminals); audited with its purpose")
def access_log(holder_id: IdPath, ctx: CtxDep,
               purpose: Annotated[Purpose, Query(description="Why the log is produced "
                                                 "(audited)")],
               format: Annotated[Literal["json", "html"], Query()] = "json",
               ) -> AccessLog | Response:
    log = review.access_log(ctx, holder_id, purpose)
    if format == "html":
        return HTMLResponse(review_print.access_log_html(log))
    return log
