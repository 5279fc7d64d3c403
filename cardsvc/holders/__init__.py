"""Cardholders, their encrypted personal data and concession proofs."""
