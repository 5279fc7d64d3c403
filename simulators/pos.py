"""A simulated POS terminal: what a shop's card terminal does, against the real signed POS API.

Before it debits a card it refuses cards on its hotlist, expired cards and amounts over the
per-purchase limit; then it debits the chip through its reader (readers.session) and submits
the card's certificate online, or keeps it for the next batch upload when it is offline. Its
transaction sequence number is kept in a state file, so a tap repeated after a tear reuses it.

With an invoice book (the 字軌 and number range the tax platform assigned the shop) it issues
an e-invoice for every purchase onto the card's carrier, as a shop in Taiwan must: reported
on its own signed request after an accepted online purchase, or inside the offline record it
belongs to. A number is spent (kept in the state file, per book) before it is printed or
sent, and an invoice whose report did not get through is kept and reported again before the
next purchase or upload.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import re
import secrets
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import httpx

from merchants.pos.client import PosClient
from readers.base import Reader
from readers.errors import CardError, ProtocolError
from readers.protocol import KeyPurpose
from readers.session import AuthResult, CardSession

# Answers that say "not now" rather than "no": the report is kept and sent again.
RETRY_LATER = frozenset({401, 408, 425, 429})


class TerminalRefusal(Exception):
    """The terminal itself refused the tap, before touching the card's purse."""

    def __init__(self, code: str, detail: str) -> None:
        super().__init__(detail)
        self.code = code


@dataclass
class TapResult:
    status: str  # accepted | rejected | stored (offline)
    amount: int
    card_number: str
    response: dict[str, Any] | None = None
    record: dict[str, Any] | None = None
    invoice: dict[str, Any] | None = None  # the e-invoice issued for the purchase
    # The API's answer to its report (online); None while it waits to be reported again.
    invoice_response: dict[str, Any] | None = None


@dataclass(frozen=True)
class InvoiceBook:
    """The invoice numbers a shop may issue: two letters (字軌) and a range of eight-digit
    numbers, as the tax platform assigned them, and the shop's 統一編號."""

    seller_tax_id: str
    track: str
    first: int
    last: int
    zone: str = "Asia/Taipei"  # the invoice date is the shop's own

    def __post_init__(self) -> None:
        if not re.fullmatch(r"[0-9]{8}", self.seller_tax_id):
            raise ValueError("the seller's 統一編號 is eight digits")
        if not re.fullmatch(r"[A-Z]{2}", self.track):
            raise ValueError("the track (字軌) is two upper-case letters")
        if not 0 <= self.first <= self.last <= 99_999_999:
            raise ValueError("the numbers are a range of eight-digit numbers")

    @property
    def key(self) -> str:
        return f"{self.seller_tax_id}:{self.track}{self.first:08d}-{self.last:08d}"

    @classmethod
    def from_profile(cls, data: dict[str, Any]) -> InvoiceBook:
        return cls(str(data["seller_tax_id"]), str(data["track"]), int(data["first"]),
                   int(data["last"]))


@dataclass
class SimulatedPos:
    client: PosClient
    terminal_id: int
    debit_masters: dict[int, bytes]  # all the card keys a terminal holds
    system_id: bytes
    purchase_limit: int = 1_000
    state_file: Path | None = None
    hotlist: set[str] = field(default_factory=set)
    hotlist_version: int = 0
    seq: int = 0
    offline: list[dict[str, Any]] = field(default_factory=list)
    invoice_book: InvoiceBook | None = None
    invoice_next: dict[str, int] = field(default_factory=dict)  # next number, by book
    unreported: list[dict[str, Any]] = field(default_factory=list)  # invoice reports to retry

    def __post_init__(self) -> None:
        if self.state_file is not None and Path(self.state_file).exists():
            self._restore(json.loads(Path(self.state_file).read_text()))

    def _restore(self, data: dict[str, Any]) -> None:
        self.seq = data["seq"]
        self.hotlist = set(data["hotlist"])
        self.hotlist_version = data["hotlist_version"]
        self.offline = data["offline"]
        self.invoice_next = data.get("invoice_next", {})
        self.unreported = data.get("unreported", [])

    def _state(self) -> dict[str, Any]:
        return {"seq": self.seq, "hotlist": sorted(self.hotlist),
                "hotlist_version": self.hotlist_version, "offline": self.offline,
                "invoice_next": self.invoice_next, "unreported": self.unreported}

    def _next_number(self, book: InvoiceBook) -> int:
        return self.invoice_next.get(book.key, book.first)

    def _check_invoice_left(self) -> None:
        book = self.invoice_book
        if book is not None and self._next_number(book) > book.last:
            raise TerminalRefusal("invoice_book_used_up",
                                  f"no invoice numbers left after {book.track}{book.last:08d}")

    def _issue_invoice(self, when: int) -> dict[str, Any] | None:
        """The next invoice of the book (the tap checked one is left), dated the purchase's
        day where the shop is; None without a book. Its number is spent in the state the
        caller saves with where the invoice went, before it is printed or sent."""
        book = self.invoice_book
        if book is None:
            return None
        number = self._next_number(book)
        self.invoice_next[book.key] = number + 1
        day = dt.datetime.fromtimestamp(when, ZoneInfo(book.zone)).date()
        return {"invoice_number": f"{book.track}{number:08d}",
                "invoice_date": day.isoformat(),
                "random_code": f"{secrets.randbelow(10_000):04d}",
                "seller_tax_id": book.seller_tax_id}

    def _save(self) -> None:
        if self.state_file is None:
            return
        tmp = Path(f"{self.state_file}.tmp")
        tmp.write_text(json.dumps(self._state()))
        os.replace(tmp, self.state_file)

    def refresh_hotlist(self) -> int:
        """Fetch the deltas since the version held; return how many entries came."""
        n = 0
        while True:
            r = self.client.request("GET", f"/pos/v1/hotlist?since={self.hotlist_version}")
            r.raise_for_status()
            body = r.json()
            for entry in body["entries"]:
                if entry["action"] == "add":
                    self.hotlist.add(entry["card_number"])
                else:
                    self.hotlist.discard(entry["card_number"])
                n += 1
            self.hotlist_version = body["version"]
            if not body["more"]:
                break
        self._save()
        return n

    def open_card(self, reader: Reader, today: dt.date) -> tuple[CardSession, AuthResult, str]:
        """SELECT and authenticate with the debit key; refuse what the terminal itself must
        (not an issued card, hotlisted, expired) before anything touches the purse."""
        session = CardSession(reader, self.system_id)
        session.select()
        auth = session.authenticate_with_master(KeyPurpose.DEBIT, self.debit_masters)
        if auth.info is None:
            raise TerminalRefusal("unknown_card", "not an issued card")
        number = auth.info.card_number
        if number in self.hotlist:
            raise TerminalRefusal("card_hotlisted", f"card {number} is on the hotlist")
        if auth.info.expires_on < today:
            raise TerminalRefusal("card_expired", f"card expired on {auth.info.expires_on}")
        return session, auth, number

    def tap(self, reader: Reader, amount: int, *, online: bool = True,
            today: dt.date | None = None) -> TapResult:
        if not 0 < amount <= self.purchase_limit:
            raise TerminalRefusal("amount_over_limit",
                                  f"a purchase is at most NT${self.purchase_limit}")
        self._check_invoice_left()  # a sale the shop cannot invoice is not made
        if online:
            self.report_invoices()  # what the line lost before goes first
        session, _auth, number = self.open_card(reader, today or dt.date.today())
        self.seq += 1
        self._save()  # the sequence number is spent before the card sees it
        when = int(dt.datetime.now(dt.UTC).timestamp())
        try:
            result = session.debit(amount, self.terminal_id, self.seq, when)
        except CardError as exc:
            raise TerminalRefusal(f"card_{exc.sw:04X}", str(exc)) from None
        except ProtocolError as exc:
            raise TerminalRefusal("card_protocol", str(exc)) from None
        rec = result.record
        record = {"card_number": number, "chip_uid": session.uid.hex().upper(),
                  "amount": rec.amount, "card_counter": rec.counter,
                  "balance_after": rec.balance_after, "terminal_seq": rec.terminal_seq,
                  "time": rec.time, "certificate": rec.certificate.hex()}
        if not online:
            invoice = self._issue_invoice(when)
            if invoice is not None:
                record["invoice"] = invoice
            self.offline.append(record)
            self._save()
            return TapResult("stored", amount, number, record=record, invoice=invoice)
        r = self.client.request("POST", "/pos/v1/purchases", record,
                                idempotency_key=f"tap-t{self.terminal_id}-s{self.seq:010d}")
        body = r.json()
        if r.status_code != 200:
            return TapResult("rejected", amount, number, response=body, record=record)
        invoice = self._issue_invoice(when)
        if invoice is None:
            return TapResult("accepted", amount, number, response=body, record=record)
        self.unreported.append({**invoice, "transaction_id": body["transaction_id"],
                                "amount": amount})
        self._save()
        answers = self.report_invoices()
        return TapResult("accepted", amount, number, response=body, record=record,
                         invoice=invoice, invoice_response=answers.get(invoice["invoice_number"]))

    def report_invoices(self) -> dict[str, dict[str, Any]]:
        """Report the invoices issued online and not yet reported, oldest first; each that
        gets an answer (accepted or refused) is done, the rest wait for the next try. Safe to
        repeat: an invoice's report has a key of its own."""
        answers: dict[str, dict[str, Any]] = {}
        while self.unreported:
            report = self.unreported[0]
            try:
                r = self.client.request("POST", "/pos/v1/invoices", report,
                                        idempotency_key=f"inv-t{self.terminal_id}-"
                                                        f"{report['invoice_number']}")
            except httpx.TransportError:
                break
            if r.status_code >= 500 or r.status_code in RETRY_LATER:
                break
            answers[report["invoice_number"]] = r.json()
            self.unreported.pop(0)
            self._save()
        return answers

    def upload_offline(self) -> dict[str, Any] | None:
        """Send the stored records as one batch; safe to repeat (the batch ref is fixed)."""
        self.report_invoices()
        if not self.offline:
            return None
        ref = f"t{self.terminal_id}-{self.offline[0]['terminal_seq']}-" \
              f"{self.offline[-1]['terminal_seq']}"
        r = self.client.request("POST", "/pos/v1/batches",
                                {"batch_ref": ref, "records": self.offline})
        r.raise_for_status()
        self.offline = []
        self._save()
        body: dict[str, Any] = r.json()
        return body

    def qr_purchase(self, token: str, amount: int) -> dict[str, Any]:
        r = self.client.request("POST", "/pos/v1/qr-purchases",
                                {"token": token, "amount": amount},
                                idempotency_key=f"qr-{uuid.uuid4()}")
        body: dict[str, Any] = r.json()
        return body

    def refund(self, transaction_id: int, amount: int) -> dict[str, Any]:
        r = self.client.request("POST", "/pos/v1/refunds",
                                {"original_transaction_id": transaction_id, "amount": amount},
                                idempotency_key=f"rf-{uuid.uuid4()}")
        body: dict[str, Any] = r.json()
        return body
