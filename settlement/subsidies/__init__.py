"""Subsidy claims for concession rides: decided in clearing, owed by funding programmes,
paid to the operators with their takings."""
