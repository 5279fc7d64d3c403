"""Daily batch clearing of merchant and utility payments on Celery: statements, payout and
remittance files, reconciliation. Builds on `cardsvc` and `merchants`.
"""
