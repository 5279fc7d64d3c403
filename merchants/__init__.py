"""Merchants and their POS terminals: registry, the signed POS API, QR payments, hotlist.

Builds on `cardsvc` (cards, purse ledger, audit). Filled by the merchant/POS work.
"""
