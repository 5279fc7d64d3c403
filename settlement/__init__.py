"""Settlement, built on `merchants` and the `cardsvc` core.

* `settlement.clearing`: the daily batch clearing of card payments on Celery: windows,
  verification, de-duplication, netting, statements, payout files.
* `settlement.bills`: billers such as the water plant: bill import, slip barcodes, payment
  from a purse, at a terminal or in cash, receipts, remittance and reconciliation.
"""
