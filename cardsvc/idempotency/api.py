"""The HTTP side of idempotency: the stored answer, replayed."""

from __future__ import annotations

from typing import Any

from fastapi.responses import JSONResponse

from cardsvc.idempotency.service import IdempotentResult


def replayable(result: IdempotentResult) -> Any:
    """The HTTP answer for an idempotent result (a stored refusal keeps its status)."""
    headers = {"Idempotent-Replayed": "true"} if result.replayed else {}
    media = "application/problem+json" if result.status_code >= 400 else "application/json"
    return JSONResponse(result.body, status_code=result.status_code, headers=headers,
                        media_type=media)
