"""Points routes: a resident's points at the counter, the reward catalogue, redemptions."""

from __future__ import annotations

from fastapi import APIRouter, Depends
from fastapi.responses import JSONResponse

from cardsvc.audit import service as audit
from cardsvc.context import Ctx
from cardsvc.deps import CtxDep, IdempotencyKey, allow
from cardsvc.idempotency.api import replayable
from cardsvc.idempotency.service import idempotent
from cardsvc.points import schemas as s
from cardsvc.points import service
from cardsvc.schemas_common import IdPath
from cardsvc.staff.roles import CATALOGUE_KEEPERS, CLERKS, READERS, VIEWERS

router = APIRouter(tags=["points"])


@router.get("/cardholders/{holder_id:int}/points", response_model=s.PointsOut,
            dependencies=[Depends(allow(*READERS))],
            summary="A resident's points: balance, what expires next, the latest entries")
def points_of(holder_id: IdPath, ctx: CtxDep) -> s.PointsOut:
    expiring, on = service.expiring(ctx, holder_id)
    audit.record(ctx, "points.read", target_type="cardholder", target_id=holder_id)
    return s.PointsOut(cardholder_id=holder_id, balance=service.balance(ctx, holder_id),
                       expiring_points=expiring, expiring_on=on,
                       entries=[s.EntryOut.model_validate(e)
                                for e in service.statement(ctx, holder_id)])


@router.post("/cardholders/{holder_id:int}/points/redemptions", response_model=s.RedemptionOut,
             dependencies=[Depends(allow(*CLERKS))],
             responses={409: {"description": "points_insufficient, reward_out_of_stock, "
                                             "reward_inactive, idempotency_conflict"}},
             summary="Redeem points for a reward handed over at the counter")
def redeem(holder_id: IdPath, body: s.RedemptionRequest, ctx: CtxDep,
           idempotency_key: IdempotencyKey) -> JSONResponse:
    return replayable(idempotent(
        ctx, idempotency_key, "points.redeem", {"holder": holder_id, **body.model_dump()},
        lambda: redemption(ctx, holder_id, body.item_id, body.quantity)))


def redemption(ctx: Ctx, holder_id: int, item_id: int, quantity: int) -> s.RedemptionOut:
    """A redemption as the API and the counter's page answer it."""
    r = service.redeem(ctx, holder_id, item_id, quantity)
    return s.RedemptionOut(redemption_id=r.id, item_id=r.item_id, quantity=r.quantity,
                           points=r.points, balance=service.balance(ctx, holder_id))


@router.get("/rewards", response_model=list[s.RewardOut],
            dependencies=[Depends(allow(*VIEWERS))], summary="The reward catalogue")
def rewards(ctx: CtxDep) -> list[s.RewardOut]:
    return [s.RewardOut.model_validate(i) for i in service.list_items(ctx)]


@router.post("/rewards", response_model=s.RewardOut, status_code=201,
             dependencies=[Depends(allow(*CATALOGUE_KEEPERS))])
def add_reward(body: s.RewardCreate, ctx: CtxDep) -> s.RewardOut:
    return s.RewardOut.model_validate(service.add_item(ctx, body.name, body.points, body.stock))


@router.patch("/rewards/{item_id:int}", response_model=s.RewardOut,
              dependencies=[Depends(allow(*CATALOGUE_KEEPERS))],
              summary="Restock (or write off) a reward, change its price, withdraw it")
def update_reward(item_id: IdPath, body: s.RewardUpdate, ctx: CtxDep) -> s.RewardOut:
    return s.RewardOut.model_validate(service.update_item(
        ctx, item_id, add_stock=body.add_stock, active=body.active, points=body.points))
