"""Points refusals, each with its stable code."""

from __future__ import annotations

from cardsvc.errors import Conflict


class InsufficientPoints(Conflict):
    code = "points_insufficient"
    title = "Not enough points"


class OutOfStock(Conflict):
    code = "reward_out_of_stock"
    title = "The reward is out of stock"


class RewardInactive(Conflict):
    code = "reward_inactive"
    title = "The reward is no longer offered"
