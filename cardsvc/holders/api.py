from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Query

from cardsvc.audit import service as audit
from cardsvc.cards import profiles
from cardsvc.cards import schemas as card_schemas
from cardsvc.cards import service as cards
from cardsvc.deps import CtxDep, allow
from cardsvc.holders import schemas, service
from cardsvc.holders.models import Employment, Enrolment
from cardsvc.schemas_common import IdPath, Purpose
from cardsvc.staff.roles import CLERKS, READERS

router = APIRouter(prefix="/cardholders", tags=["cardholders"])
PurposeQ = Annotated[Purpose, Query(description="Why you read this record (audited)")]


@router.post("", response_model=schemas.CardholderSummary, status_code=201,
             dependencies=[Depends(allow(*CLERKS))],
             summary="Register a resident")
def register(body: schemas.CardholderCreate, ctx: CtxDep) -> schemas.CardholderSummary:
    return service.summary(ctx, service.register(ctx, body))


@router.post("/search", response_model=list[schemas.CardholderSummary],
             dependencies=[Depends(allow(*READERS))],
             summary="Find cardholders by national ID or name (masked results)",
             description="A POST so the national ID travels in the body, never in a URL that "
                         "proxies and access logs keep.")
def search(body: schemas.CardholderSearch, ctx: CtxDep) -> list[schemas.CardholderSummary]:
    return service.search(ctx, body.purpose, body.person_id, body.name, body.limit)


@router.get("/{holder_id:int}", response_model=schemas.CardholderOut,
            dependencies=[Depends(allow(*READERS))],
            summary="Read a whole cardholder record for a stated purpose (audited)")
def read(holder_id: IdPath, ctx: CtxDep, purpose: PurposeQ,
         reveal: Annotated[bool, Query(description="Return the full national ID "
                                       "(clerk and supervisor only)")] = False,
         ) -> schemas.CardholderOut:
    return service.read_full(ctx, holder_id, purpose, reveal)


@router.patch("/{holder_id:int}", response_model=schemas.CardholderSummary,
              dependencies=[Depends(allow(*CLERKS))])
def update(holder_id: IdPath, body: schemas.CardholderUpdate,
           ctx: CtxDep) -> schemas.CardholderSummary:
    return service.summary(ctx, service.update(ctx, holder_id, body))


@router.post("/{holder_id:int}/enrolments", response_model=schemas.EnrolmentOut, status_code=201,
             dependencies=[Depends(allow(*CLERKS))],
             summary="Record a student enrolment (proof for the student card)")
def add_enrolment(holder_id: IdPath, body: schemas.EnrolmentCreate, ctx: CtxDep) -> Enrolment:
    return profiles.record_enrolment(ctx, holder_id, body)


@router.patch("/{holder_id:int}/enrolments/{enrolment_id:int}",
              response_model=schemas.EnrolmentOut, dependencies=[Depends(allow(*CLERKS))],
              summary="Change an enrolment's last day (the student left, or stays longer)")
def change_enrolment(holder_id: IdPath, enrolment_id: IdPath, body: schemas.EnrolmentEnd,
                     ctx: CtxDep) -> Enrolment:
    return profiles.change_enrolment_end(ctx, holder_id, enrolment_id, body)


@router.post("/{holder_id:int}/employments", response_model=schemas.EmploymentOut,
             status_code=201, dependencies=[Depends(allow(*CLERKS))],
             summary="Record an employment (proof for the staff card)")
def add_employment(holder_id: IdPath, body: schemas.EmploymentCreate,
                   ctx: CtxDep) -> Employment:
    return profiles.record_employment(ctx, holder_id, body)


@router.post("/{holder_id:int}/disability-certificates",
             response_model=schemas.DisabilityCertificateOut, status_code=201,
             dependencies=[Depends(allow(*CLERKS))],
             summary="Record a disability certificate (proof for the 愛心 concession)")
def add_certificate(holder_id: IdPath, body: schemas.DisabilityCertificateCreate,
                    ctx: CtxDep) -> schemas.DisabilityCertificateOut:
    return profiles.record_certificate(ctx, holder_id, body)


@router.get("/{holder_id:int}/cards", response_model=list[card_schemas.CardOut],
            dependencies=[Depends(allow(*READERS))])
def holder_cards(holder_id: IdPath, ctx: CtxDep) -> list[card_schemas.CardOut]:
    found = [cards.card_out(c) for c in cards.list_for_holder(ctx, holder_id)]
    audit.record(ctx, "cardholder.cards_read", target_type="cardholder", target_id=holder_id)
    return found
