from __future__ import annotations

from cardsvc.schemas_common import Model


class StatementRowOut(Model):
    programme: str
    programme_name: str
    budget_account: str
    operator_id: int
    operator: str
    rides: int
    riders: int
    full_fares: int
    fares_charged: int
    claimed: int


class StatementOut(Model):
    month: str
    rows: list[StatementRowOut]
    claimed: int
