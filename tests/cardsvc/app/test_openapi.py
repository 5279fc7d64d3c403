"""The OpenAPI schema says what the server does (the full check is the contract run,
tests/contract/; these are the things it found, kept as quick tests)."""

from __future__ import annotations

import json
import re
from typing import Any

import pytest

from cardsvc.identifiers import person_id_kind

SCHEMA: dict[str, Any] = {}


@pytest.fixture
def spec(app_client) -> dict[str, Any]:  # type: ignore[no-untyped-def]
    if not SCHEMA:
        SCHEMA.update(app_client.get("/openapi.json").json())
    return SCHEMA


def operations(spec: dict[str, Any]) -> list[tuple[str, str, dict[str, Any]]]:
    return [(m, p, op) for p, item in spec["paths"].items() for m, op in item.items()]


def test_examples_are_valid(spec) -> None:  # type: ignore[no-untyped-def]
    example = spec["components"]["schemas"]["CardholderCreate"]["properties"]["person_id"]
    assert all(person_id_kind(e) for e in example["examples"])


def test_numbers_are_whole_where_they_are_whole(spec) -> None:  # type: ignore[no-untyped-def]
    text = json.dumps(spec)
    assert not re.search(r'"(maximum|minimum|exclusiveMinimum|exclusiveMaximum)": -?\d+\.\d',
                         text)
    assert '"gt":' not in text and '"le":' not in text  # constraints that are not JSON Schema


def test_money_routes_require_the_idempotency_key_as_enforced(spec) -> None:  # type: ignore[no-untyped-def]
    from cardsvc.idempotency.service import IDEMPOTENCY_KEY_PATTERN
    found = 0
    for method, path, op in operations(spec):
        for param in op.get("parameters", []):
            if param["name"] == "Idempotency-Key":
                found += 1
                assert param["required"] is True, (method, path)
                assert param["schema"].get("pattern") == IDEMPOTENCY_KEY_PATTERN, (method, path)
    assert found >= 10
    topup = spec["paths"]["/cards/{card_id}/topups"]["post"]
    key = next(p for p in topup["parameters"] if p["name"] == "Idempotency-Key")
    assert key["schema"]["pattern"] == IDEMPOTENCY_KEY_PATTERN


def test_usernames_and_trimmed_lengths_are_stated(spec) -> None:  # type: ignore[no-untyped-def]
    props = spec["components"]["schemas"]["StaffCreate"]["properties"]
    username = re.compile(props["username"]["pattern"])
    assert username.search("clerk.chen") and username.search(" Clerk.Chen ")
    assert not username.search("1clerk") and not username.search("clerk chen")
    reason = re.compile(spec["components"]["schemas"]["ReasonRequest"]["properties"]["reason"]
                        ["pattern"])
    assert reason.search("lost") and reason.search("  lost  ")
    assert not reason.search("  ab  ") and not reason.search("lo\x00st")


def test_every_error_is_documented_as_problem_json(spec) -> None:  # type: ignore[no-untyped-def]
    for method, path, op in operations(spec):
        for status, response in op["responses"].items():
            if status[0] in "45":
                assert list(response["content"]) == ["application/problem+json"], \
                    (method, path, status)
        if path not in ("/health",):
            assert "400" in op["responses"] and "431" in op["responses"], (method, path)


def test_a_method_not_allowed_names_the_allowed_ones(app_client) -> None:  # type: ignore[no-untyped-def]
    r = app_client.delete("/health")
    assert r.status_code == 405 and r.headers["allow"] == "GET"
    assert r.json()["code"] == "method_not_allowed"


@pytest.mark.parametrize("method,path,allowed", [
    ("GET", "/cards/applications", "POST"), ("GET", "/cardholders/search", "POST"),
    ("PATCH", "/cardholders/search", "POST"), ("GET", "/bills/lookup", "POST")])
def test_a_named_route_is_not_taken_for_an_id(clerk, method: str, path: str,  # type: ignore[no-untyped-def]
                                             allowed: str) -> None:
    """`/cards/applications` is not card "applications": the wrong method is a 405."""
    r = clerk.req(method, path)
    assert r.status_code == 405 and r.headers["allow"] == allowed
