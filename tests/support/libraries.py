"""Libraries as tests meet them: registered by the admin, linked at the counter, read with
the library's own feed key."""

from __future__ import annotations

import base64
from typing import Any

from fastapi.testclient import TestClient

from tests.support import factories as f
from tests.support.api import Api

CATEGORIES = {"general": "AD", "senior": "SR", "disability": "SR", "companion": "SR",
              "student": "ST", "default": "AD"}


def register(admin: Api, code: str, *, optional: list[str] | None = None,
             webhook: str | None = None) -> dict[str, Any]:
    return admin.ok("POST", "/libraries", {
        "code": code, "name": f"{code} 圖書館", "ils": "koha", "categories": CATEGORIES,
        "home_branch": code, "optional_fields": optional if optional is not None else ["name"],
        "webhook_url": webhook}, status=201)


def basic(lib: dict[str, Any]) -> dict[str, str]:
    token = base64.b64encode(f"{lib['feed_key_id']}:{lib['feed_key']}".encode()).decode()
    return {"Authorization": f"Basic {token}"}


def feed(client: TestClient, lib: dict[str, Any], after: int = 0) -> list[dict[str, Any]]:
    r = client.get("/library/v1/feed", params={"after": after}, headers=basic(lib))
    assert r.status_code == 200, r.text
    events: list[dict[str, Any]] = r.json()["events"]
    return events


def resident_with_card(clerk: Api, **holder: Any) -> tuple[dict[str, Any], dict[str, Any]]:
    h = f.holder(clerk, **holder)
    return h, f.active_card(clerk, h["id"])


def link(clerk: Api, holder_id: int, lib: dict[str, Any], shared: list[str] | None = None,
         **extra: Any) -> dict[str, Any]:
    return clerk.ok("POST", f"/cardholders/{holder_id}/library-links",
                    {"library_id": lib["id"], "shared_fields": shared or [], **extra},
                    status=201)


def replace(clerk: Api, card_id: int, reason: str = "lost") -> dict[str, Any]:
    out: dict[str, Any] = clerk.ok("POST", f"/cards/{card_id}/replace",
                                   {"reason": reason, "chip_uid": f.uid()}, key=f.key())
    return out
