"""The access review as CSV and as a printable page, and a resident's access log as the page
handed over at the counter. One list of lines (`review_rows`) feeds both the CSV and the page,
so they always say the same. Pages are self-contained (no script, font or image from anywhere)
and everything in them is escaped: purposes and names are typed by people."""

from __future__ import annotations

import csv
import datetime as dt
import io
from html import escape

from cardsvc.audit.review_rules import FLAG_TITLES, Flag, Kind
from cardsvc.audit.schemas import AccessLog, AccessReview
from cardsvc.context import TAIPEI
from cardsvc.roc import format_roc
from cardsvc.spreadsheet import cell

READS = "reads"  # the section of the counts of reads (the flags' sections are their names)
REVIEW_COLUMNS = ("section", "day", "from", "to", "staff", "role", "action", "purpose",
                  "subject", "count", "residents", "audit_ids")
READS_TITLE = "個資查閱統計 Reads of personal data by person, purpose and day"

KIND_LABELS: dict[Kind, str] = {
    Kind.READ: "查閱 Read",
    Kind.REVEAL: "查閱（顯示全號）Read, full ID shown",
    Kind.ID_SEARCH: "身分證號查詢結果 Found by a national ID search",
    Kind.NAME_SEARCH: "姓名查詢結果 Shown in a name search",
    Kind.DISCLOSURE: "提供查詢 Answered to",
    Kind.EXPORT: "資料提供 Sent to",
}

_STYLE = """body{font-family:sans-serif;margin:2em;font-size:11pt}
table{border-collapse:collapse;width:100%;margin-bottom:1.5em}
th,td{border:1px solid #999;padding:2px 5px;text-align:left;vertical-align:top}
th{background:#eee}td.n{text-align:right}
@media print{body{margin:0;font-size:9pt}a{color:inherit;text-decoration:none}}"""


def local(at: dt.datetime) -> str:
    return at.astimezone(TAIPEI).strftime("%Y-%m-%d %H:%M:%S")


def roc_time(at: dt.datetime) -> str:
    t = at.astimezone(TAIPEI)
    return f"{format_roc(t.date())} {t:%H:%M}"


def event_link(audit_id: int, base: str = "") -> str:
    """The auditors' view of one row in a browser: the counter's trail page (an auditor's
    session; the API's JSON route would want a bearer token). The newest row before the next
    id, one row, is exactly this row."""
    return f"{base}/counter/audit/events?before_id={audit_id + 1}&limit=1"


def review_rows(report: AccessReview) -> list[dict[str, str]]:
    """Every line of the review, counts first, then each flag's lines (times Asia/Taipei)."""
    out = [{"section": READS, "day": c.day.isoformat(), "from": "", "to": "",
            "staff": c.staff, "role": c.role, "action": "", "purpose": c.purpose or "",
            "subject": "", "count": str(c.reads), "residents": str(c.residents),
            "audit_ids": ""} for c in report.reads]
    out += [{"section": line.flag.value, "day": line.day.isoformat(),
             "from": local(line.first_at), "to": local(line.last_at), "staff": line.staff,
             "role": line.role, "action": line.action or "", "purpose": line.purpose or "",
             "subject": line.subject or "", "count": str(line.count),
             "residents": str(line.residents),
             "audit_ids": " ".join(str(i) for i in line.audit_ids)} for line in report.flags]
    return out


def review_csv(report: AccessReview) -> str:
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(REVIEW_COLUMNS)
    for row in review_rows(report):
        w.writerow([cell(row[c]) for c in REVIEW_COLUMNS])
    return buf.getvalue()


def _ids_html(ids: str, base: str) -> str:
    return " ".join(f'<a href="{escape(event_link(int(i), base))}">{escape(i)}</a>'
                    for i in ids.split())


def review_html(report: AccessReview, link_base: str = "") -> str:
    """The review to print: each section's lines, each audit row id linking to the trail."""
    e = escape
    rows = review_rows(report)
    s = report.settings
    weekdays = ", ".join(str(d) for d in s.office_weekdays)
    sections = [(READS, READS_TITLE)] + [(f.value, FLAG_TITLES[f]) for f in Flag]
    columns = [c for c in REVIEW_COLUMNS if c != "section"]
    body = []
    for key, title in sections:
        mine = [r for r in rows if r["section"] == key]
        body.append(f'<h2 id="{e(key)}">{e(title)} ({len(mine)})</h2>')
        if not mine:
            body.append("<p>無 None</p>")
            continue
        head = "".join(f"<th>{e(c)}</th>" for c in columns)
        lines = []
        for r in mine:
            cells = []
            for c in columns:
                if c == "audit_ids":
                    cells.append(f'<td class="ids">{_ids_html(r[c], link_base)}</td>')
                elif c in ("count", "residents"):
                    cells.append(f'<td class="n">{e(r[c])}</td>')
                else:
                    cells.append(f"<td>{e(r[c])}</td>")
            lines.append(f'<tr data-section="{e(key)}">{"".join(cells)}</tr>')
        body.append(f"<table><thead><tr>{head}</tr></thead><tbody>{''.join(lines)}"
                    "</tbody></table>")
    period = (f"{report.date_from} – {report.date_to} "
              f"({format_roc(report.date_from)} – {format_roc(report.date_to)})")
    return f"""<!doctype html>
<html lang="zh-Hant"><head><meta charset="utf-8">
<title>個資存取稽核 Access review {e(str(report.date_from))} – {e(str(report.date_to))}</title>
<style>{_STYLE}</style></head>
<body><h1>個資存取稽核 Access review</h1>
<dl><dt>期間 Period (Asia/Taipei)</dt><dd>{e(period)}</dd>
<dt>產製 Produced</dt><dd>{e(local(report.generated_at))} {e(report.generated_by)}</dd>
<dt>上班時間 Office hours</dt><dd>{e(s.office_start)}–{e(s.office_end)},
ISO weekdays {e(weekdays)}</dd>
<dt>每小時查閱人數上限 Residents per hour</dt><dd>{s.residents_per_hour}</dd></dl>
{"".join(body)}
</body></html>
"""


def access_log_html(log: AccessLog) -> str:
    """個資查詢: the page a resident takes home. No full national ID is ever in it."""
    e = escape
    lines = "".join(
        f"<tr><td>{e(roc_time(x.at))}<br><small>{e(local(x.at))}</small></td>"
        f"<td>{e(KIND_LABELS[x.kind])}</td><td>{e(x.by)}</td><td>{e(x.role)}</td>"
        f"<td>{e(x.purpose or '—')}</td><td class=\"n\">{x.audit_id}</td></tr>"
        for x in log.entries)
    table = (f"<table><thead><tr><th>時間 Time</th><th>事項 What</th><th>人員或機關 By</th>"
             f"<th>身分 Role</th><th>目的 Purpose</th><th>稽核編號 Audit row</th></tr>"
             f"</thead><tbody>{lines}</tbody></table>" if log.entries
             else "<p>無紀錄 No one has read or received your data.</p>")
    return f"""<!doctype html>
<html lang="zh-Hant"><head><meta charset="utf-8">
<title>個人資料查閱紀錄 Who saw my data</title>
<style>{_STYLE}</style></head>
<body><h1>個人資料查閱紀錄 Who saw my data</h1>
<p>依個人資料保護法，本紀錄列出縣民卡系統中您的個人資料被查閱、查詢及提供之情形。
Under the Personal Data Protection Act: every time county staff read your record, found you in
a search, or your data went to a library or a terminal.</p>
<dl><dt>姓名 Name</dt><dd>{e(log.name)}</dd>
<dt>身分證號 National ID</dt><dd>{e(log.person_id_masked)}</dd>
<dt>製表時間 Produced</dt><dd>{e(roc_time(log.generated_at))} ({e(local(log.generated_at))})</dd>
</dl>
{table}
<p>時間為台北時間 Times are Asia/Taipei.</p>
</body></html>
"""
