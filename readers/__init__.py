"""The terminal side of the card protocol: NFC readers through PC/SC (pyscard).

Runs on counters and terminals, so it imports nothing of the database or of `cardsvc`.
"""
