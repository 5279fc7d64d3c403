"""The files a clearing window produces, byte-deterministic.

- `statement-<merchant>.csv`: every record of the merchant in the window, one line each.
- `statement-<merchant>.json`: the merchant's totals (gross, refunds, fees, net, payout).
- `exceptions.csv`: what went wrong, with a reason.
- `summary.json`: control totals: record counts and amount sums per kind and outcome, a
  SHA-256 over every record line, per-merchant totals and the grand totals.
- `payout.xml`: ISO 20022 pain.001.001.09 credit transfers, one per merchant with a positive
  net (written by `settle`; it names bank accounts, so it is stored encrypted).

Nothing in them depends on when they were generated: regenerating a window's files from the
database gives the same bytes.
"""

from __future__ import annotations

import csv
import datetime as dt
import hashlib
import io
import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from xml.sax.saxutils import escape

from sqlalchemy import select, text

from cardsvc.context import TAIPEI, Ctx
from merchants.registry.models import Merchant
from settlement.bills.models import Bill, Biller, BillPayment
from settlement.clearing.models import ClearingException, ClearingWindow, MerchantStatement

PAIN_NS = "urn:iso:std:iso:20022:tech:xsd:pain.001.001.09"
CURRENCY = "TWD"
STATEMENT_FIELDS = ("transaction_id", "received_at", "terminal_id", "kind", "card",
                    "card_counter", "amount", "outcome", "reason")
EXCEPTION_FIELDS = ("reason", "transaction_id", "merchant_id", "card_id", "card_counter",
                    "amount", "paid", "detail")
TOTAL_FIELDS = ("sales_count", "gross", "refunds_count", "refunds", "fee_bps", "fees",
                "collections", "subsidies", "brought_forward", "net", "payout", "carried")


@dataclass
class File:
    name: str
    media_type: str
    content: str
    personal: bool = False

    @property
    def sha256(self) -> str:
        return hashlib.sha256(self.content.encode()).hexdigest()


@dataclass
class WindowFiles:
    files: list[File] = field(default_factory=list)
    statement_hashes: dict[int, tuple[str, str]] = field(default_factory=dict)
    summary_sha256: str = ""
    exceptions: int = 0


def taipei(t: dt.datetime) -> str:
    return t.astimezone(TAIPEI).isoformat(timespec="seconds")


def _csv(rows: Sequence[Sequence[object]], header: tuple[str, ...]) -> str:
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(header)
    w.writerows(rows)
    return buf.getvalue()


def _json(value: object) -> str:
    return json.dumps(value, ensure_ascii=False, sort_keys=True, indent=2) + "\n"


def totals_of(s: MerchantStatement) -> dict[str, int]:
    return {k: int(getattr(s, k)) for k in TOTAL_FIELDS}


# Taiwan keeps +08:00 all year (no daylight saving), so the database can render local time.
TAIPEI_TIME = {
    "postgresql": "to_char(t.created_at AT TIME ZONE 'Asia/Taipei', "
                  "'YYYY-MM-DD\"T\"HH24:MI:SS\"+08:00\"')",
    "sqlite": "strftime('%Y-%m-%dT%H:%M:%S+08:00', t.created_at, '+8 hours')",
}


def _records_sql(dialect: str) -> str:
    """Each record's statement line, rendered by the database (no field needs CSV quoting:
    numbers, codes and a masked card number)."""
    return f"""
    SELECT e.merchant_id,
           CAST(e.transaction_id AS VARCHAR(20)) || ',' || {TAIPEI_TIME[dialect]} || ',' ||
           CAST(t.terminal_id AS VARCHAR(20)) || ',' || e.kind || ',' ||
           substr(t.card_number, 1, 4) || '********' || substr(t.card_number, 13, 4) || ',' ||
           COALESCE(CAST(e.card_counter AS VARCHAR(12)), '') || ',' ||
           CAST(e.amount AS VARCHAR(20)) || ',' || e.outcome || ',' || COALESCE(e.reason, '')
    FROM clearing_entries e JOIN pos_transactions t ON t.id = e.transaction_id
    WHERE e.window_id = :w
    ORDER BY e.merchant_id, e.transaction_id
    """


def window_files(ctx: Ctx, window: ClearingWindow, statements: list[MerchantStatement],
                 billers: list[Remittance] | None = None) -> WindowFiles:
    out = WindowFiles()
    window_info = {"business_date": window.business_date.isoformat(),
                   "cutoff_at": taipei(window.cutoff_at),
                   "boundary_at": taipei(window.boundary_at or window.cutoff_at)}
    merchants = {m.id: m for m in ctx.db.scalars(select(Merchant).where(
        Merchant.id.in_([s.merchant_id for s in statements])))}
    by_merchant: dict[int, list[str]] = {s.merchant_id: [] for s in statements}
    counts = {f"{kind}/{outcome}": {"count": int(n), "amount": int(amount)}
              for kind, outcome, n, amount in ctx.db.execute(text(
                  "SELECT kind, outcome, COUNT(*), SUM(amount) FROM clearing_entries "
                  "WHERE window_id = :w GROUP BY kind, outcome ORDER BY kind, outcome"),
                  {"w": window.id})}
    result = ctx.db.connection().exec_driver_sql(
        _records_sql(ctx.db.get_bind().dialect.name).replace(":w", str(int(window.id))))
    while rows := result.cursor.fetchmany(50_000):
        for mid, line in rows:
            by_merchant[mid].append(line)
    # Over every record line, merchant by merchant (each statement's lines in order).
    records_hash = hashlib.sha256()
    merchant_summaries = []
    for s in statements:
        m = merchants[s.merchant_id]
        if by_merchant[s.merchant_id]:
            records_hash.update(("\n".join(by_merchant[s.merchant_id]) + "\n").encode())
        csv_file = File(f"statement-{s.merchant_id}.csv", "text/csv",
                        "\n".join([",".join(STATEMENT_FIELDS), *by_merchant[s.merchant_id]])
                        + "\n")
        doc = {"window": window_info, "currency": CURRENCY,
               "merchant": {"id": m.id, "legal_name": m.legal_name, "tax_id": m.tax_id},
               "totals": totals_of(s), "records": len(by_merchant[s.merchant_id]),
               "records_csv_sha256": csv_file.sha256}
        json_file = File(f"statement-{s.merchant_id}.json", "application/json", _json(doc))
        out.files += [csv_file, json_file]
        out.statement_hashes[s.merchant_id] = (csv_file.sha256, json_file.sha256)
        merchant_summaries.append({"merchant_id": m.id, "legal_name": m.legal_name,
                                   **totals_of(s), "statement_csv_sha256": csv_file.sha256,
                                   "statement_json_sha256": json_file.sha256})
    # Clearing's own findings; a biller's later confirmation has its own file.
    exceptions = ctx.db.scalars(select(ClearingException).where(
        ClearingException.window_id == window.id,
        ClearingException.reason.not_like("remittance_%")))
    exc_rows = sorted(([x.reason, x.transaction_id or "", x.merchant_id or "", x.card_id or "",
                        "" if x.card_counter is None else x.card_counter, x.amount,
                        "yes" if x.paid else "no", x.detail] for x in exceptions),
                      key=lambda r: [str(v).zfill(20) for v in r])
    by_reason: dict[str, int] = {}
    for r in exc_rows:
        by_reason[str(r[0])] = by_reason.get(str(r[0]), 0) + 1
    exc_file = File("exceptions.csv", "text/csv", _csv(exc_rows, EXCEPTION_FIELDS))
    out.exceptions = len(exc_rows)
    grand = {k: sum(int(getattr(s, k)) for s in statements) for k in TOTAL_FIELDS
             if k != "fee_bps"}
    summary = {"window": window_info, "currency": CURRENCY,
               "records": {"count": sum(c["count"] for c in counts.values()),
                           "amount": sum(c["amount"] for c in counts.values()),
                           "by_kind_and_outcome": counts,
                           "sha256": records_hash.hexdigest()},
               "merchants": merchant_summaries, "totals": grand,
               "billers": [{"biller_id": r.biller_id, "bills": r.bills, "amount": r.amount,
                            "remittance_csv_sha256": r.files[0].sha256}
                           for r in billers or []],
               "exceptions": {"count": len(exc_rows), "by_reason": by_reason,
                              "file_sha256": exc_file.sha256}}
    summary_file = File("summary.json", "application/json", _json(summary))
    out.files += [exc_file, summary_file]
    out.summary_sha256 = summary_file.sha256
    return out


# --- billers' remittance files ----------------------------------------------------------------

REMITTANCE_FIELDS = ("bill_number", "account_number", "period", "amount", "channel", "paid_at")


@dataclass
class Remittance:
    biller_id: int
    merchant_id: int
    bills: int
    amount: int
    files: list[File]


def remittances(ctx: Ctx, window: ClearingWindow) -> list[Remittance]:
    """Per biller: every bill paid in the window, with amount, channel and time, and control
    totals (count, amount, per channel, the CSV's hash)."""
    rows = ctx.db.execute(select(BillPayment, Bill).join(Bill, Bill.id == BillPayment.bill_id)
                          .where(BillPayment.window_id == window.id)
                          .order_by(BillPayment.biller_id, BillPayment.id)).all()
    by_biller: dict[int, list[tuple[BillPayment, Bill]]] = {}
    for payment, bill in rows:
        by_biller.setdefault(payment.biller_id, []).append((payment, bill))
    out = []
    for biller_id, items in sorted(by_biller.items()):
        biller = ctx.db.get(Biller, biller_id)
        merchant = ctx.db.get(Merchant, biller.merchant_id) if biller else None
        assert biller is not None and merchant is not None  # noqa: S101
        csv_file = File(f"remittance-{biller.code}.csv", "text/csv", _csv(
            [[b.bill_number, b.account_number, b.period, p.amount, p.channel, taipei(p.paid_at)]
             for p, b in items], REMITTANCE_FIELDS))
        channels: dict[str, dict[str, int]] = {}
        for p, _ in items:
            c = channels.setdefault(p.channel, {"bills": 0, "amount": 0})
            c["bills"] += 1
            c["amount"] += p.amount
        total = sum(p.amount for p, _ in items)
        doc = {"window": {"business_date": window.business_date.isoformat(),
                          "boundary_at": taipei(window.boundary_at or window.cutoff_at)},
               "biller": {"id": biller.id, "code": biller.code, "legal_name": merchant.legal_name},
               "currency": CURRENCY, "bills": len(items), "amount": total,
               "by_channel": channels, "csv_sha256": csv_file.sha256}
        json_file = File(f"remittance-{biller.code}.json", "application/json", _json(doc))
        out.append(Remittance(biller.id, merchant.id, len(items), total, [csv_file, json_file]))
    return out


# --- the payout file -------------------------------------------------------------------------


def split_account(account: str) -> tuple[str, str]:
    """A Taiwan account as merchants give it: `bank code-account` (004-00011122233), or the
    digits alone with the 3-digit bank code first."""
    if "-" in account:
        bank, rest = account.split("-", 1)
    else:
        bank, rest = account[:3], account[3:]
    return bank, rest.replace("-", "")


def _agent(member_id: str) -> str:
    return (f"<FinInstnId><ClrSysMmbId><MmbId>{escape(member_id)}</MmbId></ClrSysMmbId>"
            "</FinInstnId>")


def _account(account_id: str) -> str:
    return f"<Id><Othr><Id>{escape(account_id)}</Id></Othr></Id>"


def payout_file(ctx: Ctx, window: ClearingWindow, statements: list[MerchantStatement],
                billers: Sequence[tuple[int, int, int]] = ()) -> File | None:
    """pain.001.001.09: one payment instruction from the county's account, one credit
    transfer per merchant with a positive net and per biller with a remittance (`billers`:
    biller id, its merchant id, amount). Its creation time is the window's boundary, so the
    same window always gives the same file."""
    paid = [(f"M{s.merchant_id}", s.merchant_id, s.payout) for s in statements if s.payout > 0]
    paid += [(f"B{b}", m, amount) for b, m, amount in billers if amount > 0]
    if not paid:
        return None
    st = ctx.settings
    day = window.business_date.isoformat()
    msg_id = f"KMC-{day}-W{window.id}"
    created = taipei(window.boundary_at or window.cutoff_at)
    total = sum(amount for _, _, amount in paid)
    execution = (window.business_date + dt.timedelta(days=1)).isoformat()
    txs = []
    for ref, merchant_id, amount in paid:
        m = ctx.db.get(Merchant, merchant_id)
        assert m is not None  # noqa: S101
        bank, account = split_account(ctx.keys.pii.decrypt("bank_account", m.bank_account_enc))
        what = "bills remitted" if ref.startswith("B") else "card sales"
        txs.append(
            "<CdtTrfTxInf>"
            f"<PmtId><InstrId>{msg_id}-{ref}</InstrId>"
            f"<EndToEndId>{msg_id}-{ref}</EndToEndId></PmtId>"
            f'<Amt><InstdAmt Ccy="{CURRENCY}">{amount}</InstdAmt></Amt>'
            f"<CdtrAgt>{_agent(bank)}</CdtrAgt>"
            f"<Cdtr><Nm>{escape(m.legal_name[:140])}</Nm>"
            f"<Id><OrgId><Othr><Id>{escape(m.tax_id)}</Id></Othr></OrgId></Id></Cdtr>"
            f"<CdtrAcct>{_account(account)}</CdtrAcct>"
            f"<RmtInf><Ustrd>Kinmen resident card {what} {day} {ref}</Ustrd>"
            "</RmtInf></CdtTrfTxInf>")
    xml = (
        '<?xml version="1.0" encoding="UTF-8"?>\n'
        f'<Document xmlns="{PAIN_NS}"><CstmrCdtTrfInitn>'
        f"<GrpHdr><MsgId>{msg_id}</MsgId><CreDtTm>{created}</CreDtTm>"
        f"<NbOfTxs>{len(paid)}</NbOfTxs><CtrlSum>{total}</CtrlSum>"
        f"<InitgPty><Nm>{escape(st.payout_debtor_name)}</Nm></InitgPty></GrpHdr>"
        f"<PmtInf><PmtInfId>{msg_id}-P1</PmtInfId><PmtMtd>TRF</PmtMtd>"
        f"<NbOfTxs>{len(paid)}</NbOfTxs><CtrlSum>{total}</CtrlSum>"
        f"<ReqdExctnDt><Dt>{execution}</Dt></ReqdExctnDt>"
        f"<Dbtr><Nm>{escape(st.payout_debtor_name)}</Nm></Dbtr>"
        f"<DbtrAcct>{_account(st.payout_debtor_account)}<Ccy>{CURRENCY}</Ccy></DbtrAcct>"
        f"<DbtrAgt>{_agent(st.payout_debtor_bank)}</DbtrAgt>"
        + "".join(txs) +
        "</PmtInf></CstmrCdtTrfInitn></Document>\n")
    return File("payout.xml", "application/xml", xml, personal=True)
