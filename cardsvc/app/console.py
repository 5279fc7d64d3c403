"""The console every command prints through."""

from __future__ import annotations

from typing import Any

from rich.console import Console


def make_console(**options: Any) -> Console:
    """A rich console that wraps text only on a terminal. Written to a service log or a pipe,
    each message stays one line (the first start's password line among them); tables still
    fit the console's width."""
    console = Console(**options)
    if not console.is_terminal:
        console.soft_wrap = True
    return console
