"""Walks every route of the app: each declares its roles; every other role gets 403 and an
anonymous caller 401. A new route without a declaration fails this test."""

from __future__ import annotations

import re

import pytest
from fastapi.routing import APIRoute

from cardsvc.app.http import POS_ROUTERS, ROUTERS, create_app
from cardsvc.deps import Public, RoleGuard
from merchants.pos.api import SignedRequest, TerminalAuth
from tests.support.api import PASSWORD, ROLES, Api


def guard_of(route: APIRoute) -> RoleGuard | None:
    for dep in route.dependant.dependencies:
        if isinstance(dep.call, RoleGuard):
            return dep.call
    return None


def is_public(route: APIRoute) -> bool:
    return any(isinstance(dep.call, Public) for dep in route.dependant.dependencies)


def concrete(path: str) -> str:
    return re.sub(r"\{[^}]+\}", "1", path).replace("/by-number/1", "/by-number/" + "1" * 16)


def all_routes(rt) -> list[tuple[str, str, frozenset[str]]]:  # type: ignore[no-untyped-def]
    """Every route of every router, checked against the app's own OpenAPI so that no route
    the app serves escapes the walk."""
    app = create_app(rt)
    routes = [r for router in ROUTERS for r in router.routes if isinstance(r, APIRoute)]
    served = {(m.upper(), p) for p, ops in app.openapi()["paths"].items() for m in ops}
    pos = [r for router in POS_ROUTERS for r in router.routes if isinstance(r, APIRoute)]
    walked = {(m, r.path_format) for r in routes + pos for m in r.methods}
    assert served - walked <= {("GET", "/health")}, served - walked
    out = []
    for route in routes:
        guard = guard_of(route)
        if is_public(route):
            assert guard is None, f"{route.path_format} is public but has a guard"
            continue
        assert guard is not None, f"{route.path_format} declares no roles"
        for method in route.methods:
            out.append((method, route.path_format, guard.roles))
    return out


def test_every_route_declares_roles(rt) -> None:  # type: ignore[no-untyped-def]
    routes = all_routes(rt)
    assert len(routes) >= 25
    assert all(roles and roles <= set(ROLES) for _, _, roles in routes)


def test_role_matrix(app_client, tokens, rt) -> None:  # type: ignore[no-untyped-def]
    checked = 0
    for method, path, roles in all_routes(rt):
        url = concrete(path)
        body = {} if method in ("POST", "PATCH", "PUT") else None
        anon = Api(app_client, None).req(method, url, json=body)
        assert anon.status_code == 401, f"anonymous {method} {path}: {anon.status_code}"
        assert anon.json()["code"] == "authentication_required"
        for role in ROLES:
            token = tokens[role]
            if path == "/auth/logout":  # a logout ends its token: not the suite's own
                token = app_client.post("/auth/login", json={
                    "username": f"t.{role}", "password": PASSWORD}).json()["access_token"]
            r = Api(app_client, token).req(method, url, json=body)
            if role in roles:
                assert r.status_code not in (401, 403), f"{role} {method} {path}: {r.text}"
                assert r.status_code < 500, f"{role} {method} {path}: {r.text}"
            else:
                assert r.status_code == 403, f"{role} {method} {path}: {r.status_code}"
                assert r.json()["code"] == "forbidden"
            checked += 1
    assert checked >= 100


@pytest.mark.parametrize("header", ["Bearer not-a-token", "Basic dXNlcjpwYXNz", "Bearer "])
def test_bad_credentials_are_401(app_client, header: str) -> None:  # type: ignore[no-untyped-def]
    r = app_client.get("/auth/me", headers={"Authorization": header})
    assert r.status_code == 401


def test_pos_routes_take_signed_requests_only(app_client, tokens) -> None:  # type: ignore[no-untyped-def]
    """Every POS route needs the terminal signature; a staff token does not open it."""
    pos = [r for router in POS_ROUTERS for r in router.routes if isinstance(r, APIRoute)]
    assert pos
    for route in pos:
        assert any(isinstance(d.call, TerminalAuth | SignedRequest)
                   for d in route.dependant.dependencies), \
            route.path_format
        for method in route.methods:
            url = concrete(route.path_format)
            anon = app_client.request(method, url, json={})
            assert anon.status_code == 401 and anon.json()["code"] == "bad_signature"
            staff = Api(app_client, tokens["admin"]).req(method, url, json={})
            assert staff.status_code == 401
