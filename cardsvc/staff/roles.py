"""Staff roles, and the groups of roles that routes allow: one home, so a route's declaration
reads the same everywhere (the role-matrix test checks every route has one)."""

from __future__ import annotations

import enum


class Role(enum.StrEnum):
    CLERK = "clerk"  # counter work
    SUPERVISOR = "supervisor"  # exceptions, unblocking, fee waivers
    AUDITOR = "auditor"  # read-only; reads the audit trail; never sees a full national ID
    ADMIN = "admin"  # staff accounts and configuration
    ORGANISER = "organiser"  # a department's county events, and nothing else


# Counter work: cardholders, cards, top-ups.
CLERKS = (Role.CLERK, Role.SUPERVISOR)
# Exceptions: blocking, unblocking, fee waivers, loads in review.
SUPERVISORS = (Role.SUPERVISOR,)
# Reading records of residents and cards (never a full national ID for the auditor).
READERS = (Role.CLERK, Role.SUPERVISOR, Role.AUDITOR)
# Managing merchants, terminals and billers; and reading them (the auditor too).
MANAGERS = (Role.CLERK, Role.SUPERVISOR, Role.ADMIN)
VIEWERS = (Role.CLERK, Role.SUPERVISOR, Role.ADMIN, Role.AUDITOR)
# Reports (the council's statistics).
REPORT_READERS = (Role.SUPERVISOR, Role.ADMIN, Role.AUDITOR)
# Transit fare tables: a county decision, published by supervisors and administrators.
FARE_KEEPERS = (Role.SUPERVISOR, Role.ADMIN)
# The audit trail.
AUDIT_READERS = (Role.AUDITOR, Role.ADMIN)
ADMINS = (Role.ADMIN,)
# County events: organisers (their own department's only) and administrators; reading
# events (the readers of residents' records too); handing over prizes (the counter too).
ORGANISERS = (Role.ORGANISER, Role.ADMIN)
EVENT_READERS = (*ORGANISERS, *READERS)
PRIZE_DESK = (*ORGANISERS, *CLERKS)
# The points reward catalogue.
CATALOGUE_KEEPERS = (*SUPERVISORS, *ADMINS)
EVERYONE = tuple(Role)
