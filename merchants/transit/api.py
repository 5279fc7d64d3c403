"""Transit over HTTP: staff publish signed fare tables; terminals fetch them and the pending
profile updates, and report rides (signed, idempotent, like purchases)."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Query
from fastapi.responses import JSONResponse

from cardsvc.deps import CtxDep, IdempotencyKey, allow
from cardsvc.idempotency.api import replayable
from cardsvc.idempotency.service import idempotent
from cardsvc.schemas_common import MAX_ID, IdPath
from cardsvc.security import signing
from cardsvc.staff.roles import FARE_KEEPERS, VIEWERS
from merchants.pos.api import PosCtx, pos_idempotency_key, terminal_of
from merchants.transit import schemas as s
from merchants.transit import service

router = APIRouter(prefix="/transit", tags=["transit"])
pos_router = APIRouter(prefix="/pos/v1", tags=["POS API"])


@router.post("/operators/{merchant_id:int}/fare-tables", response_model=s.FareTableOut,
             status_code=201, dependencies=[Depends(allow(*FARE_KEEPERS))],
             responses={409: {"description": "not_transit_operator"},
                        422: {"description": "invalid_fare_table"}},
             summary="Publish a new version of a transit operator's fare table (signed)")
def publish_table(merchant_id: IdPath, body: s.FareTableCreate, ctx: CtxDep) -> s.FareTableOut:
    return service.table_out(service.publish(ctx, merchant_id, body))


@router.get("/operators/{merchant_id:int}/fare-tables", response_model=list[s.FareTableOut],
            dependencies=[Depends(allow(*VIEWERS))],
            responses={409: {"description": "not_transit_operator"}},
            summary="An operator's fare table versions, newest first")
def list_tables(merchant_id: IdPath, ctx: CtxDep) -> list[s.FareTableOut]:
    return [service.table_out(r) for r in service.tables(ctx, merchant_id)]


@router.get("/public-keys", response_model=s.PublicKeysOut,
            dependencies=[Depends(allow(*VIEWERS))],
            summary="The public keys terminals verify fare tables with")
def public_keys(ctx: CtxDep) -> s.PublicKeysOut:
    return s.PublicKeysOut(keys=signing.public_keys(ctx.keys.secrets))


@pos_router.get("/fare-table", response_model=s.SignedFareTable,
                responses={404: {"description": "no_fare_table"},
                           409: {"description": "not_transit_operator"}},
                summary="The operator's current fare table, signed by the backend")
def pos_fare_table(ctx: PosCtx) -> s.SignedFareTable:
    terminal = terminal_of(ctx)
    service.operator(ctx, terminal.merchant_id)
    return service.signed(service.table_row(ctx, terminal.merchant_id))


@pos_router.get("/profile-updates", response_model=s.ProfileUpdatesOut,
                responses={409: {"description": "not_transit_operator"}},
                summary="Concession profile updates waiting for their card's next tap "
                        "(transit validators only)")
def pos_profile_updates(ctx: PosCtx,
                        since: Annotated[int, Query(ge=0, le=MAX_ID)] = 0) -> s.ProfileUpdatesOut:
    return service.profile_updates(ctx, terminal_of(ctx), since)


@pos_router.post("/rides", response_model=s.RideOut,
                 responses={404: {"description": "unknown_card"},
                            409: {"description": "card_hotlisted, card_expired, "
                                                 "replayed_certificate, balance_mismatch, "
                                                 "not_transit_operator"},
                            422: {"description": "bad_certificate, ride_fare_mismatch"}},
                 summary="A ride: the card's ride record with its certificate")
def pos_ride(body: s.RideReport, ctx: PosCtx, idempotency_key: IdempotencyKey) -> JSONResponse:
    terminal = terminal_of(ctx)
    return replayable(idempotent(
        ctx, pos_idempotency_key(ctx, idempotency_key), service.RIDE_OPERATION,
        body.model_dump(), lambda: service.ride(ctx, terminal, body, idempotency_key or "")))
