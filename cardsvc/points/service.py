"""The points ledger: awards, redemptions at the counter, expiry.

A resident's balance row is changed only by a conditional UPDATE in the same transaction as
the entry that explains it, so the entries always sum to the balance, and two counters
redeeming at once cannot take it (or a reward's stock) below zero: the second UPDATE finds
the condition false and the redemption is refused whole."""

from __future__ import annotations

import datetime as dt

from sqlalchemy import and_, case, func, select, update

from cardsvc.audit import service as audit
from cardsvc.context import Ctx
from cardsvc.db_upsert import insert_if_absent
from cardsvc.errors import InvalidInput, NotFound
from cardsvc.holders import service as holders
from cardsvc.points import rules
from cardsvc.points.errors import InsufficientPoints, OutOfStock, RewardInactive
from cardsvc.points.models import (
    EntryKind,
    PointsAccount,
    PointsEntry,
    Redemption,
    RewardItem,
)


def _account(ctx: Ctx, cardholder_id: int) -> None:
    insert_if_absent(ctx.db, PointsAccount, {"cardholder_id": cardholder_id, "balance": 0},
                     [PointsAccount.cardholder_id], PointsAccount.cardholder_id)


def _move(ctx: Ctx, cardholder_id: int, points: int) -> bool:
    """Add `points` (negative to take) unless the balance would go below zero."""
    result = ctx.db.execute(
        update(PointsAccount)
        .where(PointsAccount.cardholder_id == cardholder_id,
               PointsAccount.balance + points >= 0)
        .values(balance=PointsAccount.balance + points)
        .execution_options(synchronize_session=False))
    return bool(getattr(result, "rowcount", 0))


def award(ctx: Ctx, cardholder_id: int, points: int, reference: str, note: str) -> int:
    """Award points once per reference; how many were awarded now (0 if already)."""
    if points <= 0:
        return 0
    entry_id = insert_if_absent(ctx.db, PointsEntry, {
        "cardholder_id": cardholder_id, "kind": EntryKind.AWARD, "points": points,
        "expires_on": rules.expires_on(ctx.today, ctx.settings.points_expire_after_years),
        "reference": reference, "note": note, "created_at": ctx.now,
        "created_by": ctx.actor.username}, [PointsEntry.reference], PointsEntry.id)
    if entry_id is None:
        return 0
    _account(ctx, cardholder_id)
    _move(ctx, cardholder_id, points)
    audit.record(ctx, "points.award", target_type="cardholder", target_id=cardholder_id,
                 detail={"points": points, "reference": reference})
    return points


def balance(ctx: Ctx, cardholder_id: int) -> int:
    found = ctx.db.get(PointsAccount, cardholder_id, populate_existing=True)
    return found.balance if found is not None else 0


def statement(ctx: Ctx, cardholder_id: int, limit: int = 100) -> list[PointsEntry]:
    return list(ctx.db.scalars(select(PointsEntry)
                               .where(PointsEntry.cardholder_id == cardholder_id)
                               .order_by(PointsEntry.id.desc()).limit(limit)))


def expiring(ctx: Ctx, cardholder_id: int) -> tuple[int, dt.date | None]:
    """The points that will expire next unless used, and on which day."""
    consumed = -int(ctx.db.scalar(select(func.coalesce(func.sum(PointsEntry.points), 0))
                                  .where(PointsEntry.cardholder_id == cardholder_id,
                                         PointsEntry.kind != EntryKind.AWARD)) or 0)
    awards = ctx.db.execute(select(PointsEntry.expires_on, func.sum(PointsEntry.points))
                            .where(PointsEntry.cardholder_id == cardholder_id,
                                   PointsEntry.kind == EntryKind.AWARD)
                            .group_by(PointsEntry.expires_on)
                            .order_by(PointsEntry.expires_on)).all()
    total = 0
    for day, points in awards:
        total += int(points)
        left = rules.unused_of_expired(total, consumed)
        if left > 0 and day is not None and day >= ctx.today:
            return left, day
    return 0, None


def expire_due(ctx: Ctx) -> tuple[int, int]:
    """Expire every resident's points whose awards ended before today; (residents, points).
    Safe to run again the same day (the entry's reference is the resident and the day)."""
    today = ctx.today
    expired_awards = func.sum(case((and_(PointsEntry.kind == EntryKind.AWARD,
                                         PointsEntry.expires_on < today), PointsEntry.points),
                                   else_=0))
    consumed = -func.sum(case((PointsEntry.kind != EntryKind.AWARD, PointsEntry.points),
                              else_=0))
    # Only the residents with something to expire: one pass over the entries, not a query
    # for everyone whose awards ever ended.
    due_rows = ctx.db.execute(
        select(PointsEntry.cardholder_id, expired_awards, consumed)
        .group_by(PointsEntry.cardholder_id)
        .having(expired_awards > consumed)
        .order_by(PointsEntry.cardholder_id)).all()
    residents = expired = 0
    for holder_id, ended, used in due_rows:
        due = rules.unused_of_expired(int(ended), int(used))
        entry_id = insert_if_absent(ctx.db, PointsEntry, {
            "cardholder_id": holder_id, "kind": EntryKind.EXPIRE, "points": -due,
            "reference": f"expiry:{holder_id}:{today.isoformat()}",
            "note": f"unused points of awards ended before {today}",
            "created_at": ctx.now, "created_by": ctx.actor.username},
            [PointsEntry.reference], PointsEntry.id)
        if entry_id is None:
            continue  # expired today already (a run racing this one)
        if not _move(ctx, holder_id, -due):
            raise RuntimeError(f"points of resident {holder_id}: the balance is below what "
                               "the entries leave unused")
        audit.record(ctx, "points.expire", target_type="cardholder", target_id=holder_id,
                     detail={"points": due})
        residents, expired = residents + 1, expired + due
    ctx.db.flush()
    return residents, expired


# --- the reward catalogue ------------------------------------------------------------------


def add_item(ctx: Ctx, name: str, points: int, stock: int) -> RewardItem:
    item = RewardItem(name=name.strip(), points=points, stock=stock, active=True,
                      created_at=ctx.now)
    ctx.db.add(item)
    ctx.db.flush()
    audit.record(ctx, "points.reward_add", target_type="reward", target_id=item.id,
                 detail={"name": item.name, "points": points, "stock": stock})
    return item


def get_item(ctx: Ctx, item_id: int) -> RewardItem:
    item = ctx.db.get(RewardItem, item_id, populate_existing=True)
    if item is None:
        raise NotFound(f"no reward {item_id}")
    return item


def update_item(ctx: Ctx, item_id: int, *, add_stock: int | None = None,
                active: bool | None = None, points: int | None = None) -> RewardItem:
    item = get_item(ctx, item_id)
    changes: dict[str, object] = {}
    if add_stock:
        moved = ctx.db.execute(update(RewardItem).where(RewardItem.id == item_id,
                                                        RewardItem.stock + add_stock >= 0)
                               .values(stock=RewardItem.stock + add_stock)
                               .execution_options(synchronize_session=False))
        if not getattr(moved, "rowcount", 0):
            raise OutOfStock(f"{item.name}: cannot write off more than the stock")
        changes["add_stock"] = add_stock
    if active is not None:
        item.active, changes["active"] = active, active
    if points is not None:
        item.points, changes["points"] = points, points
    ctx.db.flush()
    ctx.db.refresh(item)
    audit.record(ctx, "points.reward_update", target_type="reward", target_id=item_id,
                 detail=changes)
    return item


def list_items(ctx: Ctx, active_only: bool = False) -> list[RewardItem]:
    q = select(RewardItem).order_by(RewardItem.id)
    if active_only:
        q = q.where(RewardItem.active.is_(True))
    return list(ctx.db.scalars(q))


def redeem(ctx: Ctx, cardholder_id: int, item_id: int, quantity: int) -> Redemption:
    """Take the points and the stock for a reward handed over at the counter, or neither."""
    if not 1 <= quantity <= 100:
        raise InvalidInput("quantity is 1 to 100", field="quantity")
    holders.get(ctx, cardholder_id)
    item = get_item(ctx, item_id)
    if not item.active:
        raise RewardInactive(f"{item.name} is no longer offered")
    cost = item.points * quantity
    taken = ctx.db.execute(update(RewardItem)
                           .where(RewardItem.id == item_id, RewardItem.stock >= quantity)
                           .values(stock=RewardItem.stock - quantity)
                           .execution_options(synchronize_session=False))
    if not getattr(taken, "rowcount", 0):
        raise OutOfStock(f"{item.name}: fewer than {quantity} left")
    _account(ctx, cardholder_id)
    if not _move(ctx, cardholder_id, -cost):
        raise InsufficientPoints(f"{item.name} × {quantity} needs {cost} points; the resident "
                                 f"has {balance(ctx, cardholder_id)}")
    redemption = Redemption(cardholder_id=cardholder_id, item_id=item_id, quantity=quantity,
                            points=cost, created_at=ctx.now, created_by=ctx.actor.username)
    ctx.db.add(redemption)
    ctx.db.flush()
    ctx.db.add(PointsEntry(cardholder_id=cardholder_id, kind=EntryKind.REDEEM, points=-cost,
                           reference=f"redemption:{redemption.id}",
                           note=f"{item.name} × {quantity}", created_at=ctx.now,
                           created_by=ctx.actor.username))
    ctx.db.flush()
    audit.record(ctx, "points.redeem", target_type="cardholder", target_id=cardholder_id,
                 detail={"reward": item_id, "quantity": quantity, "points": cost})
    return redemption
