"""Clearing windows: business days in Asia/Taipei, their cut-off, and the close.

Closing a window fixes its content: every POS record received before the window's boundary
that no earlier window holds becomes one `clearing_entries` row, in one INSERT ... SELECT.
Online records are decided then (they were checked when they arrived); offline records are
provisionally `paid` until their window's clearing has verified them.
"""

from __future__ import annotations

import datetime as dt

from sqlalchemy import bindparam, func, select, text

from cardsvc.audit import service as audit
from cardsvc.context import TAIPEI, Ctx
from cardsvc.db import AdvisoryLock, UTCDateTime, advisory_xact_lock
from cardsvc.db_upsert import insert_if_absent
from cardsvc.errors import InvalidInput, NotFound
from merchants.pos.models import PosKind, PosStatus
from settlement.clearing.errors import WindowOrder
from settlement.clearing.models import (
    ClearingEntry,
    ClearingPartition,
    ClearingWindow,
    Outcome,
    WindowStatus,
)

EARLIEST = dt.date(2017, 1, 1)


def cutoff_of(ctx: Ctx, day: dt.date) -> dt.datetime:
    """The window's cut-off in UTC: the configured time of day in Asia/Taipei."""
    return dt.datetime.combine(day, ctx.settings.clearing_cutoff, TAIPEI).astimezone(dt.UTC)


def business_day_due(ctx: Ctx) -> dt.date:
    """The latest business day whose cut-off has passed."""
    today = ctx.today
    return today if cutoff_of(ctx, today) <= ctx.now else today - dt.timedelta(days=1)


def check_date(ctx: Ctx, day: dt.date) -> None:
    if day < EARLIEST or day > ctx.today:
        raise InvalidInput(f"no clearing window for {day}: give a business day from "
                           f"{EARLIEST} to today ({ctx.today})", field="date")


def get(ctx: Ctx, day: dt.date, *, for_update: bool = False) -> ClearingWindow:
    stmt = select(ClearingWindow).where(ClearingWindow.business_date == day)
    if for_update:
        stmt = stmt.with_for_update().execution_options(populate_existing=True)
    window = ctx.db.scalar(stmt)
    if window is None:
        raise NotFound(f"no clearing window for {day}")
    return window


def ensure(ctx: Ctx, day: dt.date) -> ClearingWindow:
    """The window of `day`, opened if it did not exist (race-free)."""
    check_date(ctx, day)
    insert_if_absent(ctx.db, ClearingWindow,
                     {"business_date": day, "status": WindowStatus.OPEN,
                      "cutoff_at": cutoff_of(ctx, day), "records": 0},
                     [ClearingWindow.business_date], ClearingWindow.id)
    return get(ctx, day, for_update=True)


def close(ctx: Ctx, day: dt.date) -> ClearingWindow:
    """Close the window of `day` (idempotent): after this its records never change."""
    window = ensure(ctx, day)
    if window.status != WindowStatus.OPEN:
        return window
    earlier_open = ctx.db.scalar(select(func.min(ClearingWindow.business_date)).where(
        ClearingWindow.business_date < day, ClearingWindow.status == WindowStatus.OPEN))
    if earlier_open is not None:
        raise WindowOrder(f"close the window of {earlier_open} first: windows close in "
                          "date order")
    later_closed = ctx.db.scalar(select(func.max(ClearingWindow.business_date)).where(
        ClearingWindow.business_date > day, ClearingWindow.status != WindowStatus.OPEN))
    if later_closed is not None:
        raise WindowOrder(f"the window of {later_closed} is already closed: the records "
                          f"of {day} went there")
    boundary = min(window.cutoff_at, ctx.now)
    # No void may change a record's status while the close copies it (ClearingWindows.holds).
    advisory_xact_lock(ctx.db, AdvisoryLock.CLEARING_CLOSE)
    if ctx.db.get_bind().dialect.name == "postgresql":
        # clearing_entries grows by a day's records in the statement below: planned from the
        # statistics of the table before it, a nested-loop anti-join would rescan it per row.
        ctx.db.execute(text("SET LOCAL enable_nestloop = off"))
    result = ctx.db.execute(text(f"""
        INSERT INTO clearing_entries
            (transaction_id, window_id, merchant_id, kind, card_id, card_counter, amount,
             balance_after, terminal_id, terminal_seq, card_time, certificate, outcome, reason)
        SELECT p.id, :window_id, p.merchant_id, p.kind, p.card_id, p.card_counter, p.amount,
               p.balance_after, p.terminal_id, p.terminal_seq, p.card_time, p.certificate,
               CASE WHEN p.kind = '{PosKind.OFFLINE_PURCHASE}' THEN '{Outcome.PAID}'
                    WHEN p.status = '{PosStatus.ACCEPTED}' THEN '{Outcome.PAID}'
                    WHEN p.status = '{PosStatus.VOIDED}' THEN '{Outcome.VOIDED}'
                    ELSE '{Outcome.REFUSED}' END,
               CASE WHEN p.status = '{PosStatus.REJECTED}' THEN p.reason END
        FROM pos_transactions p
        WHERE p.created_at < :boundary
          AND NOT EXISTS (SELECT 1 FROM clearing_entries e WHERE e.transaction_id = p.id)
    """).bindparams(bindparam("boundary", type_=UTCDateTime)),
        {"window_id": window.id, "boundary": boundary})
    # Bill payments (every channel) paid before the boundary: this window remits them.
    ctx.db.execute(text("UPDATE bill_payments SET window_id = :window_id "
                        "WHERE window_id IS NULL AND paid_at < :boundary").bindparams(
        bindparam("boundary", type_=UTCDateTime)), {"window_id": window.id, "boundary": boundary})
    ctx.db.execute(text("""
        INSERT INTO clearing_partitions (window_id, merchant_id, status, records, refused)
        SELECT :window_id, merchant_id, 'pending', COUNT(*), 0
        FROM clearing_entries WHERE window_id = :window_id GROUP BY merchant_id
    """), {"window_id": window.id})
    if ctx.db.get_bind().dialect.name == "postgresql":
        # A day's worth of new rows: fresh statistics, or the planner joins them as if the
        # table were empty.
        ctx.db.execute(text("ANALYZE clearing_entries"))
    window.status = WindowStatus.CLOSED
    window.boundary_at = boundary
    window.closed_at = ctx.now
    del result
    window.records = int(ctx.db.scalar(text(
        "SELECT COUNT(*) FROM clearing_entries WHERE window_id = :w"), {"w": window.id}) or 0)
    audit.record(ctx, "clearing.close", target_type="clearing_window", target_id=day,
                 detail={"records": window.records, "boundary": boundary.isoformat()})
    ctx.db.flush()
    return window


def partitions(ctx: Ctx, window: ClearingWindow) -> list[ClearingPartition]:
    return list(ctx.db.scalars(select(ClearingPartition).where(
        ClearingPartition.window_id == window.id).order_by(ClearingPartition.merchant_id)))


class ClearingWindows:
    """Clearing's answer to the POS domain (`merchants.pos.interfaces.ClearingState`)."""

    def holds(self, ctx: Ctx, transaction_id: int) -> bool:
        # The shared lock waits for a window's close in progress (which takes it exclusively).
        advisory_xact_lock(ctx.db, AdvisoryLock.CLEARING_CLOSE, shared=True)
        return ctx.db.scalar(select(ClearingEntry.transaction_id).where(
            ClearingEntry.transaction_id == transaction_id)) is not None
