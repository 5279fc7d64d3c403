"""Participation statistics for the county: check-ins per event, department, month,
township and age band, with small cells suppressed (fewer than `rules.SMALL_CELL` residents
shows "<5" for both counts, so no resident can be picked out of a small number)."""

from __future__ import annotations

import datetime as dt
from collections import defaultdict
from collections.abc import Callable
from typing import Any

from sqlalchemy import select

from cardsvc.context import TAIPEI, Ctx
from cardsvc.errors import InvalidInput
from cardsvc.events import rules
from cardsvc.events import schemas as s
from cardsvc.events.models import CheckIn, Event
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
        safe = f"'{key}" if key[:1] in "=+-@" else key  # no formulas in a spreadsheet
        lines.append(f'"{safe}",{row.checkins},{row.residents}')
    return "\n".join(lines) + "\n"


def to_svg(report: s.ParticipationOut) -> str:
    """A horizontal bar chart of check-ins; a suppressed cell is drawn as a hatched stub."""
    width, bar_h, left = 640, 22, 220
    height = 60 + bar_h * max(1, len(report.rows))
    top = max([r.checkins for r in report.rows if isinstance(r.checkins, int)] or [1])
    title = (f"縣政活動簽到 Check-ins by {report.by}, {report.date_from} – {report.date_to}")
    parts = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" '
             f'font-family="sans-serif" font-size="12" role="img">',
             f'<title>{_esc(title)}</title>',
             '<defs><pattern id="h" width="6" height="6" patternUnits="userSpaceOnUse">'
             '<path d="M0,6 L6,0" stroke="#999"/></pattern></defs>',
             f'<text x="8" y="20" font-size="14" font-weight="bold">{_esc(title)}</text>']
    for n, row in enumerate(report.rows):
        y = 36 + n * bar_h
        parts.append(f'<text x="{left - 6}" y="{y + 15}" text-anchor="end">'
                     f'{_esc(row.key[:30])}</text>')
        if isinstance(row.checkins, int):
            w = max(1, int((width - left - 60) * row.checkins / top))
            parts.append(f'<rect x="{left}" y="{y + 3}" width="{w}" height="{bar_h - 6}" '
                         'fill="#2b6cb0"/>')
            parts.append(f'<text x="{left + w + 4}" y="{y + 15}">{row.checkins}</text>')
        else:
            parts.append(f'<rect x="{left}" y="{y + 3}" width="24" height="{bar_h - 6}" '
                         'fill="url(#h)" stroke="#999"/>')
            parts.append(f'<text x="{left + 28}" y="{y + 15}">{_esc(row.checkins)} '
                         '(suppressed)</text>')
    parts.append("</svg>")
    return "\n".join(parts) + "\n"


def _esc(text: str) -> str:
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
