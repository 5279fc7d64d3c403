"""Which audit rows are reads or disclosures of residents' personal data, and how each names
the residents it concerned: the one home the access review and a resident's access log
(個資查詢) read.

A service that starts reading or handing out personal data in a new way adds its action here,
or the ethics office never sees it.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass

from cardsvc.staff.roles import Role


class Kind(enum.StrEnum):
    READ = "read"  # a person at the county saw one resident's record
    REVEAL = "reveal"  # ... with the full national ID shown
    ID_SEARCH = "national_id_search"  # a search by national ID (masked results)
    NAME_SEARCH = "name_search"  # a search by a name's beginning (masked results)
    DISCLOSURE = "disclosure"  # another party's system asked about one card or patron
    EXPORT = "export"  # records leaving in bulk: library feeds and exports, files, reports


class Subject(enum.StrEnum):
    """Where a row names the residents it concerned."""

    TARGET = "target"  # target_type "cardholder", target_id the resident
    SEARCH_RESULTS = "search_results"  # detail "cardholders": the residents found
    PATRONS = "patrons"  # detail "patrons" or "patron_id": a library's patron ids
    # Every resident linked to the library (target_id) when the row was written: a full
    # export records only how many records it sent, and it sends every live link.
    LIVE_LINKS = "live_links"
    PROFILE_UPDATES = "profile_updates"  # detail "updates": profile update ids (their cards)
    NONE = "none"  # no resident's record (aggregates, merchants' bank accounts)


@dataclass(frozen=True)
class AccessRule:
    action: str
    kind: Kind
    subject: Subject
    # A fragment of the row's canonical JSON detail the rule needs (None: any row of the
    # action). The first rule of an action that matches a row is the row's rule.
    detail_holds: str | None = None


RULES: tuple[AccessRule, ...] = (
    # holders.read_full: the counter's resident page and GET /cardholders/{id}
    AccessRule("cardholder.read", Kind.REVEAL, Subject.TARGET, '"revealed_person_id":true'),
    AccessRule("cardholder.read", Kind.READ, Subject.TARGET),
    # API reads of one resident's cards (one card, its history, purse movements and chip
    # loads, the list of their cards), whether they qualify for a product, their invoices,
    # their library links and a consent receipt (the counter's page reads these under its
    # own cardholder.read)
    AccessRule("card.read", Kind.READ, Subject.TARGET),
    AccessRule("card.history_read", Kind.READ, Subject.TARGET),
    AccessRule("card.loads_read", Kind.READ, Subject.TARGET),
    AccessRule("cardholder.cards_read", Kind.READ, Subject.TARGET),
    AccessRule("cardholder.eligibility_read", Kind.READ, Subject.TARGET),
    AccessRule("card.purse_read", Kind.READ, Subject.TARGET),
    AccessRule("einvoice.invoices_read", Kind.READ, Subject.TARGET),
    AccessRule("library.links_read", Kind.READ, Subject.TARGET),
    AccessRule("library.consent_read", Kind.READ, Subject.TARGET),
    # points.api: a resident's points at the counter
    AccessRule("points.read", Kind.READ, Subject.TARGET),
    # this module's own access log: it shows the resident's name to whoever prints it
    AccessRule("audit.access_log", Kind.READ, Subject.TARGET),
    # holders.search: names and masked IDs of everyone found
    AccessRule("cardholder.search", Kind.ID_SEARCH, Subject.SEARCH_RESULTS, '"by":"person_id"'),
    AccessRule("cardholder.search", Kind.NAME_SEARCH, Subject.SEARCH_RESULTS),
    # library: a full export (patrons.csv / patrons.json) names no patron, only a count
    AccessRule("library.disclose", Kind.EXPORT, Subject.LIVE_LINKS, '"records":'),
    # library: a feed page pulled, or a feed event pushed by webhook
    AccessRule("library.disclose", Kind.EXPORT, Subject.PATRONS),
    # library SIP2: a kiosk asked about one card or patron id
    AccessRule("library.sip_lookup", Kind.DISCLOSURE, Subject.PATRONS),
    # transit validators learn which cards have a sealed profile update waiting
    AccessRule("transit.profile_updates_disclosed", Kind.DISCLOSURE, Subject.PROFILE_UPDATES),
    # library: the difference report answers a library's own export with our card numbers
    # and expiry dates of its patrons (which ones the row does not say)
    AccessRule("library.reconcile", Kind.EXPORT, Subject.NONE),
    # retention: the list of residents due for erasure, masked IDs (the row names none)
    AccessRule("retention.review", Kind.EXPORT, Subject.NONE),
    # clearing: the payout file with merchants' and billers' bank accounts
    AccessRule("pii.read", Kind.EXPORT, Subject.NONE),
    # stats: the council's issuance counts (aggregates, but they leave the system)
    AccessRule("report.issuance", Kind.EXPORT, Subject.NONE),
)

ACTIONS: frozenset[str] = frozenset(r.action for r in RULES)

# Reads by a person: the review's counts, off-hours and search flags.
STAFF_READS = (Kind.READ, Kind.REVEAL, Kind.ID_SEARCH, Kind.NAME_SEARCH)
# Reads of one named resident: the "no counter action" and "many residents" flags.
ONE_RESIDENT_READS = (Kind.READ, Kind.REVEAL)

# People, not machines: the staff roles and the operator at the server's console (the CLI).
# Libraries, terminals, the resident's own app and scheduled jobs are parties, not readers.
PERSON_ROLES: frozenset[str] = frozenset({*(r.value for r in Role), "operator"})

# A counter action for resident R on day D (Asia/Taipei) is an audit row of that day, by a
# person (PERSON_ROLES), whose action is not one of the reads above and which targets R
# (target_type "cardholder"), one of R's cards ("card"), or a money movement whose detail
# names one of R's cards ("transfer", detail card_id). Printing R's access log does not
# count: anyone who may read R could print one to clear the flag of their own read; the
# reviewer sees the log's row beside it.


class Flag(enum.StrEnum):
    REVEAL = "full_id_reveal"
    ID_SEARCH = "national_id_search"
    OFF_HOURS = "outside_office_hours"
    NO_COUNTER_ACTION = "no_counter_action"
    MANY_RESIDENTS = "many_residents_per_hour"
    EXPORT = "export"


FLAG_TITLES: dict[Flag, str] = {
    Flag.REVEAL: "全號顯示 Full national ID shown",
    Flag.ID_SEARCH: "以身分證號查詢 Searches by national ID",
    Flag.OFF_HOURS: "非上班時間查閱 Reads outside office hours",
    Flag.NO_COUNTER_ACTION: "查閱而當日無臨櫃作業 Reads with no counter action that day",
    Flag.MANY_RESIDENTS: "每小時查閱人數過多 Many residents read in one hour",
    Flag.EXPORT: "資料匯出 Exports and library feeds",
}


def rule_of(action: str, detail: str) -> AccessRule | None:
    """The rule of an audit row (its action and canonical JSON detail), None for other rows."""
    for rule in RULES:
        if rule.action == action and (rule.detail_holds is None or rule.detail_holds in detail):
            return rule
    return None
