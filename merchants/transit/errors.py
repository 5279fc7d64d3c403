"""Transit errors with their stable codes."""

from __future__ import annotations

from cardsvc.errors import DomainError
from merchants.pos.errors import PosRefusal


class NotTransitOperator(DomainError):
    status = 409
    code = "not_transit_operator"
    title = "The merchant is not a transit operator"


class NoFareTable(DomainError):
    status = 404
    code = "no_fare_table"
    title = "No fare table published for this operator"


class InvalidFareTable(DomainError):
    status = 422
    code = "invalid_fare_table"
    title = "The fare table is not valid"


class RideFareMismatch(PosRefusal):
    status = 422
    code = "ride_fare_mismatch"
    title = "The ride's full fare is not the fare table's"
