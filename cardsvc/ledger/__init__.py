"""The double-entry purse ledger and idempotent money movements."""
