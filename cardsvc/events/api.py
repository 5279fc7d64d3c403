"""Event routes: organisers' events and stations' check-ins, prizes at the counter, the
county's participation statistics, and the public pages of events and their draws."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, Path, Query, Response

from cardsvc.context import Actor, Ctx
from cardsvc.deps import DB, PUBLIC, CtxDep, RuntimeDep, allow
from cardsvc.events import schemas as s
from cardsvc.events import service, stats
from cardsvc.events.models import Event
from cardsvc.schemas_common import IdPath, IsoDate
from cardsvc.staff.roles import EVENT_READERS, ORGANISERS, PRIZE_DESK, REPORT_READERS

router = APIRouter(tags=["events"])
public_router = APIRouter(prefix="/public", tags=["public events"])

Ticket = Annotated[str, Path(pattern=r"^[0-9A-Za-z]{10}$")]
Responses = dict[int | str, dict[str, Any]]
_STATE: Responses = {409: {"description": "`event_wrong_state`"},
                     403: {"description": "`event_other_department`"}}
_CHECKIN: Responses = {
    409: {"description": "checkin_outside_window, checkin_already, checkin_event_full, "
                         "checkin_card_not_active, checkin_card_not_genuine, "
                         "checkin_unknown_card, checkin_ticket_clash, event_wrong_state"},
    403: {"description": "`event_other_department`"},
    422: {"description": "`checkin_bad_token`"}}


def event_out(event: Event) -> s.EventOut:
    return s.EventOut.model_validate(event)


@router.post("/events", response_model=s.EventOut, status_code=201,
             dependencies=[Depends(allow(*ORGANISERS))],
             responses={403: {"description": "`event_other_department`"}},
             summary="Create a county event (a draft: nothing is public yet)")
def create_event(body: s.EventCreate, ctx: CtxDep) -> s.EventOut:
    return event_out(service.create(ctx, body))


@router.get("/events", response_model=list[s.EventOut],
            dependencies=[Depends(allow(*EVENT_READERS))],
            summary="Events (an organiser sees their own department's)")
def list_events(ctx: CtxDep) -> list[s.EventOut]:
    return [event_out(e) for e in service.list_events(ctx)]


@router.get("/events/{event_id:int}", response_model=s.EventOut,
            dependencies=[Depends(allow(*EVENT_READERS))])
def get_event(event_id: IdPath, ctx: CtxDep) -> s.EventOut:
    return event_out(service.get(ctx, event_id))


@router.post("/events/{event_id:int}/publish", response_model=s.EventOut,
             dependencies=[Depends(allow(*ORGANISERS))], responses=_STATE,
             summary="Publish the event; a draw's seed is drawn and its commitment published")
def publish(event_id: IdPath, ctx: CtxDep) -> s.EventOut:
    return event_out(service.publish(ctx, event_id))


@router.post("/events/{event_id:int}/cancel", response_model=s.EventOut,
             dependencies=[Depends(allow(*ORGANISERS))], responses=_STATE)
def cancel(event_id: IdPath, ctx: CtxDep) -> s.EventOut:
    return event_out(service.cancel(ctx, event_id))


@router.post("/events/{event_id:int}/freeze", response_model=s.EventOut,
             dependencies=[Depends(allow(*ORGANISERS))], responses=_STATE,
             summary="Close check-in and freeze the ticket list (its Merkle root published)")
def freeze(event_id: IdPath, ctx: CtxDep) -> s.EventOut:
    return event_out(service.freeze(ctx, event_id))


@router.post("/events/{event_id:int}/draw", response_model=list[s.WinnerOut],
             dependencies=[Depends(allow(*ORGANISERS))], responses=_STATE,
             summary="Reveal the seed and draw the winners; winners are notified")
def draw(event_id: IdPath, body: s.DrawRequest, ctx: CtxDep) -> list[s.WinnerOut]:
    return [s.WinnerOut(rank=w.rank, ticket=w.ticket, collected_at=w.collected_at)
            for w in service.draw(ctx, event_id, body.public_value)]


@router.post("/events/{event_id:int}/checkins", response_model=s.CheckinOut,
             dependencies=[Depends(allow(*ORGANISERS))], responses=_CHECKIN,
             summary="A station's check-in: the card's proof (chip) or the phone's token")
def check_in(event_id: IdPath, body: s.CheckinRequest, ctx: CtxDep) -> s.CheckinOut:
    return service.check_in(ctx, event_id, body)


@router.post("/events/{event_id:int}/checkins/batch", response_model=s.BatchOut,
             dependencies=[Depends(allow(*ORGANISERS))], responses=_CHECKIN,
             summary="An offline station's taps; each stored once however often it is sent")
def upload(event_id: IdPath, body: s.CheckinBatch, ctx: CtxDep) -> s.BatchOut:
    return service.upload(ctx, event_id, body)


@router.get("/events/{event_id:int}/winners", response_model=list[s.WinnerOut],
            dependencies=[Depends(allow(*PRIZE_DESK))])
def winners(event_id: IdPath, ctx: CtxDep) -> list[s.WinnerOut]:
    return [s.WinnerOut(rank=w.rank, ticket=w.ticket, collected_at=w.collected_at)
            for w in service.winners(ctx, event_id)]


@router.post("/events/{event_id:int}/winners/{ticket}/collect", response_model=s.WinnerOut,
             dependencies=[Depends(allow(*PRIZE_DESK))],
             responses={409: {"description": "event_unknown_ticket, event_wrong_state"}},
             summary="The prize handed over to the winner")
def collect(event_id: IdPath, ticket: Ticket, ctx: CtxDep) -> s.WinnerOut:
    w = service.collect(ctx, event_id, ticket)
    return s.WinnerOut(rank=w.rank, ticket=w.ticket, collected_at=w.collected_at)


@router.get("/stats/participation", dependencies=[Depends(allow(*REPORT_READERS))],
            response_model=s.ParticipationOut,
            responses={200: {"content": {"text/csv": {}, "image/svg+xml": {}}}},
            summary="Check-ins per event, department, month, township or age band; cells of "
                    "fewer than 5 residents shown as <5")
def participation(ctx: CtxDep, date_from: Annotated[IsoDate, Query()],
                  date_to: Annotated[IsoDate, Query()],
                  by: Annotated[Literal["event", "department", "month", "township",
                                        "age_band"], Query()] = "event",
                  format: Annotated[Literal["json", "csv", "svg"], Query()] = "json") -> Any:
    report = stats.participation(ctx, by, date_from, date_to)
    if format == "csv":
        return Response(stats.to_csv(report), media_type="text/csv; charset=utf-8")
    if format == "svg":
        return Response(stats.to_svg(report), media_type="image/svg+xml")
    return report


# --- public: no login ----------------------------------------------------------------------


def _public_ctx(rt: RuntimeDep, db: DB) -> Ctx:
    return rt.ctx(db, Actor.system("public"))


PublicCtx = Annotated[Ctx, Depends(_public_ctx)]


@public_router.get("/events", dependencies=[Depends(PUBLIC)],
                   response_model=list[dict[str, Any]],
                   summary="Published events, with their draws' commitments")
def public_events(ctx: PublicCtx) -> list[dict[str, Any]]:
    return [{"id": e.id, "title": e.title, "department": e.department, "venue": e.venue,
             "starts_at": e.starts_at.isoformat(), "ends_at": e.ends_at.isoformat(),
             "checkin_opens": e.checkin_opens.isoformat(),
             "checkin_closes": e.checkin_closes.isoformat(), "status": e.status,
             "prizes": e.prizes, "prize_description": e.prize_description,
             "commitment": e.commitment, "merkle_root": e.merkle_root}
            for e in service.list_events(ctx, public=True)]


@public_router.get("/events/{event_id:int}/draw", dependencies=[Depends(PUBLIC)],
                   response_model=dict[str, Any],
                   responses={404: {"description": "`not_found`"}},
                   summary="The draw's whole record, for `cardsvc draw verify` (tickets only, "
                           "no names)")
def public_draw(event_id: IdPath, ctx: PublicCtx) -> dict[str, Any]:
    return service.public_record(ctx, event_id)


@public_router.get("/events/{event_id:int}/tickets/{ticket}/proof",
                   dependencies=[Depends(PUBLIC)], response_model=s.ProofOut,
                   responses={409: {"description": "event_unknown_ticket, event_wrong_state"},
                              404: {"description": "`not_found`"}},
                   summary="The inclusion proof of a ticket in the frozen list")
def public_proof(event_id: IdPath, ticket: Ticket, ctx: PublicCtx) -> s.ProofOut:
    return service.inclusion_proof(ctx, event_id, ticket)

