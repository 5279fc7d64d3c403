# The handful of commands a newcomer needs. Assumes the virtual environment in .venv.
VENV ?= .venv
PY := $(VENV)/bin
PG_URL ?= postgresql+psycopg://postgres@127.0.0.1:5432/test

.PHONY: install dev serve demo test test-pg contract lint imports types migrations check

install:
	python3 -m venv $(VENV) && $(PY)/pip install -e .

dev:
	python3 -m venv $(VENV) && $(PY)/pip install -e '.[dev]'

serve:
	$(PY)/cardsvc serve

demo:
	$(PY)/cardsvc demo

test:
	$(PY)/pytest

test-pg:
	CARDSVC_TEST_DATABASE_URL=$(PG_URL) $(PY)/pytest

contract:  # the API contract run: schemathesis against the app's own OpenAPI schema
	$(PY)/pytest -m contract tests/contract

lint:
	$(PY)/ruff check .

imports:  # the import contracts in pyproject.toml: cardsvc.app > settlement > merchants > core
	$(PY)/lint-imports

types:
	$(PY)/mypy

migrations:
	$(PY)/alembic check

check: lint imports types test
