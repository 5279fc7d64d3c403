from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Query

from cardsvc.audit import service
from cardsvc.audit.models import AuditEvent
from cardsvc.audit.schemas import AuditEventOut, VerifyOut
from cardsvc.deps import CtxDep, allow
from cardsvc.schemas_common import MAX_ID
from cardsvc.staff.roles import (
    AUDIT_READERS,
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


@router.get("/verify", response_model=VerifyOut, dependencies=[Depends(allow(*AUDIT_READERS))],
            summary="Check the hash chain; names the first broken row")
def verify(ctx: CtxDep) -> VerifyOut:
    service.seal_pending(ctx.db)
    r = service.verify_chain(ctx.db)
    return VerifyOut(ok=r.ok, rows_checked=r.rows_checked, first_bad_id=r.first_bad_id,
                     problem=r.problem)
