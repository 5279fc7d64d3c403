"""Every table of the core, imported in one place for Alembic and for `Base.metadata`."""

from cardsvc.audit.models import AuditEvent, AuditHead
from cardsvc.cards.models import Card, CardEvent, CardLoad, HotlistEntry
from cardsvc.db import Base
from cardsvc.holders.models import Cardholder, DisabilityCertificate, Enrolment
from cardsvc.keystore.models import CardMasterKey
from cardsvc.ledger.models import Account, IdempotencyRecord, Posting, Transfer
from cardsvc.staff.models import LoginThrottle, Staff

__all__ = [
    "Account",
    "AuditEvent",
    "AuditHead",
    "Base",
    "Card",
    "CardEvent",
    "CardLoad",
    "CardMasterKey",
    "Cardholder",
    "DisabilityCertificate",
    "Enrolment",
    "HotlistEntry",
    "IdempotencyRecord",
    "LoginThrottle",
    "Posting",
    "Staff",
    "Transfer",
]
