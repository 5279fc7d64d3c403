"""Fake hardware for tests and demos: a virtual card that pcscd sees through vpcd, and a
simulated POS terminal. Uses `readers`; never touches the database directly.
"""
