from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Query

from cardsvc.deps import CtxDep, allow
from cardsvc.schemas_common import IsoDate
from cardsvc.staff.roles import REPORT_READERS
from cardsvc.stats import service

router = APIRouter(prefix="/stats", tags=["statistics"])


@router.get("/issuance", response_model=service.IssuanceReport,
            dependencies=[Depends(allow(*REPORT_READERS))],
            summary="Cards issued by product, status and township between two business days")
def issuance(ctx: CtxDep,
             date_from: Annotated[IsoDate, Query(alias="from")],
             date_to: Annotated[IsoDate, Query(alias="to")]) -> service.IssuanceReport:
    return service.issuance(ctx, date_from, date_to)
