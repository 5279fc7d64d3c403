"""Card-management core of the resident card system.

Cardholders and their proofs, the four card products and their eligibility rules, the card
lifecycle, the double-entry purse ledger, the issuing-counter API, staff accounts, personal-data
protection and the hash-chained audit trail. The other top-level packages (merchants,
settlement, readers, simulators) build on this one; it never imports them, except in the
composition roots `cardsvc.app` and `cardsvc.cli`.
"""

__version__ = "0.1.0"
