"""Everything the counter may show a clerk has its Traditional Chinese: the templates'
messages, the pages' own notices and refusals, and the title of every refusal a service can
raise (the page shows it in the clerk's language, the service's detail in small print)."""

from __future__ import annotations

import ast
import importlib
import pkgutil
from collections.abc import Iterator
from pathlib import Path

import pytest
from babel.messages.pofile import read_po
from jinja2.ext import babel_extract

import cardsvc
import merchants
import settlement
from cardsvc.app.web import i18n
from cardsvc.errors import DomainError

WEB = Path(i18n.__file__).parent
# Module constants of the pages that are not words for people.
NOT_WORDS = {"TEMPLATES", "LOGIN_CSRF", "FIELD_NAMES", "DB"}


@pytest.fixture(scope="module")
def translated() -> set[str]:
    with (i18n.LOCALES / "zh_Hant" / "LC_MESSAGES" / "counter.po").open("rb") as fh:
        return {m.id for m in read_po(fh) if isinstance(m.id, str) and m.id and m.string}


def template_messages() -> Iterator[tuple[str, str]]:
    for path in sorted((WEB / "templates").glob("*.html")):
        with path.open("rb") as fh:
            for _line, _func, message, _comments in babel_extract(fh, ["_"], [], {}):
                if isinstance(message, str):
                    yield path.name, message


def _strings(node: ast.AST, *, dict_keys: bool = False) -> Iterator[str]:
    if isinstance(node, ast.Constant) and isinstance(node.value, str) and node.value:
        yield node.value
    elif isinstance(node, ast.Dict):
        for value in node.values:
            yield from _strings(value)
    elif isinstance(node, ast.Tuple | ast.BinOp | ast.JoinedStr):
        for child in ast.iter_child_nodes(node):
            yield from _strings(child)


def page_messages() -> Iterator[str]:
    tree = ast.parse((WEB / "pages.py").read_text(encoding="utf-8"))
    for stmt in tree.body:  # the pages' module constants of words
        if isinstance(stmt, ast.Assign) and isinstance(stmt.targets[0], ast.Name) \
                and stmt.targets[0].id.isupper() and stmt.targets[0].id not in NOT_WORDS:
            yield from _strings(stmt.value)
    for node in ast.walk(tree):  # notices and refusals: (message, what it is about, …)
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Name) \
                and node.func.id == "_card_step":  # its last argument is the notice
            yield from _strings(node.args[-1])
        if isinstance(node, ast.keyword) and node.arg in {"notice", "refusal", "error"}:
            given = [node.value.body, node.value.orelse] if isinstance(node.value, ast.IfExp) \
                else [node.value]
            for tup in given:
                for value in tup.elts[:2] if isinstance(tup, ast.Tuple) else []:
                    if isinstance(value, ast.Constant) and isinstance(value.value, str) \
                            and value.value:
                        yield value.value


def refusal_titles() -> set[str]:
    for package in (cardsvc, merchants, settlement):
        for module in pkgutil.walk_packages(package.__path__, f"{package.__name__}."):
            if ".migrations" not in module.name and not module.name.endswith("__main__"):
                importlib.import_module(module.name)
    seen: set[str] = set()
    todo = [DomainError]
    while todo:
        cls = todo.pop()
        seen.add(cls.title)
        todo.extend(cls.__subclasses__())
    return seen


def test_every_template_message_is_translated(translated: set[str]) -> None:
    messages = list(template_messages())
    assert len(messages) > 200  # the extractor found the templates' words
    assert [m for m in messages if m[1] not in translated] == []


def test_every_notice_and_refusal_of_the_pages_is_translated(translated: set[str]) -> None:
    messages = set(page_messages())
    assert "Choose a reason." in messages and "counter service" in messages
    assert sorted(messages - translated) == []


def test_every_service_refusal_has_a_title_in_chinese(translated: set[str]) -> None:
    titles = refusal_titles()
    assert "Purse balance too low" in titles and len(titles) > 80
    assert sorted(titles - translated) == []
