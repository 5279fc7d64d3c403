from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Path, Query
from fastapi.responses import JSONResponse

from cardsvc.audit import service as audit
from cardsvc.cards import chip, eligibility, service
from cardsvc.cards import purse as money
from cardsvc.cards import schemas as s
from cardsvc.cards.errors import Ineligible
from cardsvc.cards.models import Card, Product
from cardsvc.context import Ctx
from cardsvc.deps import CtxDep, IdempotencyKey, RuntimeDep, allow
from cardsvc.holders import service as holders
from cardsvc.idempotency.api import replayable
from cardsvc.idempotency.service import idempotent
from cardsvc.schemas_common import IdPath, IdQuery
from cardsvc.staff.roles import (
    CLERKS,
    READERS,
    SUPERVISORS,
)
from readers import protocol as p

router = APIRouter(prefix="/cards", tags=["cards"])
CardId = IdPath


def _money_responses() -> dict[int | str, dict[str, Any]]:
    return {409: {"description": "Idempotency key reused with another body, card not usable, "
                                 "insufficient funds or purse limit"}}




@router.get("/eligibility", response_model=s.EligibilityOut,
            dependencies=[Depends(allow(*CLERKS))],
            summary="Would this cardholder qualify for a product today? (names the rule)")
def check_eligibility(ctx: CtxDep, cardholder_id: IdQuery,
                      product: Product) -> s.EligibilityOut:
    holder = holders.get(ctx, cardholder_id)
    # The answer is drawn from age, registration and proofs: a read of the resident's data.
    audit.record(ctx, "cardholder.eligibility_read", target_type="cardholder",
                 target_id=cardholder_id, detail={"product": product.value})
    try:
        d = eligibility.decide(ctx, holder, product, ctx.today)
    except Ineligible as exc:
        return s.EligibilityOut(eligible=False, product=product.value, rule=exc.rule,
                              detail=exc.detail)
    return s.EligibilityOut(eligible=True, product=product.value, concession=d.concession.value,
                          expires_on=d.expires_on, basis=d.basis)


@router.post("/applications", response_model=s.CardOut, status_code=201,
             dependencies=[Depends(allow(*CLERKS))],
             summary="Apply for a card; eligibility is checked now and again at issuance")
def apply(body: s.CardApplication, ctx: CtxDep) -> s.CardOut:
    return service.card_out(service.apply(ctx, body))


@router.get("/by-number/{card_number}", response_model=s.CardOut,
            dependencies=[Depends(allow(*READERS))])
def by_number(card_number: Annotated[str, Path(pattern=r"^[0-9]{16}$")],
              ctx: CtxDep) -> s.CardOut:
    return _read(ctx, service.by_number(ctx, card_number))


@router.get("/{card_id:int}", response_model=s.CardOut, dependencies=[Depends(allow(*READERS))])
def get_card(card_id: CardId, ctx: CtxDep) -> s.CardOut:
    return _read(ctx, service.get(ctx, card_id))


def _read(ctx: Ctx, card: Card) -> s.CardOut:
    """A card as the API shows it: whose it is, so the read is in the holder's access log."""
    audit.record(ctx, "card.read", target_type="cardholder", target_id=card.cardholder_id,
                 detail={"card_id": card.id})
    return service.card_out(card)


@router.get("/{card_id:int}/events", response_model=list[s.CardEventOut],
            dependencies=[Depends(allow(*READERS))], summary="Lifecycle history: who, when, why")
def card_events(card_id: CardId, ctx: CtxDep) -> list[s.CardEventOut]:
    found = [s.CardEventOut.model_validate(e) for e in service.events(ctx, card_id)]
    audit.record(ctx, "card.history_read", target_type="cardholder",
                 target_id=service.get(ctx, card_id).cardholder_id, detail={"card_id": card_id})
    return found


@router.post("/{card_id:int}/issue", response_model=s.CardOut,
             dependencies=[Depends(allow(*CLERKS))],
             summary="Issue: personalise a blank chip on the counter reader (or bind a bureau "
                     "chip's UID); eligibility re-checked on the issue date")
def issue(card_id: CardId, body: s.IssueRequest, ctx: CtxDep, rt: RuntimeDep) -> s.CardOut:
    return service.card_out(chip.issue(ctx, card_id, body.chip_uid, rt.counter))


@router.post("/{card_id:int}/activate", response_model=s.CardOut,
             dependencies=[Depends(allow(*CLERKS))], summary="Hand the card over: active")
def activate(card_id: CardId, ctx: CtxDep) -> s.CardOut:
    return service.card_out(service.simple_transition(ctx, card_id, "activate",
                                                      "handed over at the counter"))


@router.post("/{card_id:int}/suspend", response_model=s.CardOut,
             dependencies=[Depends(allow(*CLERKS))], summary="Report lost or stolen")
def suspend(card_id: CardId, body: s.SuspendRequest, ctx: CtxDep) -> s.CardOut:
    return service.card_out(service.simple_transition(ctx, card_id, "suspend",
                                                      f"{body.kind}: {body.reason}"))


@router.post("/{card_id:int}/reinstate", response_model=s.CardOut,
             dependencies=[Depends(allow(*CLERKS))], summary="A lost card was found")
def reinstate(card_id: CardId, body: s.ReasonRequest, ctx: CtxDep) -> s.CardOut:
    return service.card_out(service.simple_transition(ctx, card_id, "reinstate", body.reason))


@router.post("/{card_id:int}/block", response_model=s.CardOut,
             dependencies=[Depends(allow(*SUPERVISORS))])
def block(card_id: CardId, body: s.ReasonRequest, ctx: CtxDep) -> s.CardOut:
    return service.card_out(service.simple_transition(ctx, card_id, "block", body.reason))


@router.post("/{card_id:int}/unblock", response_model=s.CardOut,
             dependencies=[Depends(allow(*SUPERVISORS))])
def unblock(card_id: CardId, body: s.ReasonRequest, ctx: CtxDep) -> s.CardOut:
    return service.card_out(service.simple_transition(ctx, card_id, "unblock", body.reason))


@router.post("/{card_id:int}/replace", response_model=s.ReplaceResult,
             dependencies=[Depends(allow(*CLERKS))], responses=_money_responses(),
             summary="Replace or renew: new card, balance carried over, optional fee")
def replace(card_id: CardId, body: s.ReplaceRequest, ctx: CtxDep, rt: RuntimeDep,
            idempotency_key: IdempotencyKey) -> JSONResponse:
    return replayable(chip.counter_replace(ctx, card_id, body, idempotency_key, rt.counter))


@router.post("/{card_id:int}/close", response_model=s.CloseResult,
             dependencies=[Depends(allow(*CLERKS))], responses=_money_responses(),
             summary="Close the card and refund its balance in cash")
def close(card_id: CardId, body: s.CloseRequest, ctx: CtxDep,
          idempotency_key: IdempotencyKey) -> JSONResponse:
    return replayable(idempotent(
        ctx, idempotency_key, "card.close", {"card_id": card_id, **body.model_dump()},
        lambda: service.close(ctx, card_id, body)))


@router.get("/{card_id:int}/purse", response_model=s.PurseOut,
            dependencies=[Depends(allow(*READERS))])
def purse(card_id: CardId, ctx: CtxDep,
          limit: Annotated[int, Query(ge=1, le=200)] = 20) -> s.PurseOut:
    found = money.purse(ctx, card_id, limit)
    audit.record(ctx, "card.purse_read", target_type="cardholder",
                 target_id=service.get(ctx, card_id).cardholder_id, detail={"card_id": card_id})
    return found


@router.post("/{card_id:int}/topups", response_model=s.MoneyResult,
             dependencies=[Depends(allow(*CLERKS))], responses=_money_responses(),
             summary="Cash top-up at the counter")
def topup(card_id: CardId, body: s.TopUpRequest, ctx: CtxDep, rt: RuntimeDep,
          idempotency_key: IdempotencyKey) -> JSONResponse:
    return replayable(chip.counter_topup(ctx, card_id, body, idempotency_key, rt.counter))


@router.get("/{card_id:int}/card-loads", response_model=list[s.CardLoadOut],
            dependencies=[Depends(allow(*READERS))],
            summary="Value authorised for the chip, and whether it reached it")
def card_loads(card_id: CardId, ctx: CtxDep) -> list[s.CardLoadOut]:
    audit.record(ctx, "card.loads_read", target_type="cardholder",
                 target_id=service.get(ctx, card_id).cardholder_id, detail={"card_id": card_id})
    return [s.CardLoadOut(load_id=ld.id, amount=ld.amount, status=ld.status,
                          card_balance=ld.card_balance, card_counter=ld.card_counter)
            for ld in chip.loads_of(ctx, card_id)]


@router.post("/{card_id:int}/card-loads/deliver", response_model=list[s.CardLoadOut],
             dependencies=[Depends(allow(*CLERKS))],
             summary="Card on the reader: load every pending value onto the chip")
def deliver(card_id: CardId, ctx: CtxDep, rt: RuntimeDep) -> list[s.CardLoadOut]:
    return [s.CardLoadOut(**o.__dict__)
            for o in chip.deliver_loads(ctx, card_id, rt.counter, commit=ctx.db.commit)]


@router.post("/{card_id:int}/card-loads/{load_id:int}/resolve", response_model=s.LoadResolved,
             dependencies=[Depends(allow(*SUPERVISORS))],
             responses={409: {"description": "`load_not_in_review`: only a load in review "
                                             "is resolved; `insufficient_funds`: the purse no "
                                             "longer holds the value to refund"}},
             summary="Resolve a load in review: on the chip after all, or refunded in cash")
def resolve_load(card_id: CardId, load_id: IdPath, body: s.LoadResolution, ctx: CtxDep,
                 idempotency_key: IdempotencyKey) -> JSONResponse:
    return replayable(idempotent(
        ctx, idempotency_key, "card.load_resolve",
        {"card_id": card_id, "load_id": load_id, **body.model_dump()},
        lambda: chip.resolve_load(ctx, card_id, load_id, body)))


@router.post("/{card_id:int}/certificates/verify", response_model=s.CertificateResult,
             dependencies=[Depends(allow(*READERS))],
             summary="Check a transaction certificate the card produced (disputes, audits)")
def verify_certificate(card_id: CardId, body: s.CertificateCheck,
                       ctx: CtxDep) -> s.CertificateResult:
    record = p.TxRecord(p.TxType.DEBIT if body.tx_type == "debit" else p.TxType.LOAD,
                        body.counter, body.amount, body.balance_after, body.terminal_id,
                        body.terminal_seq, body.time, bytes.fromhex(body.certificate))
    return s.CertificateResult(valid=chip.verify_certificate(ctx, card_id, record))


@router.post("/{card_id:int}/charges", response_model=s.MoneyResult,
             dependencies=[Depends(allow(*CLERKS))], responses=_money_responses(),
             summary="Pay a county fee from the purse at the counter (online debit)")
def charge(card_id: CardId, body: s.ChargeRequest, ctx: CtxDep,
           idempotency_key: IdempotencyKey) -> JSONResponse:
    return replayable(idempotent(
        ctx, idempotency_key, "purse.charge", {"card_id": card_id, **body.model_dump()},
        lambda: money.charge(ctx, card_id, body)))
