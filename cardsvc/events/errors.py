"""Event refusals, each with its stable code (a check-in station shows them)."""

from __future__ import annotations

from cardsvc.errors import Conflict, Forbidden, InvalidInput


class NotYourDepartment(Forbidden):
    code = "event_other_department"
    title = "The event belongs to another department"


class EventState(Conflict):
    code = "event_wrong_state"
    title = "The event is not in a state that allows this"


class CheckinClosed(Conflict):
    code = "checkin_outside_window"
    title = "Check-in is not open"


class AlreadyCheckedIn(Conflict):
    code = "checkin_already"
    title = "The resident has already checked in to this event"


class EventFull(Conflict):
    code = "checkin_event_full"
    title = "The event is full"


class CardNotActive(Conflict):
    code = "checkin_card_not_active"
    title = "The card is not active"


class NotGenuine(Conflict):
    code = "checkin_card_not_genuine"
    title = "The card did not prove its identity key"


class UnknownCard(Conflict):
    code = "checkin_unknown_card"
    title = "No card of this programme"


class BadToken(InvalidInput):
    code = "checkin_bad_token"
    title = "The phone's check-in token is malformed, stale or not signed by the card's phone"


class TicketClash(Conflict):
    code = "checkin_ticket_clash"
    title = "Another check-in holds this ticket; tap again"


class UnknownTicket(Conflict):
    code = "event_unknown_ticket"
    title = "No such ticket in this event"
