"""The ethics office's access review of a period, and a resident's access log (個資查詢).

Both read the audit trail through `review_rules`. The review aggregates in SQL: the trail holds
millions of rows (most of them purchases), and a year's review answers with counts and flagged
lines, each carrying the ids of its rows, never with the rows themselves. Business days, clock
hours and office hours are Asia/Taipei.
"""

from __future__ import annotations

import datetime as dt
import json
import re
from collections.abc import Iterable, Sequence
from typing import Any

from sqlalchemy import (
    ColumnElement,
    Date,
    FromClause,
    Select,
    String,
    Subquery,
    and_,
    case,
    cast,
    false,
    func,
    literal_column,
    not_,
    or_,
    select,
    union,
)
from sqlalchemy.dialects import postgresql
from sqlalchemy.orm import Session

from cardsvc.audit import review_rules as rules
from cardsvc.audit import service as audit
from cardsvc.audit.errors import ReviewPeriodReversed, ReviewPeriodTooLong
from cardsvc.audit.models import AuditEvent
from cardsvc.audit.review_rules import AccessRule, Flag, Kind, Subject
from cardsvc.audit.schemas import (
    AccessEntry,
    AccessLog,
    AccessReview,
    ReadCount,
    ReviewLine,
    ReviewSettings,
)
from cardsvc.cards.models import Card, ProfileUpdate
from cardsvc.config import BUSINESS_TZ, Settings
from cardsvc.context import TAIPEI, Ctx
from cardsvc.holders import service as holders
from cardsvc.library.models import Library, LibraryLink
from cardsvc.stats.service import taipei_day_bounds

E = AuditEvent
if not re.fullmatch(r"[A-Za-z_/+-]+", BUSINESS_TZ):  # it is written into SQL as a literal
    raise ValueError(f"not a time zone name: {BUSINESS_TZ!r}")


def _sql_text(value: str) -> ColumnElement[Any]:
    """One of this module's constants as an SQL literal: grouped expressions must read the
    same in SELECT and GROUP BY, which bound parameters do not on PostgreSQL."""
    return literal_column("'" + value.replace("'", "''") + "'")


class _Clock:
    """Asia/Taipei days, clock times and hours of a UTC column, in the database's SQL.

    PostgreSQL converts with the time zone itself. SQLite, which knows no time zones, adds
    the business zone's offset at the period's start (Taiwan has kept no daylight saving
    time since 1979)."""

    def __init__(self, db: Session, at: dt.datetime) -> None:
        self.pg = db.get_bind().dialect.name == "postgresql"
        offset = at.astimezone(TAIPEI).utcoffset() or dt.timedelta(0)
        self._shift = _sql_text(f"{int(offset.total_seconds()):+d} seconds")

    def _local(self, col: Any) -> Any:
        return func.timezone(_sql_text(BUSINESS_TZ), col)

    def _format(self, col: Any, pg: str, sqlite: str) -> ColumnElement[Any]:
        if self.pg:
            return func.to_char(self._local(col), _sql_text(pg))
        return func.strftime(_sql_text(sqlite), col, self._shift)

    def day(self, col: Any) -> ColumnElement[Any]:
        if self.pg:
            return cast(self._local(col), Date)
        return func.date(col, self._shift)

    def clock(self, col: Any) -> ColumnElement[Any]:
        return self._format(col, "HH24:MI:SS", "%H:%M:%S")

    def hour(self, col: Any) -> ColumnElement[Any]:
        return self._format(col, "YYYY-MM-DD HH24", "%Y-%m-%d %H")

    def weekday(self, col: Any, days_back: int = 0) -> ColumnElement[Any]:
        if days_back == 0:
            return self._format(col, "ID", "%w")
        if self.pg:
            earlier = col - literal_column(f"interval '{int(days_back)} days'")
            return func.to_char(self._local(earlier), _sql_text("ID"))
        return func.strftime(_sql_text("%w"), col, self._shift,
                             _sql_text(f"-{int(days_back)} days"))

    def weekday_codes(self, iso_days: Iterable[int]) -> list[str]:
        """ISO weekdays as `weekday` writes them (SQLite counts Sunday as 0)."""
        return [str(d) if self.pg else str(d % 7) for d in iso_days]

    def ids(self, col: Any) -> ColumnElement[Any]:
        if self.pg:
            return func.string_agg(cast(col, String), _sql_text(","))
        return func.group_concat(col, _sql_text(","))

    def detail_text(self, key: str) -> ColumnElement[Any]:
        """A top-level field of the canonical JSON detail, as text."""
        if self.pg:
            return func.json_extract_path_text(cast(E.detail, postgresql.JSON), _sql_text(key))
        return cast(func.json_extract(E.detail, _sql_text(f"$.{key}")), String)


def _matches(rule: AccessRule) -> ColumnElement[bool]:
    cond = E.action == rule.action
    if rule.detail_holds is not None:
        cond = and_(cond, E.detail.contains(rule.detail_holds, autoescape=True))
    return cond


def of_kind(*kinds: Kind) -> ColumnElement[bool]:
    """Rows whose rule (the first of their action that matches) is of one of these kinds."""
    parts = []
    for i, rule in enumerate(rules.RULES):
        if rule.kind in kinds:
            earlier = [not_(_matches(r)) for r in rules.RULES[:i] if r.action == rule.action]
            parts.append(and_(_matches(rule), *earlier))
    return or_(*parts) if parts else false()


def _actions_of(subject: Subject) -> list[str]:
    return sorted({r.action for r in rules.RULES if r.subject == subject})


def _in_json_list(n: int) -> ColumnElement[bool]:
    """Rows whose detail may hold `n` in a list of numbers (checked again on the parsed
    JSON: this only keeps the database from sending every row)."""
    return or_(*(E.detail.contains(p) for p in (f"[{n}]", f"[{n},", f",{n},", f",{n}]")))


def _as_datetime(value: Any) -> dt.datetime:
    if isinstance(value, str):  # SQLite answers an aggregate of a timestamp as text
        value = dt.datetime.fromisoformat(value)
    assert isinstance(value, dt.datetime)  # noqa: S101 - the column is a timestamp
    return value if value.tzinfo else value.replace(tzinfo=dt.UTC)


def _as_date(value: Any) -> dt.date:
    return dt.date.fromisoformat(value) if isinstance(value, str) else value


def _library_labels(db: Session, ids: Iterable[int]) -> dict[str, str]:
    wanted = sorted(set(ids))
    if not wanted:
        return {}
    return {str(lib.id): f"{lib.name} ({lib.code})"
            for lib in db.scalars(select(Library).where(Library.id.in_(wanted)))}


def _library_ids(values: Iterable[str | None]) -> list[int]:
    return [int(v) for v in values if v is not None and v.isdigit()]


# --- the access review ---------------------------------------------------------------------


def _year_after(day: dt.date) -> dt.date:
    try:
        return day.replace(year=day.year + 1)
    except ValueError:  # 29 February
        return dt.date(day.year + 1, 3, 1)


def review_period(date_from: dt.date, date_to: dt.date) -> tuple[dt.datetime, dt.datetime]:
    """The period's business days as UTC instants [start, end); refused when it runs
    backwards or is longer than a year (longer ones are several reviews)."""
    if date_to < date_from:
        raise ReviewPeriodReversed(f"the period ends ({date_to}) before it starts "
                                   f"({date_from})", field="to")
    bounds = taipei_day_bounds(date_from, date_to)  # refuses dates outside 1900-2999 too
    last = _year_after(date_from) - dt.timedelta(days=1)
    if date_to > last:
        raise ReviewPeriodTooLong(f"a review covers at most a year: from {date_from}, up to "
                                  f"{last}", field="to")
    return bounds


class _Review:
    def __init__(self, db: Session, settings: Settings, start: dt.datetime,
                 end: dt.datetime) -> None:
        self.db = db
        self.settings = settings
        self.clock = _Clock(db, start)
        self.period = and_(E.at >= start, E.at < end)
        self.person = E.actor_role.in_(sorted(rules.PERSON_ROLES))

    def rows(self, where: ColumnElement[bool], outer: FromClause | None = None) -> Subquery:
        q: Select[Any] = select(E.id, E.at, E.actor, E.actor_role, E.action, E.purpose,
                                E.target_type, E.target_id,
                                self.clock.day(E.at).label("day"),
                                self.clock.hour(E.at).label("hour"))
        if outer is not None:
            q = q.select_from(outer)
        return q.where(self.period, where).subquery()

    def lines(self, flag: Flag, rows: Subquery, by: Sequence[str], *,
              residents: bool = True, residents_over: int | None = None) -> list[dict[str, Any]]:
        keys = [rows.c[k] for k in by]
        distinct = func.count(rows.c.target_id.distinct())
        q = select(*keys, func.count().label("n"), func.min(rows.c.at).label("first_at"),
                   func.max(rows.c.at).label("last_at"), distinct.label("residents"),
                   self.clock.ids(rows.c.id).label("ids")).group_by(*keys)
        if residents_over is not None:
            q = q.having(distinct > residents_over)
        out = []
        for m in self.db.execute(q).mappings():
            first = _as_datetime(m["first_at"])
            out.append({
                "flag": flag, "day": first.astimezone(TAIPEI).date(), "first_at": first,
                "last_at": _as_datetime(m["last_at"]), "staff": m["actor"],
                "role": m["actor_role"], "action": m.get("action"),
                "purpose": m.get("purpose"), "target_type": m.get("target_type"),
                "target_id": m.get("target_id"), "count": int(m["n"]),
                "residents": int(m["residents"]) if residents else 0,
                "audit_ids": sorted(int(x) for x in str(m["ids"]).split(","))})
        return out

    def read_counts(self) -> list[ReadCount]:
        r = self.rows(and_(self.person, of_kind(*rules.STAFF_READS)))
        keys = (r.c.day, r.c.actor, r.c.actor_role, r.c.purpose)
        q = select(*keys, func.count(), func.count(r.c.target_id.distinct())).group_by(*keys)
        out = [ReadCount(day=_as_date(day), staff=actor, role=role, purpose=purpose,
                         reads=int(n), residents=int(m))
               for day, actor, role, purpose, n, m in self.db.execute(q)]
        return sorted(out, key=lambda c: (c.day, c.staff, c.purpose or ""))

    def outside_office(self) -> ColumnElement[bool]:
        s = self.settings
        start = s.review_office_start.strftime("%H:%M:%S")
        end = s.review_office_end.strftime("%H:%M:%S")
        clock = self.clock.clock(E.at)
        if start < end:
            off_clock: ColumnElement[bool] = or_(clock < start, clock >= end)
        elif start > end:  # hours across midnight
            off_clock = and_(clock < start, clock >= end)
        else:
            off_clock = false()
        working = self.clock.weekday_codes(s.review_office_weekdays)
        weekday = self.clock.weekday(E.at)
        if start > end:  # the small hours belong to the shift that began the evening before
            weekday = case((clock < end, self.clock.weekday(E.at, days_back=1)), else_=weekday)
        return or_(weekday.not_in(working), off_clock)

    def served(self) -> Subquery:
        """(resident, day) of every counter action in the period (see review_rules)."""
        writes = and_(self.period, self.person, E.action.not_in(sorted(rules.ACTIONS)))
        day = self.clock.day(E.at).label("day")
        holder = cast(Card.cardholder_id, String).label("holder")
        direct = select(E.target_id.label("holder"), day).where(
            writes, E.target_type == "cardholder")
        cards = select(holder, day).select_from(E).join(
            Card, cast(Card.id, String) == E.target_id).where(writes, E.target_type == "card")
        money = select(holder, day).select_from(E).join(
            Card, cast(Card.id, String) == self.clock.detail_text("card_id")).where(
            writes, E.target_type == "transfer")
        return union(direct, cards, money).subquery()

    def flags(self) -> list[dict[str, Any]]:
        person, staff_reads = self.person, of_kind(*rules.STAFF_READS)
        one = and_(person, of_kind(*rules.ONE_RESIDENT_READS), E.target_type == "cardholder")
        every = ("day", "actor", "actor_role", "action", "purpose")
        out = self.lines(Flag.REVEAL, self.rows(and_(person, of_kind(Kind.REVEAL))),
                         ("id", *every, "target_type", "target_id"))
        out += self.lines(Flag.ID_SEARCH, self.rows(and_(person, of_kind(Kind.ID_SEARCH))),
                          every, residents=False)
        out += self.lines(Flag.OFF_HOURS, self.rows(and_(person, staff_reads,
                                                         self.outside_office())), every)
        served = self.served()
        unexplained = E.__table__.outerjoin(served, and_(
            served.c.holder == E.target_id, served.c.day == self.clock.day(E.at)))
        out += self.lines(Flag.NO_COUNTER_ACTION,
                          self.rows(and_(one, served.c.holder.is_(None)), unexplained),
                          ("day", "actor", "actor_role", "purpose", "target_type", "target_id"))
        out += self.lines(Flag.MANY_RESIDENTS, self.rows(one), ("hour", "actor", "actor_role"),
                          residents_over=self.settings.review_residents_per_hour)
        out += self.lines(Flag.EXPORT, self.rows(of_kind(Kind.EXPORT)),
                          (*every, "target_type", "target_id"), residents=False)
        return out


def _subject(target_type: str | None, target_id: str | None,
             libraries: dict[str, str]) -> str | None:
    if target_type is None:
        return None
    if target_type == "library" and target_id in libraries:
        return libraries[target_id]
    return f"{target_type} {target_id}" if target_id is not None else target_type


def access_review(ctx: Ctx, date_from: dt.date, date_to: dt.date) -> AccessReview:
    """Reads of personal data in a period by person, purpose and day, and the flagged lines
    (see review_rules.Flag). Producing it is audited (`audit.review`)."""
    start, end = review_period(date_from, date_to)
    audit.seal_aside(ctx.db)  # a library's lookups of a moment ago are in it
    review = _Review(ctx.db, ctx.settings, start, end)
    reads = review.read_counts()
    raw = review.flags()
    libraries = _library_labels(ctx.db, _library_ids(
        r["target_id"] for r in raw if r["target_type"] == "library"))
    order = {f: i for i, f in enumerate(Flag)}
    raw.sort(key=lambda r: (order[r["flag"]], r["first_at"], r["staff"], r["audit_ids"][0]))
    flags = [ReviewLine(**{k: v for k, v in r.items() if k not in ("target_type", "target_id")},
                        subject=_subject(r["target_type"], r["target_id"], libraries))
             for r in raw]
    s = ctx.settings
    audit.record(ctx, "audit.review", target_type="report", detail={
        "from": date_from.isoformat(), "to": date_to.isoformat(),
        "flags": {f.value: sum(1 for x in flags if x.flag == f) for f in Flag}})
    return AccessReview(
        date_from=date_from, date_to=date_to, generated_at=ctx.now,
        generated_by=ctx.actor.username, reads=reads, flags=flags,
        settings=ReviewSettings(office_start=s.review_office_start.isoformat(),
                                office_end=s.review_office_end.isoformat(),
                                office_weekdays=list(s.review_office_weekdays),
                                residents_per_hour=s.review_residents_per_hour))


# --- a resident's access log ---------------------------------------------------------------


def _names(rule: AccessRule, ev: AuditEvent, holder_id: int, links: Sequence[LibraryLink],
           updates: set[int]) -> bool:
    """Whether this row (found by a coarse query) concerned the resident."""
    detail = json.loads(ev.detail)
    library = int(ev.target_id) if ev.target_type == "library" and ev.target_id else None
    own = [lk for lk in links if lk.library_id == library]
    match rule.subject:
        case Subject.TARGET:
            return ev.target_type == "cardholder" and ev.target_id == str(holder_id)
        case Subject.SEARCH_RESULTS:
            return holder_id in detail.get("cardholders", [])
        case Subject.PATRONS:
            named = {detail.get("patron_id"), *detail.get("patrons", [])}
            return any(lk.patron_id in named for lk in own)
        case Subject.LIVE_LINKS:
            return any(lk.consented_at <= ev.at and (lk.unlinked_at is None
                                                     or ev.at < lk.unlinked_at) for lk in own)
        case Subject.PROFILE_UPDATES:
            return bool(updates & set(detail.get("updates", [])))
    return False


def access_log(ctx: Ctx, holder_id: int, purpose: str) -> AccessLog:
    """Every read of the resident's record, every search that showed them, every reveal of
    their full ID, and what went to a library or a terminal about them, oldest first. The
    log itself is audited with its purpose (`audit.access_log`, which later logs list)."""
    holder = holders.get(ctx, holder_id)
    db = ctx.db
    audit.seal_aside(db)
    found: dict[int, AuditEvent] = {}

    def take(*where: ColumnElement[bool]) -> None:
        for ev in db.scalars(select(E).where(*where)):
            found[ev.id] = ev

    take(E.action.in_(_actions_of(Subject.TARGET)), E.target_type == "cardholder",
         E.target_id == str(holder.id))
    take(E.action.in_(_actions_of(Subject.SEARCH_RESULTS)), _in_json_list(holder.id))
    links = list(db.scalars(select(LibraryLink).where(LibraryLink.cardholder_id == holder.id)))
    for link in links:
        at_library = and_(E.target_type == "library", E.target_id == str(link.library_id),
                          E.at >= link.consented_at)
        take(E.action.in_(_actions_of(Subject.PATRONS)), at_library,
             E.detail.contains(f'"{link.patron_id}"', autoescape=True))
        live = [at_library] if link.unlinked_at is None else [at_library,
                                                               E.at < link.unlinked_at]
        take(E.action.in_(_actions_of(Subject.LIVE_LINKS)), *live)
    updates = db.execute(select(ProfileUpdate.id, ProfileUpdate.created_at).join(
        Card, Card.id == ProfileUpdate.card_id).where(Card.cardholder_id == holder.id)).all()
    if updates:
        take(E.action.in_(_actions_of(Subject.PROFILE_UPDATES)),
             E.at >= min(u.created_at for u in updates),
             or_(*(_in_json_list(u.id) for u in updates)))
    update_ids = {u.id for u in updates}

    libraries = _library_labels(db, [lk.library_id for lk in links])
    entries = []
    for ev in sorted(found.values(), key=lambda e: e.id):
        rule = rules.rule_of(ev.action, ev.detail)
        if rule is None or not _names(rule, ev, holder.id, links, update_ids):
            continue
        by, role = ev.actor, ev.actor_role
        if ev.target_type == "library":
            by, role = libraries.get(ev.target_id or "", f"library {ev.target_id}"), "library"
        elif ev.target_type == "terminal":
            by, role = f"terminal {ev.target_id}", "terminal"
        entries.append(AccessEntry(audit_id=ev.id, at=ev.at, kind=rule.kind, action=ev.action,
                                   by=by, role=role, purpose=ev.purpose))
    audit.record(ctx, "audit.access_log", target_type="cardholder", target_id=holder.id,
                 purpose=purpose, detail={"entries": len(entries)})
    return AccessLog(cardholder_id=holder.id, name=holder.name,
                     person_id_masked=holders.masked_person_id(ctx, holder),
                     generated_at=ctx.now, entries=entries)
