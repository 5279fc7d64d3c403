"""ASGI entry point for process managers: `uvicorn cardsvc.app.asgi:app --workers 4`.

Reads the same `CARDSVC_*` settings as the CLI. In production the schema must already be
migrated (`cardsvc db upgrade`); with the embedded SQLite default it is migrated on start.
"""

from __future__ import annotations

from cardsvc.app.bootstrap import bootstrap
from cardsvc.app.http import create_app
from cardsvc.config import get_settings

app = create_app(bootstrap(get_settings()).runtime, serving=True)
