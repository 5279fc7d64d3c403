"""The API's OpenAPI schema, as a contract that does not lie.

FastAPI's schema documents successes, and a 422 in a shape this API never sends. This module
adds what every operation can really answer, from what the route is: problem details
(`application/problem+json`) for the statuses the guard, authentication, validation and look-up
produce, next to the ones a route declares itself (`responses=` on its decorator). It also
gives back whole numbers that FastAPI's schema models turned into floats (an id's maximum read
4.611686018427388e+18).

The contract is checked by running schemathesis against the app (tests/contract/), in CI.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from typing import Any

from fastapi.dependencies.models import Dependant
from fastapi.openapi.utils import get_openapi
from fastapi.routing import APIRoute

PROBLEM = "application/problem+json"
_METHODS = ("get", "put", "post", "delete", "patch", "head", "options", "trace")

PROBLEM_SCHEMA: dict[str, Any] = {
    "title": "Problem",
    "type": "object",
    "description": "RFC 9457 problem details. `code` is stable; `title` and `detail` are for "
                   "people. Some problems carry more members (`field`, `rule`, `balance`, ...).",
    "required": ["type", "title", "status", "detail", "code"],
    "properties": {
        "type": {"type": "string", "examples": ["urn:cardsvc:problem:not_found"]},
        "title": {"type": "string"},
        "status": {"type": "integer", "minimum": 400, "maximum": 599},
        "detail": {"type": "string"},
        "code": {"type": "string", "pattern": "^[a-z_]+$", "examples": ["not_found"]},
    },
    "additionalProperties": True,
}
VALIDATION_PROBLEM_SCHEMA: dict[str, Any] = {
    "title": "ValidationProblem",
    "allOf": [{"$ref": "#/components/schemas/Problem"}],
    "description": "`invalid_input`: `errors` lists each field that does not fit the schema "
                   "(never its value); a rule a field's description states names `field`.",
    "type": "object",
    "properties": {
        "errors": {"type": "array", "description": "For a request that does not fit the "
                   "schema: `loc`, `msg` and `type` of each field at fault; for a file that "
                   "is refused (a bill import): `line`, `field` and `message` of each error",
                   "items": {"type": "object"}},
        "field": {"type": "string"},
    },
}

# What any request may be answered with, before routing (cardsvc.app.guard).
ANY_REQUEST = {
    "400": "`malformed_json`: the body is not JSON (cut short, not UTF-8, nested too deep, a "
           "number of thousands of digits); `invalid_input`: a NUL character in the URL",
    "413": "`body_too_large`: the body is larger than the server takes",
    "431": "`headers_too_large`: the request line and headers are larger than the server takes",
}
WITH_INPUT = {"422": "`invalid_input`: a parameter or the body does not fit this schema, or "
                     "breaks a rule its description states"}
STAFF = {"401": "`authentication_required`: no token, or an expired, forged or revoked one",
         "403": "`forbidden`: this role may not do this"}
TERMINAL = {"401": "`bad_signature`, `unknown_terminal`, `stale_timestamp`, `nonce_reused`: "
                   "the request is not signed by a known terminal, or is a replay",
            "403": "`terminal_revoked`"}
LOOKUP = {"404": "`not_found`: no such record"}
REFERENCE = {"404": "`not_found` (or the operation's own code): a record the query or the "
                    "body names does not exist"}
CHANGE = {"409": "the change conflicts with the record's state or an earlier request "
                 "(`illegal_transition`, `idempotency_key_reused`, already registered, ...; "
                 "the operation's own codes are listed where it has them)"}
_CHANGES = frozenset({"post", "put", "patch", "delete"})


def _names_a_record(route: APIRoute) -> bool:
    """Whether the query or the body names a record by its id (`cardholder_id`, ...)."""
    field = route.body_field
    model = getattr(getattr(field, "field_info", None), "annotation", None)
    names = [*getattr(model, "model_fields", {}),
             *(p.name for p in route.dependant.query_params)]
    return any(name.endswith("_id") for name in names)


def iter_api_routes(routes: Iterable[Any]) -> Iterator[APIRoute]:
    """Every APIRoute under `routes`, through included routers of any FastAPI version."""
    for route in routes:
        if isinstance(route, APIRoute):
            yield route
        inner = getattr(route, "original_router", None) or getattr(route, "router", None)
        if inner is not None and inner is not route and hasattr(inner, "routes"):
            yield from iter_api_routes(inner.routes)


def _calls(dependant: Dependant) -> Iterator[Any]:
    for dep in dependant.dependencies:
        yield dep.call
        yield from _calls(dep)


def _integral(node: Any) -> Any:
    if isinstance(node, dict):
        return {k: _integral(v) for k, v in node.items()}
    if isinstance(node, list):
        return [_integral(v) for v in node]
    if isinstance(node, float) and node.is_integer():
        return int(node)
    return node


def _add(responses: dict[str, Any], extra: dict[str, str]) -> None:
    for status, description in extra.items():
        if status in responses:
            known = responses[status].get("description", "")
            if description not in known:
                responses[status]["description"] = (f"{known}; {description}" if known
                                                    and known != "Validation Error"
                                                    else description)
        else:
            responses[status] = {"description": description}


def _no_nul(node: dict[str, Any]) -> None:
    for sub in node.get("anyOf", ()):
        _no_nul(sub)
    if node.get("type") == "string" and not any(
            k in node for k in ("pattern", "format", "enum", "const")):
        node["pattern"] = "^[^\\x00]*$"


def build(app: Any, *, is_staff: Callable[[Any], bool], is_terminal: Callable[[Any], bool],
          is_public: Callable[[Any], bool], terminal_headers: Iterable[str] = ()
          ) -> dict[str, Any]:
    """The app's schema with every answer documented. `is_staff` / `is_terminal` /
    `is_public` tell a route's declaration (a role guard, a terminal's signature, open to
    anyone) from its other calls;
    `terminal_headers` are the signing headers every terminal request must carry."""
    signing = frozenset(terminal_headers)
    schema = get_openapi(title=app.title, version=app.version, description=app.description,
                         routes=app.routes)
    schema = _integral(schema)
    components = schema.setdefault("components", {}).setdefault("schemas", {})
    components["Problem"] = PROBLEM_SCHEMA
    components["ValidationProblem"] = VALIDATION_PROBLEM_SCHEMA
    routes = {(m.lower(), r.path_format): r for r in iter_api_routes(app.routes)
              for m in r.methods or ()}
    for path, item in schema.get("paths", {}).items():
        for method in _METHODS:
            operation = item.get(method)
            if operation is None:
                continue
            route = routes.get((method, path))
            for parameter in operation.get("parameters", ()):
                # The guard refuses a NUL anywhere in the URL.
                _no_nul(parameter.get("schema", {}))
            responses = operation.setdefault("responses", {})
            _add(responses, ANY_REQUEST)
            if route is not None:
                calls = list(_calls(route.dependant))
                d = route.dependant
                if d.path_params or d.query_params or d.header_params or route.body_field:
                    _add(responses, WITH_INPUT)
                if d.path_params:
                    _add(responses, LOOKUP)
                elif _names_a_record(route):
                    _add(responses, REFERENCE)
                public = any(is_public(c) for c in calls)
                guarded = not public or any(is_terminal(c) for c in calls)
                if method in _CHANGES and guarded:
                    _add(responses, CHANGE)
                if any(is_terminal(c) for c in calls):
                    _add(responses, TERMINAL)
                    for parameter in operation.get("parameters", ()):
                        if parameter.get("in") == "header" and parameter["name"] in signing:
                            parameter["required"] = True
                elif not public and any(is_staff(c) for c in calls):
                    _add(responses, STAFF)
            for status, response in responses.items():
                if status[0] in "45":
                    ref = "ValidationProblem" if status == "422" else "Problem"
                    response["content"] = {PROBLEM: {"schema": {
                        "$ref": f"#/components/schemas/{ref}"}}}
    for unused in ("HTTPValidationError", "ValidationError"):
        components.pop(unused, None)
    return schema
