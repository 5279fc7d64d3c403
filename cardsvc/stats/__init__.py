"""Issuance statistics reported to the county council."""
