"""`cardsvc audit review` and `cardsvc audit access-log`: the ethics office's access review,
and a resident's access log (個資查詢), on the `cardsvc audit` group."""

from __future__ import annotations

import datetime as dt
import sys
from pathlib import Path
from typing import Annotated, Literal

import typer
from pydantic import TypeAdapter, ValidationError
from rich.table import Table

from cardsvc.app.cli.audit import app
from cardsvc.app.cli.common import _fail, _runtime, cli_actor, console
from cardsvc.audit import review, review_print
from cardsvc.audit.review_rules import FLAG_TITLES
from cardsvc.audit.schemas import AccessLog, AccessReview
from cardsvc.db import unit_of_work
from cardsvc.errors import DomainError
from cardsvc.schemas_common import MAX_ID, Purpose

SHOWN_IDS = 8  # a table row names this many audit rows; the CSV and the page name them all


def review_tables(report: AccessReview) -> list[Table]:
    counts = Table(title=f"{review_print.READS_TITLE}, {report.date_from} – {report.date_to}")
    for col, right in (("day", False), ("staff", False), ("role", False), ("purpose", False),
                       ("reads", True), ("residents", True)):
        counts.add_column(col, justify="right" if right else "left", overflow="fold")
    for c in report.reads:
        counts.add_row(c.day.isoformat(), c.staff, c.role, c.purpose or "—", f"{c.reads:,}",
                       f"{c.residents:,}")
    flags = Table(title="Flagged (times Asia/Taipei)")
    for col in ("flag", "from", "to", "staff", "role", "action", "purpose", "subject",
                "count", "residents", "audit rows"):
        flags.add_column(col, overflow="fold")
    for line in report.flags:
        ids = " ".join(str(i) for i in line.audit_ids[:SHOWN_IDS])
        if len(line.audit_ids) > SHOWN_IDS:
            ids += f" … (+{len(line.audit_ids) - SHOWN_IDS})"
        flags.add_row(FLAG_TITLES[line.flag], review_print.local(line.first_at),
                      review_print.local(line.last_at), line.staff, line.role,
                      line.action or "", line.purpose or "", line.subject or "",
                      str(line.count), str(line.residents), ids)
    return [counts, flags]


def log_table(log: AccessLog) -> Table:
    table = Table(title=f"個資查詢 Who saw the data of cardholder {log.cardholder_id} "
                        f"({log.person_id_masked})")
    for col in ("time (Asia/Taipei)", "what", "by", "role", "purpose", "audit row"):
        table.add_column(col, overflow="fold")
    for x in log.entries:
        table.add_row(review_print.roc_time(x.at), review_print.KIND_LABELS[x.kind], x.by,
                      x.role, x.purpose or "—", str(x.audit_id))
    return table


def _write(text: str, out: Path | None) -> None:
    if out is None:
        sys.stdout.write(text)
        return
    try:
        out.write_text(text, encoding="utf-8-sig" if out.suffix == ".csv" else "utf-8")
    except OSError as exc:
        raise _fail(f"cannot write {out}: {exc.strerror}") from None
    console.print(f"wrote {out}")


@app.command("review")
def audit_review(
    date_from: Annotated[dt.datetime, typer.Option("--from", formats=["%Y-%m-%d"],
                                                   help="First business day (Asia/Taipei)")],
    date_to: Annotated[dt.datetime, typer.Option("--to", formats=["%Y-%m-%d"],
                                                 help="Last business day (Asia/Taipei)")],
    fmt: Annotated[Literal["table", "csv", "html"], typer.Option(
        "--format", help="table (on the console), csv or html (printable)")] = "table",
    out: Annotated[Path | None, typer.Option(
        "--out", help="Write the CSV or page here instead of to the console")] = None,
    link_base: Annotated[str, typer.Option(
        help="The server's address, for the page's links to audit rows (e.g. "
             "https://cards.kinmen.gov.tw)")] = "",
) -> None:
    """The ethics office's access review of a period: reads of personal data by person,
    purpose and day, and flagged lines with their audit rows. Producing it is audited."""
    if out is not None and fmt == "table":
        raise _fail("--out is for --format csv or html")
    rt = _runtime().runtime
    try:
        with unit_of_work(rt.sessions) as db:
            report = review.access_review(rt.ctx(db, cli_actor()), date_from.date(),
                                          date_to.date())
    except DomainError as exc:
        raise _fail(exc.detail) from None
    if fmt == "csv":
        _write(review_print.review_csv(report), out)
    elif fmt == "html":
        _write(review_print.review_html(report, link_base.rstrip("/")), out)
    else:
        for table in review_tables(report):
            console.print(table)


@app.command("access-log")
def audit_access_log(
    cardholder_id: Annotated[int, typer.Argument(min=1, max=MAX_ID,
                                                 help="The resident's cardholder id")],
    purpose: Annotated[str, typer.Option(help="Why the log is produced (audited)")],
    html: Annotated[Path | None, typer.Option(help="Also write the printable page")] = None,
) -> None:
    """個資查詢: every read, search, reveal and disclosure of one resident's data. Producing it
    is audited with its purpose."""
    try:
        why = TypeAdapter(Purpose).validate_python(purpose.strip())
    except ValidationError as exc:
        raise _fail(f"--purpose: {exc.errors()[0]['msg']}") from None
    rt = _runtime().runtime
    try:
        with unit_of_work(rt.sessions) as db:
            log = review.access_log(rt.ctx(db, cli_actor()), cardholder_id, why)
    except DomainError as exc:
        raise _fail(exc.detail) from None
    console.print(log_table(log))
    if html is not None:
        _write(review_print.access_log_html(log), html)
