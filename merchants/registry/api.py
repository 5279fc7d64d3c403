from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Path, Query, Response

from cardsvc.deps import CtxDep, allow
from cardsvc.errors import InvalidInput
from cardsvc.schemas_common import MAX_ID, IdPath
from cardsvc.staff.roles import (
    MANAGERS,
    VIEWERS,
)
from merchants.registry import qr, service
from merchants.registry import schemas as s

router = APIRouter(prefix="/merchants", tags=["merchants"])



@router.post("", response_model=s.MerchantOut, status_code=201,
             dependencies=[Depends(allow(*MANAGERS))], summary="Register a merchant")
def create_merchant(body: s.MerchantCreate, ctx: CtxDep) -> s.MerchantOut:
    return service.merchant_out(ctx, service.create_merchant(ctx, body))


@router.get("", response_model=list[s.MerchantOut], dependencies=[Depends(allow(*VIEWERS))])
def list_merchants(ctx: CtxDep) -> list[s.MerchantOut]:
    return [service.merchant_out(ctx, m) for m in service.list_merchants(ctx)]


@router.get("/{merchant_id:int}", response_model=s.MerchantOut,
            dependencies=[Depends(allow(*VIEWERS))])
def get_merchant(merchant_id: IdPath, ctx: CtxDep) -> s.MerchantOut:
    return service.merchant_out(ctx, service.get_merchant(ctx, merchant_id))


@router.patch("/{merchant_id:int}", response_model=s.MerchantOut,
              dependencies=[Depends(allow(*MANAGERS))])
def update_merchant(merchant_id: IdPath, body: s.MerchantUpdate, ctx: CtxDep) -> s.MerchantOut:
    return service.merchant_out(ctx, service.update_merchant(ctx, merchant_id, body))


@router.post("/{merchant_id:int}/terminals", response_model=s.TerminalCredentials, status_code=201,
             dependencies=[Depends(allow(*MANAGERS))],
             summary="Add a terminal; its signing secret is shown in this answer only")
def create_terminal(merchant_id: IdPath, body: s.TerminalCreate,
                    ctx: CtxDep) -> s.TerminalCredentials:
    return service.create_terminal(ctx, merchant_id, body)


@router.get("/{merchant_id:int}/terminals", response_model=list[s.TerminalOut],
            dependencies=[Depends(allow(*VIEWERS))])
def list_terminals(merchant_id: IdPath, ctx: CtxDep) -> list[s.TerminalOut]:
    return [service.terminal_out(t) for t in service.list_terminals(ctx, merchant_id)]


@router.post("/terminals/{terminal_id:int}/rotate", response_model=s.TerminalCredentials,
             dependencies=[Depends(allow(*MANAGERS))],
             summary="New key id and secret; the old ones stop working at once")
def rotate_terminal(terminal_id: IdPath, ctx: CtxDep) -> s.TerminalCredentials:
    return service.rotate_terminal(ctx, terminal_id)


@router.post("/terminals/{terminal_id:int}/revoke", response_model=s.TerminalOut,
             dependencies=[Depends(allow(*MANAGERS))])
def revoke_terminal(terminal_id: IdPath, body: s.RevokeRequest, ctx: CtxDep) -> s.TerminalOut:
    return service.terminal_out(service.revoke_terminal(ctx, terminal_id, body.reason))




@router.get("/{merchant_id:int}/qr.{fmt}", dependencies=[Depends(allow(*VIEWERS))],
            response_class=Response, summary="The shop's static QR code (PNG or SVG)",
            responses={200: {"content": {"image/png": {}, "image/svg+xml": {}}}})
def merchant_qr(merchant_id: IdPath, fmt: Annotated[str, Path(pattern="^(png|svg)$")],
                ctx: CtxDep,
                terminal_id: Annotated[int | None, Query(gt=0, le=MAX_ID)] = None,
                location: Annotated[str, Query(max_length=200)] = "") -> Response:
    service.get_merchant(ctx, merchant_id)
    payload = qr.merchant_qr_payload(merchant_id, terminal_id, location)
    media = "image/svg+xml" if fmt == "svg" else "image/png"
    try:
        image = qr.render_qr(payload, fmt)
    except qr.PayloadTooLong:
        # Each character outside the BMP is 12 once percent-encoded: 200 of them overflow.
        raise InvalidInput("the location is too long for a QR code once encoded; shorten it",
                           field="location") from None
    return Response(image, media_type=media)
