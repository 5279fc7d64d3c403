from __future__ import annotations

from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, Query, Response

from cardsvc.deps import CtxDep, allow
from cardsvc.staff.roles import REPORT_READERS
from settlement.subsidies import schemas as s
from settlement.subsidies import service

router = APIRouter(prefix="/subsidies", tags=["subsidies"])


@router.get("/statements", response_model=s.StatementOut,
            dependencies=[Depends(allow(*REPORT_READERS))],
            responses={200: {"content": {"text/csv": {}, "image/svg+xml": {}}}},
            summary="A month's concession ride subsidies by programme and operator, for the "
                    "funding department to approve (JSON, CSV or a chart)")
def statement(ctx: CtxDep,
              month: Annotated[str, Query(pattern=r"^[0-9]{4}-[0-9]{2}$",
                                          description="YYYY-MM (ride dates, Asia/Taipei)")],
              programme: Annotated[str | None, Query(max_length=32)] = None,
              format: Annotated[Literal["json", "csv", "svg"], Query()] = "json") -> Any:
    st = service.statement(ctx, month, programme)
    if format == "csv":
        return Response(service.to_csv(st), media_type="text/csv; charset=utf-8")
    if format == "svg":
        return Response(service.to_svg(st), media_type="image/svg+xml")
    return st
