"""The counter in a browser: server-rendered pages over the same services and rules as the
API, served at /counter (`pages.py`), with cookie sessions and CSRF tokens (`session.py`) and
Traditional Chinese by default, English on request (`i18n.py`)."""

from __future__ import annotations

from pathlib import Path

from fastapi import FastAPI
from fastapi.staticfiles import StaticFiles

from cardsvc.app.web import pages

STATIC = Path(__file__).with_name("static")


def install(app: FastAPI) -> None:
    app.mount("/counter/static", StaticFiles(directory=str(STATIC)), name="counter-static")
    app.include_router(pages.router)
    pages.install_handlers(app)
