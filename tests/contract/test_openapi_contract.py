"""The OpenAPI schema as a contract: schemathesis generates requests from the app's own schema
(valid ones and invalid ones) for every operation, with each role's token, a fresh
idempotency key, real record ids most of the time and a terminal's signature on POS requests,
so the money routes are really reached. Every answer must be documented (status and content
type), match its schema, never be a server error, and a request the schema calls valid must
never be refused for its shape.

Run with `pytest -m contract` (CI runs it in `.ci/run`); CARDSVC_CONTRACT_EXAMPLES sets the
examples per operation and role.
"""

from __future__ import annotations

import json
import os
import uuid
from collections import Counter, defaultdict
from typing import Any

import pytest
import requests
import schemathesis
from hypothesis import HealthCheck, settings
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    negative_data_rejection,
    response_schema_conformance,
    status_code_conformance,
    unsupported_method,
)

from tests.support.api import PASSWORD
from tests.support.worlds import World

pytestmark = pytest.mark.contract
EXAMPLES = int(os.environ.get("CARDSVC_CONTRACT_EXAMPLES", "12"))

# Request-validation errors a valid request may still get: rules the schema states in a
# field's description because JSON Schema cannot say them (a proof's end date relative to
# today, a value another field decides).
VALUE_RULES = frozenset({"date_range", "value_error"})

# Where generated ids are replaced by ids of records that exist.
ID_NAMES = {
    "card_id": "card", "holder_id": "holder", "cardholder_id": "holder",
    "companion_id": "holder", "merchant_id": "merchant", "terminal_id": "terminal",
    "biller_id": "biller", "bill_id": "bill", "staff_id": "staff",
    "transaction_id": "transaction", "original_transaction_id": "transaction",
    "library_id": "library", "link_id": "link",
}


def _app_schema() -> dict[str, Any]:
    """The schema the app serves. Built at import, for collection, from an app on a throwaway
    runtime: the schema depends on the routes only, not on the data."""
    import tempfile
    from pathlib import Path

    from cardsvc.app.http import create_app
    from cardsvc.config import Settings
    from cardsvc.runtime import Runtime

    with tempfile.TemporaryDirectory() as tmp:
        rt = Runtime.build(Settings(database_url="sqlite://", reader="none",
                                    secrets_file=Path(tmp) / "secrets.json"))
        try:
            return create_app(rt).openapi()
        finally:
            rt.close()


APP_SCHEMA = _app_schema()
schema = schemathesis.openapi.from_dict(APP_SCHEMA)
OPERATIONS = {f"{method.upper()} {path}" for path, item in APP_SCHEMA["paths"].items()
              for method in item}


# Operations that change a card's state for good get cards of their own.
DISPOSING = ("/close", "/replace", "/suspend", "/block", "/unblock", "/reinstate", "/issue",
             "/activate")


def _real(world: World, name: str, value: Any, disposing: bool) -> Any:
    kind = ID_NAMES.get(name)
    if kind == "card" and disposing:
        kind = "card_disposable"
    pool = world.ids.get(kind or "", [])
    if not pool or not isinstance(value, int) or isinstance(value, bool) or value <= 0:
        return value
    # Most requests name a record that exists; some keep their generated id (not found).
    # Staff ids always name the run's own accounts: the role accounts must keep working.
    if kind != "staff" and value % 5 == 0:
        return value
    return pool[value % len(pool)]


def _map_ids(world: World, data: Any, disposing: bool = False, only: str | None = None) -> Any:
    if isinstance(data, dict):
        return {k: _real(world, k, v, disposing) if k in ID_NAMES and only in (None, k)
                else _map_ids(world, v, disposing, only) for k, v in data.items()}
    if isinstance(data, list):
        return [_map_ids(world, v, disposing, only) for v in data]
    return data


# Rules between fields, and between a request and the records, that the schema does not
# state (a JSON schema has no "only when"): a generated request that breaks one is refused by
# the domain, rightly, so a positive case is made to keep them, or the run would seldom reach
# the work. A card application is for a resident with no card yet, carries a phone's device
# fields only for a mobile card, and names a registered desk or none.
def _consistent(case: Any, world: World) -> None:
    if case.method == "POST" and case.path == "/cards/applications" \
            and isinstance(case.body, dict):
        holder = case.body.get("cardholder_id")
        cardless = world.ids["holder_cardless"]
        if isinstance(holder, int) and not isinstance(holder, bool):
            case.body["cardholder_id"] = cardless[holder % len(cardless)]
        if case.body.get("product") != "mobile":
            case.body.pop("device_id", None)
            case.body.pop("device_public_key", None)
        case.body.pop("counter", None)


def _positive(case: Any) -> bool:
    return bool(case.meta is not None and case.meta.generation.mode.is_positive)


def schema_valid_requests_are_not_refused_for_their_shape(ctx: Any, response: Any,
                                                          case: Any) -> bool | None:
    """A request the schema calls valid is not malformed (400) and fits every shape rule the
    schema states (no request-validation 422 but for the rules descriptions state)."""
    if not _positive(case) or response.status_code not in (400, 422):
        return None
    try:
        problem = json.loads(response.content)
    except ValueError:
        problem = {}
    if response.status_code == 400:
        raise AssertionError(f"a schema-valid request was refused as {problem.get('code')}: "
                             f"{problem.get('detail')}")
    if problem.get("code") != "invalid_input":
        return None  # a refusal of the domain's own, with its documented code
    shape = [e for e in problem.get("errors", []) if e.get("type") not in VALUE_RULES]
    if shape:
        raise AssertionError(f"a schema-valid request was refused for its shape: {shape}")
    return None


CHECKS = [not_a_server_error, status_code_conformance, content_type_conformance,
          response_schema_conformance, negative_data_rejection, unsupported_method,
          schema_valid_requests_are_not_refused_for_their_shape]


class TerminalSignature(requests.auth.AuthBase):
    """Signs the request exactly as it goes on the wire (method, path and query, body), as
    a terminal does."""

    def __init__(self, world: World) -> None:
        self.world = world

    def __call__(self, r: requests.PreparedRequest) -> requests.PreparedRequest:
        body = r.body.encode() if isinstance(r.body, str) else (r.body or b"")
        signed = self.world.pos.signed_headers(str(r.method), str(r.path_url), body)
        for name in ("X-Terminal-Key", "X-Timestamp", "X-Nonce", "X-Signature"):
            r.headers[name] = signed[name]
        return r


def _mutated(case: Any, location: str) -> bool:
    """Whether a negative case made this part of the request invalid (e.g. left out the
    Authorization header)."""
    if case.meta is None or _positive(case):
        return False
    return any(str(getattr(loc, "value", loc)) == location and not info.mode.is_positive
               for loc, info in case.meta.components.items())


def _exercise(case: Any, role: str, world: World) -> None:
    session = requests.Session()
    headers: dict[str, str] = {}
    pos = case.path.startswith("/pos/")
    disposing = case.path.endswith(DISPOSING)
    if _positive(case):
        case.path_parameters = _map_ids(world, case.path_parameters or {}, disposing)
        if case.query:
            case.query = _map_ids(world, case.query, disposing)
        if isinstance(case.body, dict | list):
            case.body = _map_ids(world, case.body, disposing)
        _consistent(case, world)
    elif case.path_parameters:
        # Whatever else a negative case breaks, it must not reach the role accounts.
        case.path_parameters = _map_ids(world, case.path_parameters, only="staff_id")
    if _positive(case):
        if case.headers and "Idempotency-Key" in case.headers:
            headers["Idempotency-Key"] = f"contract-{uuid.uuid4()}"
        if pos:
            session.auth = TerminalSignature(world)
    library = case.path.startswith("/library/v1/")
    if library and not _mutated(case, "header"):
        session.auth = world.library_auth  # a library system's feed key (HTTP Basic)
    elif not pos and not _mutated(case, "header"):
        token = world.tokens[role]
        if case.path == "/auth/logout":  # a logout ends its token: never the run's own
            token = world.client.post("/auth/login", json={
                "username": f"t.{role}", "password": PASSWORD}).json()["access_token"]
        headers["Authorization"] = f"Bearer {token}"
    response = case.call(base_url=world.base_url, session=session, headers=headers)
    REACHED[f"{case.method} {case.path}"][response.status_code] += 1
    if os.environ.get("CARDSVC_CONTRACT_TRACE"):
        print(role, case.method, case.path, _positive(case), response.status_code,
              response.text[:200])
    case.validate_response(response, checks=CHECKS)


# What the run's requests got, by operation: the last test checks the run reached the work.
REACHED: defaultdict[str, Counter[int]] = defaultdict(Counter)

# Operations that must have done their work at least once in a run (a run answered only with
# 404s and 422s would check little). POS purchases are left out: a random certificate never
# verifies, which is the point of a certificate.
MUST_SUCCEED = (
    "POST /cardholders", "POST /cards/applications", "POST /cards/{card_id}/topups",
    "POST /cards/{card_id}/charges", "POST /cards/{card_id}/close",
    "POST /cards/{card_id}/suspend", "POST /bills/{bill_id}/payments",
    "GET /cardholders/{holder_id}", "POST /merchants", "POST /staff",
    "POST /cardholders/{holder_id}/library-links", "GET /library/v1/feed",
    "GET /library/v1/patrons.csv",
)


@pytest.mark.parametrize("role", ["clerk", "supervisor", "auditor", "admin"])
@schema.parametrize()
@settings(max_examples=EXAMPLES, deadline=None, derandomize=True,
          suppress_health_check=list(HealthCheck))
def test_every_operation_keeps_its_contract(case: Any, role: str, world: World) -> None:
    _exercise(case, role, world)


def test_the_run_reached_the_work(world: World) -> None:
    """Runs after the operations (pytest keeps file order): names what never succeeded."""
    if not OPERATIONS <= REACHED.keys():
        pytest.skip("only after a run of every operation: pytest -m contract tests/contract")
    lines = [f"{op}: {dict(sorted(codes.items()))}" for op, codes in sorted(REACHED.items())]
    print("\n".join(lines))
    missed = [op for op in MUST_SUCCEED
              if not any(200 <= code < 300 for code in REACHED.get(op, {}))]
    assert not missed, f"never succeeded: {missed}"
