"""Library refusals, each with its stable code."""

from __future__ import annotations

from cardsvc.errors import Conflict, DomainError, InvalidInput


class LibraryExists(Conflict):
    code = "library_exists"
    title = "A library with this code exists"


class AlreadyLinked(Conflict):
    code = "library_already_linked"
    title = "The resident is already linked to this library"


class NoCardToLink(Conflict):
    code = "library_no_card"
    title = "The resident has no card yet"


class FieldNotOffered(InvalidInput):
    code = "library_field_not_offered"
    title = "This library may not receive that field"


class LibraryInactive(Conflict):
    code = "library_inactive"
    title = "The library is not active"


class LibraryAuthRequired(DomainError):
    status = 401
    code = "library_auth_required"
    title = "Library credentials required"
