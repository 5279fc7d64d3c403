"""Card-management core of the resident card system.

Cardholders and their proofs, the four card products and their eligibility rules, the card
lifecycle, the double-entry purse ledger, the issuing-counter API, staff accounts, personal-data
protection and the hash-chained audit trail. merchants and settlement build on this core, which
never imports them; readers is below it. `cardsvc.app`, the composition root, sits on top of
everything and nothing imports it (import-linter checks both in CI).
"""

__version__ = "0.1.0"
