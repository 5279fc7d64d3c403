"""The demo's narrator: numbered steps, what happened in a line, each step a real API call."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from rich.console import Console

if TYPE_CHECKING:  # for the annotation only: importing it warns (cardsvc.app.demo says why)
    from fastapi.testclient import TestClient


class DemoFailed(RuntimeError):
    pass


class Story:
    def __init__(self, console: Console, client: TestClient) -> None:
        self.c = console
        self.client = client
        self.token: str | None = None
        self.step_no = 0

    def step(self, title: str) -> None:
        self.step_no += 1
        self.c.print()
        self.c.rule(f"[bold cyan]{self.step_no}. {title}")

    def say(self, text: str) -> None:
        self.c.print(f"  {text}")

    def call(self, method: str, path: str, body: Any = None, expect: int = 200,
             key: str | None = None, **params: Any) -> Any:
        headers = {"Authorization": f"Bearer {self.token}"} if self.token else {}
        if key:
            headers["Idempotency-Key"] = key
        r = self.client.request(method, path, json=body, params=params or None, headers=headers)
        if r.status_code != expect:
            raise DemoFailed(f"{method} {path}: expected {expect}, got {r.status_code}: {r.text}")
        return r.json() if r.content else None

    def login(self, username: str, password: str) -> None:
        self.token = None
        out = self.call("POST", "/auth/login", {"username": username, "password": password})
        self.token = out["access_token"]
        self.say(f"[green]✓[/] {username} logged in as {out['role']} "
                 f"(token valid until {out['expires_at'][11:19]} UTC)")
