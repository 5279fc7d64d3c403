"""RFC 9457 problem details for every error the API can return.

Nothing the client sent is echoed back in a validation error: request bodies carry national
IDs and phone numbers, and error bodies end up in logs.
"""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from cardsvc.errors import DomainError, problem_body

PROBLEM = "application/problem+json"


def problem(status: int, code: str, title: str, detail: str, **extra: Any) -> JSONResponse:
    body = problem_body(status, code, title, detail, **extra)
    headers = {}
    if status == 401:
        headers["WWW-Authenticate"] = "Bearer"
    if "retry_after" in extra:
        headers["Retry-After"] = str(extra["retry_after"])
    return JSONResponse(body, status_code=status, media_type=PROBLEM, headers=headers)


def _clean_errors(errors: Any) -> list[dict[str, Any]]:
    out = []
    for e in errors:
        out.append({"loc": [str(p) for p in e.get("loc", ())], "msg": e.get("msg", ""),
                    "type": e.get("type", "")})
    return out


def install(app: FastAPI) -> None:
    @app.exception_handler(DomainError)
    async def _domain(_req: Request, exc: DomainError) -> JSONResponse:
        return problem(exc.status, exc.code, exc.title, exc.detail, **exc.extra)

    @app.exception_handler(RequestValidationError)
    async def _validation(_req: Request, exc: RequestValidationError) -> JSONResponse:
        errors = _clean_errors(exc.errors())
        if any(e["type"] == "json_invalid" for e in errors):
            return problem(400, "malformed_json", "Malformed JSON",
                           "the request body is not valid JSON", errors=errors)
        fields = {e["loc"][-1] for e in errors if e["loc"]}
        extra = {"field": fields.pop()} if len(fields) == 1 else {}
        return problem(422, "invalid_input", "Invalid input",
                       "the request does not match the expected shape", errors=errors, **extra)

    @app.exception_handler(StarletteHTTPException)
    async def _http(_req: Request, exc: StarletteHTTPException) -> JSONResponse:
        if exc.status_code == 400 and exc.__cause__ is not None:
            # The body could not be read as JSON: not UTF-8, nested past the parser's depth,
            # a number of thousands of digits (FastAPI wraps what json.loads raised).
            return problem(400, "malformed_json", "Malformed JSON",
                           "the request body is not valid JSON")
        if exc.status_code == 413:
            response = problem(413, "body_too_large", "Request body too large", str(exc.detail))
            response.headers["Connection"] = "close"
            return response
        code = {404: "not_found", 405: "method_not_allowed"}.get(exc.status_code, "http_error")
        response = problem(exc.status_code, code, str(exc.detail), str(exc.detail))
        for name, value in (exc.headers or {}).items():  # a 405's Allow, for one
            response.headers[name] = value
        return response

    # Errors nothing here handles are answered (and logged once) by cardsvc.app.guard.Guard.
