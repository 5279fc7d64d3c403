"""The counter's languages: Traditional Chinese (the county's staff) by default, English on
request. Messages are gettext catalogues (`locale/<language>/LC_MESSAGES/counter.po`, English
message ids), compiled when first used; dates go out in the ROC calendar where the county
writes them so (民國 115 年 12 月 6 日)."""

from __future__ import annotations

import datetime as dt
import gettext
import io
from functools import cache
from pathlib import Path

from babel.messages.mofile import write_mo
from babel.messages.pofile import read_po

from cardsvc.roc import format_roc

LOCALES = Path(__file__).with_name("locale")
LANGUAGES = {"zh_Hant": "中文", "en": "English"}
DEFAULT = "zh_Hant"


@cache
def translations(language: str) -> gettext.NullTranslations:
    po = LOCALES / language / "LC_MESSAGES" / "counter.po"
    if not po.exists():
        return gettext.NullTranslations()  # English: the message ids themselves
    with po.open("rb") as fh:
        catalogue = read_po(fh)
    buf = io.BytesIO()
    write_mo(buf, catalogue)
    buf.seek(0)
    return gettext.GNUTranslations(buf)


def pick(cookie: str | None) -> str:
    return cookie if cookie in LANGUAGES else DEFAULT


def roc_date(day: dt.date | None, language: str) -> str:
    if day is None:
        return ""
    return day.isoformat() if language == "en" else format_roc(day)
