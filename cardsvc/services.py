"""Services one domain asks of another, bound by the composition root.

A domain that needs something from a domain above it (the POS API asks clearing whether a
window already holds a transaction) declares what it asks as a Protocol of its own; the
domain above implements it; the root binds the implementation here, and the asking code finds
it through `ctx.services`. Tests bind a fake.
"""

from __future__ import annotations

from typing import Any


class Services:
    """Implementations by the interface they implement. Typed access goes through a function
    of the asking domain's (e.g. `merchants.pos.interfaces.clearing_state`): a Protocol
    cannot be a `type[T]` argument to type-check against."""

    def __init__(self) -> None:
        self._bound: dict[Any, Any] = {}

    def bind(self, interface: Any, implementation: Any) -> None:
        self._bound[interface] = implementation

    def find_or(self, interface: Any, default: Any) -> Any:
        """The bound implementation, or `default` where the root bound none (a runtime built
        by a tool or a test without the root)."""
        return self._bound.get(interface, default)

    def find(self, interface: Any) -> Any:
        try:
            return self._bound[interface]
        except KeyError:
            raise LookupError(f"nothing is bound for {interface.__name__}: the composition "
                              "root binds it (cardsvc.app.bootstrap)") from None
