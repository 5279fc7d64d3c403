"""Participation statistics for the county: check-ins per event, department, month,
township and age band, with small cells suppressed (fewer than `rules.SMALL_CELL` residents
shows "<5" for both counts, so no resident can be picked out of a small number)."""

from __future__ import annotations

import datetime as dt
from collections import defaultdict
from collections.abc import Callable
from typing import Any

from sqlalchemy import select

from cardsvc import charts
from cardsvc.context import TAIPEI, Ctx
from cardsvc.errors import InvalidInput
from cardsvc.events import rules
from cardsvc.events import schemas as s
from cardsvc.events.models import CheckIn, Event
from cardsvc.spreadsheet import cell
from cardsvc.stats.service import taipei_day_bounds

# Each dimension's cell for a check-in row (with its event's id, title and department).
CELL_OF: dict[str, Callable[[Any], str]] = {
    "event": lambda r: f"{r.id} {r.title}",
    "department": lambda r: r.department,
    "month": lambda r: r.tapped_at.astimezone(TAIPEI).strftime("%Y-%m"),
    "township": lambda r: r.township or "(未填 not given)",
    "age_band": lambda r: r.age_band,
}
DIMENSIONS = tuple(CELL_OF)
SUPPRESSED = f"<{rules.SMALL_CELL}"


def participation(ctx: Ctx, by: str, date_from: dt.date, date_to: dt.date
                  ) -> s.ParticipationOut:
    if by not in DIMENSIONS:
        raise InvalidInput(f"by is one of {', '.join(DIMENSIONS)}", field="by")
    start, end = taipei_day_bounds(date_from, date_to)
    rows = ctx.db.execute(
        select(CheckIn.cardholder_id, CheckIn.tapped_at, CheckIn.township, CheckIn.age_band,
               Event.id, Event.title, Event.department)
        .join(Event, Event.id == CheckIn.event_id)
        .where(CheckIn.tapped_at >= start, CheckIn.tapped_at < end)).all()
    checkins: dict[str, int] = defaultdict(int)
    residents: dict[str, set[int]] = defaultdict(set)
    key_of = CELL_OF[by]
    for row in rows:
        key = key_of(row)
        holder = row.cardholder_id
        checkins[key] += 1
        residents[key].add(holder)
    order = ([band for _, band in rules.AGE_BANDS] if by == "age_band" else sorted(checkins))
    out = []
    for key in order:
        if key not in checkins:
            continue
        small = len(residents[key]) < rules.SMALL_CELL
        out.append(s.EventStatsRow(key=key,
                                   checkins=SUPPRESSED if small else checkins[key],
                                   residents=SUPPRESSED if small else len(residents[key])))
    return s.ParticipationOut(by=by, date_from=date_from, date_to=date_to, rows=out,
                              suppressed_below=rules.SMALL_CELL)


def to_csv(report: s.ParticipationOut) -> str:
    lines = [f"{report.by},checkins,residents"]
    for row in report.rows:
        key = row.key.replace('"', '""')
        lines.append(f'"{cell(key)}",{row.checkins},{row.residents}')
    return "\n".join(lines) + "\n"


def to_svg(report: s.ParticipationOut) -> str:
    """A horizontal bar chart of check-ins; a suppressed cell is drawn as a hatched stub."""
    return charts.bar_chart(
        f"縣政活動簽到 Check-ins by {report.by}, {report.date_from} – {report.date_to}",
        [(row.key, row.checkins) for row in report.rows])
