"""Requests take JSON types as they are: an integer is not a date or a boolean, a boolean is
not an id, a number in a string is not a number. Checked on every request body the API
takes, so a new field cannot quietly fall back to pydantic's lax conversions."""

from __future__ import annotations

import datetime as dt
import typing
from collections.abc import Iterator

import pytest
from fastapi.routing import APIRoute
from pydantic import BaseModel, ValidationError

from cardsvc.app.http import POS_ROUTERS, ROUTERS
from tests.support import factories as f

WRONG: dict[type, tuple[object, ...]] = {
    int: (True, 1.5, "1"),
    bool: (0, 1, "true", None),
    dt.date: (0, 1_700_000_000, "1700000000", "2024-01-01T00:00:00", True),
}


def _base(annotation: object) -> list[object]:
    args = typing.get_args(annotation)
    if typing.get_origin(annotation) in (list, tuple):
        return [a for arg in args for a in _base(arg)]
    return [a for a in (args or (annotation,)) if a is not type(None)]


def body_models() -> Iterator[type[BaseModel]]:
    seen: set[type[BaseModel]] = set()
    todo: list[type[BaseModel]] = []
    for route in (r for router in (*ROUTERS, *POS_ROUTERS) for r in router.routes):
        if isinstance(route, APIRoute) and route.body_field is not None:
            t = route.body_field.field_info.annotation
            if isinstance(t, type) and issubclass(t, BaseModel):
                todo.append(t)
    while todo:
        model = todo.pop()
        if model in seen:
            continue
        seen.add(model)
        yield model
        for field in model.model_fields.values():
            todo += [b for b in _base(field.annotation)
                     if isinstance(b, type) and issubclass(b, BaseModel)]


def test_every_body_field_refuses_the_wrong_json_type() -> None:
    checked = 0
    for model in body_models():
        for name, field in model.model_fields.items():
            for kind in _base(field.annotation):
                for wrong in WRONG.get(kind, ()):  # type: ignore[call-overload]
                    if wrong is None and not field.is_required() and field.default is None:
                        continue  # an optional field may be null
                    with pytest.raises(ValidationError) as info:
                        model.model_validate({name: wrong})
                    locs = {e["loc"][:1] for e in info.value.errors()}
                    assert (field.alias or name,) in locs, (model.__name__, name, wrong)
                    checked += 1
    assert checked > 40  # the walk found the request bodies


def test_a_date_is_not_a_number_and_a_proof_ends_in_a_sane_range(clerk) -> None:  # type: ignore[no-untyped-def]
    h = f.holder(clerk)
    for bad in (0, "0001-01-01", "9999-12-31", "2024-01-01T00:00:00"):
        for path, extra in (("enrolments", {"school": "金門高中"}),
                            ("disability-certificates", {"certificate_no": "DC-0001"})):
            r = clerk.post(f"/cardholders/{h['id']}/{path}", {**extra, "valid_until": bad})
            assert r.status_code == 422 and r.json()["code"] == "invalid_input", (path, bad)
            assert r.json()["errors"][0]["loc"] == ["body", "valid_until"]
    ok = (f.today() + dt.timedelta(days=365)).isoformat()
    clerk.ok("POST", f"/cardholders/{h['id']}/enrolments",
             {"school": "金門高中", "valid_until": ok}, status=201)
    r = clerk.post("/cardholders", {"name": "數字生日", "person_id": f.new_person_id(),
                                    "birth_date": 0, "township": "金城鎮"})
    assert r.status_code == 422


def test_a_number_does_not_switch_an_account_off(admin) -> None:  # type: ignore[no-untyped-def]
    staff = admin.ok("POST", "/staff", {"username": "clerk.zero", "role": "clerk",
                                        "password": "a-long-password"}, status=201)
    for bad in (0, "false", None):
        r = admin.req("PATCH", f"/staff/{staff['id']}", {"active": bad})
        if bad is None:
            assert r.status_code == 200  # null: leave it as it is
        else:
            assert r.status_code == 422, bad
    assert next(s for s in admin.ok("GET", "/staff") if s["id"] == staff["id"])["active"] is True


def test_a_boolean_is_not_an_id(clerk) -> None:  # type: ignore[no-untyped-def]
    f.holder(clerk)  # cardholder 1 exists: `true` must not be taken for it
    r = clerk.post("/cards/applications", {"cardholder_id": True, "product": "general"})
    assert r.status_code == 422


def test_every_date_in_a_query_is_written_as_a_date(supervisor) -> None:  # type: ignore[no-untyped-def]
    """Query parameters too: ?from=0 was read as 1970-01-01."""
    import datetime as dt

    from cardsvc.schemas_common import IsoDate
    iso = typing.get_args(IsoDate)[1]
    dated = 0
    for route in (r for router in (*ROUTERS, *POS_ROUTERS) for r in router.routes):
        if not isinstance(route, APIRoute):
            continue
        for param in route.dependant.query_params:
            if param.field_info.annotation is dt.date:
                assert iso in param.field_info.metadata, (route.path, param.name)
                dated += 1
    assert dated >= 3
    for bad in ("0", "1700000000", "2026-01-01T00:00:00"):
        r = supervisor.get("/stats/issuance", **{"from": bad, "to": "2026-01-31"})
        assert r.status_code == 422 and r.json()["field"] == "from", bad
    assert supervisor.get("/stats/issuance", **{"from": "2026-01-01",
                                                "to": "2026-01-31"}).status_code == 200
