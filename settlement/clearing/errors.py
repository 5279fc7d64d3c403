"""Clearing's refusals, each with its stable code."""

from __future__ import annotations

from cardsvc.errors import Conflict


class WindowOrder(Conflict):
    code = "window_order"
    title = "Clearing windows close and clear in date order"


class WindowNotReady(Conflict):
    code = "window_not_ready"
    title = "The window is not ready for this step"
