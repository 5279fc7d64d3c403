"""E-invoice routes: 歸戶 at the counter, a resident's invoices and winnings, paper invoice
checks, and the periods' draws, checks and reports. (Terminals report invoices on the POS
API: `merchants.pos`.)"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Body, Depends, Path, Query, Response

from cardsvc.audit import service as audit
from cardsvc.context import Actor, Ctx
from cardsvc.deps import DB, PUBLIC, CtxDep, RuntimeDep, allow
from cardsvc.einvoice import schemas as s
from cardsvc.einvoice import service
from cardsvc.einvoice.models import Draw
from cardsvc.schemas_common import IdPath
from cardsvc.staff.roles import CLERKS, READERS, REPORT_READERS, Role

router = APIRouter(tags=["e-invoice"])
# Draws are imported and periods checked by a supervisor or an administrator.
DRAW_KEEPERS = (Role.SUPERVISOR, Role.ADMIN)
PeriodPath = Annotated[int, Path(ge=10002, le=99912,
                                 description="yyyMM: ROC year and the period's even month")]


def public_ctx(rt: RuntimeDep, db: DB) -> Ctx:
    return rt.ctx(db, Actor.system("resident-app"))


PLATFORM_DOWN = {"description": "`einvoice_platform_unavailable`: the MOF platform did not "
                                "answer; nothing changed, ask again later"}
BAD_PERIOD: dict[int | str, dict[str, Any]] = {
    422: {"description": "`draw_invalid`: not a period (yyyMM, even month)"}}


@router.post("/cards/{card_id:int}/carrier/binding", response_model=s.BindingOut,
             dependencies=[Depends(allow(*CLERKS))],
             responses={409: {"description": "`carrier_already_bound`"},
                        422: {"description": "`mobile_barcode_invalid`, "
                                             "`mobile_barcode_refused` (by the MOF platform)"},
                        503: PLATFORM_DOWN},
             summary="歸戶: bind the card's carrier to the resident's mobile barcode")
def bind(card_id: IdPath, body: s.BindingRequest, ctx: CtxDep) -> s.BindingOut:
    return service.binding_out(ctx, service.bind(ctx, card_id, body.mobile_barcode))


@router.post("/cards/{card_id:int}/carrier/unbind", response_model=s.BindingOut,
             dependencies=[Depends(allow(*CLERKS))],
             summary="Undo 歸戶: the carrier no longer aggregates to the mobile barcode")
def unbind(card_id: IdPath, ctx: CtxDep) -> s.BindingOut:
    return service.binding_out(ctx, service.unbind(ctx, card_id))


@router.post("/einvoice/v1/binding", response_model=s.BindingOut,
             dependencies=[Depends(PUBLIC)],
             responses={401: {"description": "`binding_bad_signature`"},
                        409: {"description": "`carrier_already_bound`"},
                        422: {"description": "`mobile_barcode_invalid`, "
                                             "`mobile_barcode_refused` (by the MOF platform)"},
                        503: PLATFORM_DOWN},
             summary="歸戶 from the resident's phone (no login: the mobile card's own key "
                     "signs the request)")
def bind_from_phone(body: s.SignedBinding,
                    ctx: Annotated[Ctx, Depends(public_ctx)]) -> s.BindingOut:
    return service.binding_out(ctx, service.bind_signed(ctx, body))


@router.post("/einvoice/v1/invoices", response_model=s.ResidentInvoices,
             dependencies=[Depends(PUBLIC)],
             responses={401: {"description": "`binding_bad_signature`"}},
             summary="The resident's app: its own invoices and winnings (no login: the mobile "
                     "card's own key signs the request)")
def my_invoices(body: s.SignedRead, ctx: Annotated[Ctx, Depends(public_ctx)]
                ) -> s.ResidentInvoices:
    return service.resident_signed(ctx, body)


@router.get("/cardholders/{holder_id:int}/invoices", response_model=s.ResidentInvoices,
            dependencies=[Depends(allow(*READERS))],
            summary="A resident's invoices on all their cards, and what they won")
def resident_invoices(holder_id: IdPath, ctx: CtxDep,
                      period: Annotated[int | None, Query(ge=10002, le=99912)] = None
                      ) -> s.ResidentInvoices:
    found = service.resident(ctx, holder_id, period)
    audit.record(ctx, "einvoice.invoices_read", target_type="cardholder", target_id=holder_id,
                 detail={"period": period})
    return found


@router.post("/einvoice/prize-check", response_model=list[s.PaperResult],
             dependencies=[Depends(allow(*READERS))],
             responses={422: {"description": "`invoice_invalid`"}},
             summary="Check paper invoices: numbers with their period, or a proof's QR text")
def paper_check(body: s.PaperCheck, ctx: CtxDep) -> list[s.PaperResult]:
    return service.paper_check(ctx, body)


@router.post("/einvoice/draws", status_code=201, dependencies=[Depends(allow(*DRAW_KEEPERS))],
             responses={422: {"description": "`draw_invalid`"}},
             summary="Import a period's draw (the MOF's QryWinningList JSON); a re-import "
                     "replaces it and checks the period again")
def import_draw(ctx: CtxDep, body: Annotated[dict[str, Any], Body(
        description="The QryWinningList answer as the MOF publishes it: invoYm, "
        "superPrizeNo, spcPrizeNo, firstPrizeNo1-10, sixthPrizeNo1-6 and the amounts")]
                ) -> dict[str, int]:
    draw: Draw = service.import_draw(ctx, body)
    return {"period": draw.period}


@router.post("/einvoice/periods/{period}/cloud-prizes",
             dependencies=[Depends(allow(*DRAW_KEEPERS))], responses=BAD_PERIOD,
             summary="Import a period's cloud-invoice prize list (CSV or JSON)")
def import_cloud(period: PeriodPath, ctx: CtxDep,
                 content: Annotated[bytes, Body(media_type="text/csv", min_length=1)]
                 ) -> dict[str, int]:
    return {"period": period, "prizes": service.import_cloud(ctx, period, content)}


@router.post("/einvoice/periods/{period}/check", response_model=s.CheckOut,
             dependencies=[Depends(allow(*DRAW_KEEPERS))],
             responses={**BAD_PERIOD, 404: {"description": "`draw_missing`"}},
             summary="Check every carrier invoice of the period against its draw")
def run_check(period: PeriodPath, ctx: CtxDep) -> s.CheckOut:
    return service.run_check(ctx, period)


@router.get("/einvoice/periods/{period}/report", response_model=s.PeriodReport,
            dependencies=[Depends(allow(*REPORT_READERS))],
            responses={200: {"content": {"text/csv": {}}}},
            summary="A period's check: winners and amounts by tier, exclusions by reason")
def period_report(period: PeriodPath, ctx: CtxDep,
                  fmt: Annotated[str, Query(alias="format", pattern="^(json|csv)$")] = "json"
                  ) -> Any:
    out = service.report(ctx, period)
    if fmt == "csv":
        return Response(service.report_csv(out), media_type="text/csv; charset=utf-8")
    return out
