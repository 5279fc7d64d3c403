"""Audit refusals, each with its stable code."""

from __future__ import annotations

from cardsvc.errors import Conflict, InvalidInput, NotFound


class ReviewPeriodReversed(InvalidInput):
    code = "review_period_reversed"
    title = "The period ends before it starts"


class ReviewPeriodTooLong(InvalidInput):
    code = "review_period_too_long"
    title = "The period is longer than a year"


class ChainBroken(Conflict):
    """Signing a checkpoint over a broken chain would certify the damage: refused."""

    code = "audit_chain_broken"
    title = "The audit chain is broken"


class RowNotFound(NotFound):
    code = "audit_row_not_found"
    title = "No such audit row"


class RowNotCovered(Conflict):
    code = "audit_row_not_covered"
    title = "The checkpoint does not cover this row"


class CheckpointContradicted(Conflict):
    """The trail in the database no longer hashes to what a checkpoint signed."""

    code = "audit_checkpoint_contradicted"
    title = "The audit trail contradicts the checkpoint"
