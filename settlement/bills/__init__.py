"""Billers and their bills: import, look-up by slip barcode, payment, receipts, remittance
and reconciliation."""
