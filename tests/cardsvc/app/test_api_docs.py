"""/docs and /redoc work in a data centre without internet: every script, style and icon the
pages load comes from this server."""

from __future__ import annotations

import re

import pytest


@pytest.mark.parametrize("page", ["/docs", "/redoc"])
def test_the_api_docs_load_nothing_from_elsewhere(app_client, page: str) -> None:  # type: ignore[no-untyped-def]
    r = app_client.get(page)
    assert r.status_code == 200 and r.headers["content-type"].startswith("text/html")
    html = r.text
    assert not re.search(r"https?://|//[a-z0-9.-]+\.[a-z]{2,}/", html), \
        re.findall(r"https?://[^\s\"']+", html)
    assets = re.findall(r'(?:src|href)="([^"]+)"', html)
    assert any(a.endswith(".js") for a in assets)
    for asset in assets:
        got = app_client.get(asset)
        assert got.status_code == 200 and len(got.content) > 1000, asset
    assert app_client.get("/openapi.json").json()["openapi"].startswith("3.")
