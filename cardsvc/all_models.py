"""Every table of every package, for Alembic and for tests: a composition root, like app.py,
so it may import the packages built on the core (the core's own modules never do)."""

from cardsvc.models import *  # noqa: F403 - re-export the core's tables
from cardsvc.models import Base
from merchants.models import (
    Merchant,
    PosBatch,
    PosNonce,
    PosTransaction,
    QrTokenUse,
    Terminal,
)
from settlement.models import (
    ClearingEntry,
    ClearingException,
    ClearingFile,
    ClearingPartition,
    ClearingRun,
    ClearingWindow,
    MerchantStatement,
)

__all__ = [
    "Base",
    "ClearingEntry",
    "ClearingException",
    "ClearingFile",
    "ClearingPartition",
    "ClearingRun",
    "ClearingWindow",
    "Merchant",
    "MerchantStatement",
    "PosBatch",
    "PosNonce",
    "PosTransaction",
    "QrTokenUse",
    "Terminal",
]
