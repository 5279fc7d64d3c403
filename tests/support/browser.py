"""A real browser on the counter's pages: the app served by uvicorn in a thread, Chromium
from Debian's package driven by Playwright (no browser download). On a laptop without
Chromium the browser tests skip; in CI they must run."""

from __future__ import annotations

import os
import shutil
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
import uvicorn

from cardsvc.app.http import create_app
from tests.support.ci import IN_CI
from tests.support.net import free_port

ARTIFACTS = Path(__file__).resolve().parents[2] / "test-artifacts" / "counter"


def chromium_path() -> str:
    path = os.environ.get("CARDSVC_TEST_CHROMIUM") or shutil.which("chromium") or ""
    if not path:
        if IN_CI:
            pytest.fail("CI must run the browser tests: Debian's chromium is not installed")
        pytest.skip("no chromium on this machine (apt install chromium)")
    return path


@contextmanager
def live_server(rt: Any) -> Iterator[str]:
    port = free_port()
    server = uvicorn.Server(uvicorn.Config(create_app(rt), host="127.0.0.1", port=port,
                                           log_level="warning", lifespan="on"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 15
    while not server.started:
        if time.monotonic() > deadline:
            raise RuntimeError("the counter's test server did not start")
        time.sleep(0.05)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(10)


def screenshot(page: Any, name: str) -> None:
    """Kept as a test artifact: what the clerk saw."""
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / f"{name}.png"), full_page=True)
