"""Invoices a terminal issued, reported onto the card's e-invoice carrier (cardsvc.einvoice).

An invoice is its own signed request, after the purchase: the purchase path (and its fast
path) never waits for one."""

from __future__ import annotations

import datetime as dt

from cardsvc.context import Ctx
from cardsvc.einvoice import schemas as es
from cardsvc.einvoice import service as einvoice
from cardsvc.einvoice.errors import UnknownPurchase
from cardsvc.errors import DomainError
from merchants.pos import schemas as ps
from merchants.pos.models import SALE_KINDS, PosStatus, PosTransaction
from merchants.registry.models import Merchant, Terminal


def _merchant(ctx: Ctx, terminal: Terminal) -> Merchant:
    merchant = ctx.db.get(Merchant, terminal.merchant_id)
    assert merchant is not None  # noqa: S101 - a terminal has its merchant
    return merchant


def report(ctx: Ctx, terminal: Terminal, data: es.InvoiceReport) -> es.InvoiceOut:
    t = ctx.db.get(PosTransaction, data.transaction_id)
    if (t is None or t.merchant_id != terminal.merchant_id or t.kind not in SALE_KINDS
            or t.status != PosStatus.ACCEPTED or t.card_id is None):
        raise UnknownPurchase(f"this merchant has no accepted purchase {data.transaction_id}")
    merchant = _merchant(ctx, terminal)
    purchase = einvoice.Purchase(transaction_id=t.id, card_id=t.card_id,
                                 merchant_id=merchant.id, seller_tax_id=merchant.tax_id,
                                 amount=t.amount, at=t.created_at)
    return einvoice.invoice_out(ctx, einvoice.record(ctx, purchase, data))


def void(ctx: Ctx, terminal: Terminal, data: es.InvoiceVoid) -> es.InvoiceOut:
    return einvoice.invoice_out(ctx, einvoice.void(ctx, terminal.merchant_id, data))


def allowance(ctx: Ctx, terminal: Terminal, data: es.AllowanceRequest) -> es.InvoiceOut:
    return einvoice.invoice_out(ctx, einvoice.allowance(ctx, terminal.merchant_id, data))


def from_batch(ctx: Ctx, terminal: Terminal, records: list[ps.OfflineRecord],
               transaction_ids: list[int], cards: dict[str, int]
               ) -> tuple[int, list[ps.InvoiceRefused]]:
    """The invoices an offline terminal issued, put onto the cards' carriers with their
    records. A bad invoice is refused on its own: its record stands."""
    merchant = _merchant(ctx, terminal)
    issued, refused = 0, []
    for record, transaction_id in zip(records, transaction_ids, strict=True):
        if record.invoice is None:
            continue
        card_id = cards.get(record.card_number)
        try:
            if card_id is None:
                raise UnknownPurchase("no card with this number")
            purchase = einvoice.Purchase(
                transaction_id=transaction_id, card_id=card_id, merchant_id=merchant.id,
                seller_tax_id=merchant.tax_id, amount=record.amount,
                at=dt.datetime.fromtimestamp(record.time, dt.UTC))
            with ctx.db.begin_nested():
                einvoice.record(ctx, purchase, es.InvoiceReport(
                    transaction_id=transaction_id, amount=record.amount,
                    **record.invoice.model_dump()))
            issued += 1
        except DomainError as exc:
            refused.append(ps.InvoiceRefused(terminal_seq=record.terminal_seq, code=exc.code,
                                             detail=exc.detail))
    return issued, refused
