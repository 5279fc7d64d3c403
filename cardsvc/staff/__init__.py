"""Staff accounts, roles, login and bearer tokens."""
