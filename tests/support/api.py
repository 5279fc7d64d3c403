"""The staff accounts the suite seeds (one per role, one password) and a thin client for
one role's view of the API."""

from __future__ import annotations

from fastapi.testclient import TestClient

ROLES = ("clerk", "supervisor", "auditor", "admin", "organiser")
# The seeded organiser's department (organisers manage their own department's events).
DEPARTMENT = "文化局"
PASSWORD = "correct-horse-battery"


class Api:
    """A thin helper: one role's view of the API."""

    def __init__(self, client: TestClient, token: str | None) -> None:
        self.client = client
        self.headers = {"Authorization": f"Bearer {token}"} if token else {}

    def req(self, method: str, path: str, json: object = None, key: str | None = None,
            **params: object):  # type: ignore[no-untyped-def]
        headers = dict(self.headers)
        if key:
            headers["Idempotency-Key"] = key
        return self.client.request(method, path, json=json, params=params or None,
                                   headers=headers)

    def get(self, path: str, **params: object):  # type: ignore[no-untyped-def]
        return self.req("GET", path, **params)

    def post(self, path: str, json: object = None, key: str | None = None,
             **params: object):  # type: ignore[no-untyped-def]
        return self.req("POST", path, json=json, key=key, **params)

    def ok(self, method: str, path: str, json: object = None, status: int = 200,
           key: str | None = None, **params: object) -> dict:  # type: ignore[type-arg]
        r = self.req(method, path, json=json, key=key, **params)
        assert r.status_code == status, f"{method} {path} -> {r.status_code} {r.text}"
        return r.json() if r.content else {}
