"""Idempotent requests: a key per money-moving request, stored with a hash of the request and the
answer in the same transaction as the work."""
