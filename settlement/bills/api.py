"""HTTP routes of the biller side: billers, bill import, look-up, payment, slips, receipts."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Body, Depends, Query, Response
from fastapi.responses import JSONResponse
from pydantic import Field
from sqlalchemy import select

from cardsvc.context import Actor, Ctx
from cardsvc.deps import DB, PUBLIC, CtxDep, IdempotencyKey, RuntimeDep, allow
from cardsvc.errors import NotFound
from cardsvc.idempotency.api import replayable
from cardsvc.idempotency.service import idempotent
from cardsvc.schemas_common import MAX_ID, IdPath, IsoDate
from cardsvc.staff.roles import (
    CLERKS,
    MANAGERS,
    VIEWERS,
)
from merchants.pos.api import PosCtx, pos_idempotency_key, terminal_of
from merchants.pos.schemas import CardPurchase
from merchants.registry.qr import render_qr
from settlement.bills import barcodes
from settlement.bills import service as bills
from settlement.bills.models import Bill, BillPayment
from settlement.bills.reconcile import reconcile
from settlement.bills.schemas import (
    BillerCreate,
    BillerOut,
    BillOut,
    CollectIn,
    ImportOut,
    OnlinePayIn,
    PayIn,
    PaymentOut,
    PosBillPayment,
    ReceiptCheck,
    ReconciliationOut,
    SlipIn,
)

router = APIRouter(tags=["bills"])
pos_bills_router = APIRouter(prefix="/pos/v1", tags=["POS API"])
public_router = APIRouter(tags=["bills"])
# Routes that take a file (CSV): staff may send more than the API's usual body limit.
UPLOAD_PATHS = ("/billers/{biller_id}/bills/import", "/billers/{biller_id}/confirmations")























def _public_ctx(rt: RuntimeDep, db: DB) -> Ctx:
    return rt.ctx(db, Actor.system("public"))


def bill_out(b: Bill) -> BillOut:
    return BillOut(id=b.id, biller_id=b.biller_id, account_number=b.account_number,
                   bill_number=b.bill_number, period=b.period, amount=b.amount,
                   due_date=b.due_date, payer_name_masked=b.payer_name_masked,
                   status=b.status, barcodes=[b.segment1, b.bill_number, b.segment3])


def payment_out(paid: bills.Paid) -> PaymentOut:
    p = paid.payment
    return PaymentOut(payment_id=p.id, bill_id=p.bill_id, bill_number=paid.bill.bill_number,
                      amount=p.amount, channel=p.channel, paid_at=p.paid_at,
                      receipt=paid.receipt, purse_balance=paid.balance)


@router.post("/billers", response_model=BillerOut, status_code=201,
             dependencies=[Depends(allow(*MANAGERS))], summary="Make a merchant a biller")
def create_biller(body: BillerCreate, ctx: CtxDep) -> BillerOut:
    b = bills.create_biller(ctx, body.merchant_id, body.code, body.collection_code,
                            body.grace_days)
    return BillerOut.model_validate(b, from_attributes=True)


@router.post("/billers/{biller_id:int}/bills/import", response_model=ImportOut,
             dependencies=[Depends(allow(*MANAGERS))],
             responses={422: {"description": "bill_import_refused: every error with its line "
                                             "number in `errors`; nothing was imported"}},
             summary="Import bills from CSV (account_number, bill_number, period, amount, "
                     "due_date, payer_name)")
def import_bills(biller_id: IdPath, ctx: CtxDep,
                 content: Annotated[bytes, Body(media_type="text/csv", min_length=1)]
                 ) -> ImportOut:
    r = bills.import_bills(ctx, biller_id, content)
    return ImportOut(import_id=r.import_id, rows=r.rows, amount=r.amount, duplicate=r.duplicate)


@router.get("/bills", response_model=list[BillOut], dependencies=[Depends(allow(*VIEWERS))],
            summary="Bills of a water account")
def find_bills(ctx: CtxDep,
               account_number: Annotated[str, Query(min_length=4, max_length=20)],
               biller_id: Annotated[int | None, Query(gt=0, le=MAX_ID)] = None
               ) -> list[BillOut]:
    return [bill_out(b) for b in bills.by_account(ctx, account_number, biller_id)]


@router.post("/bills/lookup", response_model=BillOut, dependencies=[Depends(allow(*VIEWERS))],
             responses={422: {"description": "bad_barcode: `segment` names the wrong one"}},
             summary="The bill of a scanned payment slip")
def lookup(body: SlipIn, ctx: CtxDep) -> BillOut:
    return bill_out(bills.by_barcodes(ctx, body.segment1, body.segment2, body.segment3))


@router.get("/bills/{bill_id:int}", response_model=BillOut, dependencies=[Depends(allow(*VIEWERS))])
def get_bill(bill_id: IdPath, ctx: CtxDep) -> BillOut:
    return bill_out(bills.get_bill(ctx, bill_id))


@router.get("/bills/{bill_id:int}/barcode-{segment}.svg", dependencies=[Depends(allow(*VIEWERS))],
            response_class=Response, summary="A slip barcode (Code 39) for printing")
def barcode_svg(bill_id: IdPath, segment: Annotated[int, Field(ge=1, le=3)],
                ctx: CtxDep) -> Response:
    b = bills.get_bill(ctx, bill_id)
    value = (b.segment1, b.bill_number, b.segment3)[segment - 1]
    return Response(barcodes.svg(value), media_type="image/svg+xml")


@router.post("/bills/{bill_id:int}/payments", response_model=PaymentOut,
             dependencies=[Depends(allow(*CLERKS))],
             responses={409: {"description": "bill_already_paid, bill_overdue, "
                                             "insufficient_funds, chip_purse"},
                        422: {"description": "partial_payment"}},
             summary="Pay a bill from an account-held purse (counter or online)")
def pay(bill_id: IdPath, body: PayIn, ctx: CtxDep,
        idempotency_key: IdempotencyKey) -> JSONResponse:
    return replayable(idempotent(
        ctx, idempotency_key, "bills.pay", {"bill": bill_id, **body.model_dump()},
        lambda: payment_out(bills.pay_from_purse(ctx, bill_id, body.card_id, body.channel,
                                                 body.amount))))


@public_router.post("/bills/{bill_id:int}/pay-online", response_model=PaymentOut,
                    dependencies=[Depends(PUBLIC)],
                    responses={409: {"description": "bill_already_paid, bill_overdue, "
                                                    "qr_token_spent, qr_token_expired, "
                                                    "insufficient_funds"},
                               422: {"description": "qr_token_invalid"}},
                    summary="A resident pays a bill with the mobile card (no login: the "
                            "phone-signed payment token authorises it)")
def pay_online(bill_id: IdPath, body: OnlinePayIn,
               ctx: Annotated[Ctx, Depends(_public_ctx)],
               idempotency_key: IdempotencyKey) -> JSONResponse:
    return replayable(idempotent(
        ctx, idempotency_key, "bills.pay_online", {"bill": bill_id, **body.model_dump()},
        lambda: payment_out(bills.pay_online(ctx, bill_id, body.token))))


@router.get("/bills/{bill_id:int}/receipt.png", dependencies=[Depends(allow(*VIEWERS))],
            response_class=Response, summary="The payment receipt as a QR code")
def receipt_png(bill_id: IdPath, ctx: CtxDep) -> Response:

    bill = bills.get_bill(ctx, bill_id)
    payment = ctx.db.scalar(select(BillPayment).where(BillPayment.bill_id == bill.id))
    if payment is None:
        raise NotFound(f"bill {bill.bill_number} is not paid")
    token = bills.receipt_token(ctx, payment, bill)
    return Response(render_qr(f"kinmencard://receipt/{token}", "png"), media_type="image/png")


@public_router.get("/receipts/verify", response_model=ReceiptCheck,
                   dependencies=[Depends(PUBLIC)],
                   summary="Check a bill receipt (anyone; no login)")
def verify_receipt(receipt: Annotated[str, Query(max_length=400)],
                   ctx: Annotated[Ctx, Depends(_public_ctx)]) -> ReceiptCheck:
    return bills.verify_receipt(ctx, receipt)


@pos_bills_router.post("/bills/lookup", response_model=BillOut,
                       responses={422: {"description": "bad_barcode"}},
                       summary="The bill of a scanned slip: check it before debiting the card")
def pos_lookup(body: SlipIn, ctx: PosCtx) -> BillOut:
    return bill_out(bills.by_barcodes(ctx, body.segment1, body.segment2, body.segment3))


@pos_bills_router.post("/bill-payments", response_model=PaymentOut,
                       responses={409: {"description": "bill_already_paid, bill_overdue, "
                                                       "card_hotlisted, replayed_certificate"},
                                  422: {"description": "bad_barcode, partial_payment, "
                                                       "bad_certificate"}},
                       summary="A bill paid with a chip card at the terminal")
def pos_pay(body: PosBillPayment, ctx: PosCtx,
            idempotency_key: IdempotencyKey) -> JSONResponse:
    terminal = terminal_of(ctx)
    debit = CardPurchase.model_validate(body.model_dump(exclude={"segment1", "segment2",
                                                                 "segment3"}))

    def work() -> Any:
        bill = bills.by_barcodes(ctx, body.segment1, body.segment2, body.segment3)
        return payment_out(bills.pay_at_pos(ctx, terminal, bill, debit, idempotency_key or ""))

    return replayable(idempotent(ctx, pos_idempotency_key(ctx, idempotency_key), "pos.bill_payment",
                                 body.model_dump(), work))


@pos_bills_router.post("/bill-collections", response_model=PaymentOut,
                       responses={409: {"description": "bill_already_paid, bill_overdue"},
                                  422: {"description": "bad_barcode, partial_payment"}},
                       summary="Cash taken against a payment slip (convenience stores)")
def collect(body: CollectIn, ctx: PosCtx,
            idempotency_key: IdempotencyKey) -> JSONResponse:
    terminal = terminal_of(ctx)

    def work() -> Any:
        bill = bills.by_barcodes(ctx, body.segment1, body.segment2, body.segment3)
        return payment_out(bills.collect_cash(ctx, terminal.merchant_id, bill, body.amount))

    return replayable(idempotent(ctx, pos_idempotency_key(ctx, idempotency_key),
                                 "pos.bill_collection", body.model_dump(), work))




@router.post("/billers/{biller_id:int}/confirmations", response_model=ReconciliationOut,
             dependencies=[Depends(allow(*MANAGERS))],
             responses={409: {"description": "window_not_ready"},
                        422: {"description": "confirmation_refused"}},
             summary="Reconcile the biller's confirmation file (CSV: bill_number, amount) "
                     "with a window's remittance; differences go to the exceptions report")
def confirm(biller_id: IdPath, ctx: CtxDep,
            date: Annotated[IsoDate, Query(description="The window's business day")],
            content: Annotated[bytes, Body(media_type="text/csv", min_length=1)]
            ) -> ReconciliationOut:
    r = reconcile(ctx, date, biller_id, content)
    return ReconciliationOut(matched=r.matched, missing=r.missing, extra=r.extra,
                             amount_differs=r.amount_differs, duplicate=r.duplicate)
