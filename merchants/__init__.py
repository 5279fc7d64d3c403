"""Merchants and their POS terminals, built on the `cardsvc` core (cards, purse ledger, audit).

* `merchants.registry`: the merchants, their terminals and terminal credentials, the static QR
  code a shop shows.
* `merchants.pos`: the signed POS API: card-present purchases (with the PostgreSQL fast path),
  QR payments, refunds, voids, offline batches, the hotlist.
"""
