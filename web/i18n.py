"""Languages: Babel catalogs (message ids are the Simplified Chinese text), per-request choice, dates."""
from __future__ import annotations

import datetime as dt
from contextvars import ContextVar
from functools import lru_cache
from io import BytesIO
from pathlib import Path

from babel.dates import format_date
from babel.messages.mofile import write_mo
from babel.messages.pofile import read_po
from babel.support import NullTranslations, Translations

LOCALE_DIR = Path(__file__).resolve().parent.parent / "locale"
LANGUAGES = {"zh": "zh_Hans_CN", "en": "en_GB"}
DEFAULT_LANGUAGE = "zh"
LANG_COOKIE = "lang"

_current: ContextVar[str] = ContextVar("language", default=DEFAULT_LANGUAGE)
_catalogs: dict[str, NullTranslations] = {}


def _load(lang: str) -> NullTranslations:
    """Compile the language's .po in memory: no build step, the .po is the single source."""
    po = LOCALE_DIR / lang / "LC_MESSAGES" / "messages.po"
    if not po.is_file():
        return NullTranslations()
    with po.open("rb") as f:
        catalog = read_po(f, locale=LANGUAGES[lang].split("_")[0])
    buf = BytesIO()
    write_mo(buf, catalog)
    buf.seek(0)
    return Translations(buf)


def translations(lang: str) -> NullTranslations:
    if lang not in _catalogs:
        _catalogs[lang] = _load(lang) if lang != DEFAULT_LANGUAGE else NullTranslations()
    return _catalogs[lang]


def choose_language(cookie_value: str | None) -> str:
    return cookie_value if cookie_value in LANGUAGES else DEFAULT_LANGUAGE


def set_language(lang: str) -> None:
    _current.set(lang)


def current_language() -> str:
    return _current.get()


def gettext(message: str) -> str:
    return translations(_current.get()).gettext(message)


def ngettext(singular: str, plural: str, n: int) -> str:
    return translations(_current.get()).ngettext(singular, plural, n)


@lru_cache(maxsize=8192)
def _format_date(day: dt.date, pattern: str, lang: str) -> str:
    """Babel's format_date, remembered: it parses its pattern on every call, and a page of
    100 sites or a strip of 14 days would format the same few dates hundreds of times."""
    return format_date(day, pattern, locale=LANGUAGES[lang])


def weekday_text(day: dt.date) -> str:
    """周一 / Mon: the one way every page writes a weekday (issue 13)."""
    return _format_date(day, "E" if _current.get() == "zh" else "EEE", _current.get())


def day_text(day: dt.date) -> str:
    """6月21日 周一 / Mon 21 June."""
    pattern = "M月d日" if _current.get() == "zh" else "d MMMM"
    return f"{_format_date(day, pattern, _current.get())} {weekday_text(day)}" if _current.get() == "zh" \
        else f"{weekday_text(day)} {_format_date(day, pattern, _current.get())}"


def short_day_text(day: dt.date) -> str:
    """6月21日 周一 / Mon 21 Jun."""
    pattern = "M月d日" if _current.get() == "zh" else "d MMM"
    return f"{_format_date(day, pattern, _current.get())} {weekday_text(day)}" if _current.get() == "zh" \
        else f"{weekday_text(day)} {_format_date(day, pattern, _current.get())}"


def numeric_day_text(day: dt.date) -> str:
    """6/21 / 21/6: the date under the weekday in the day strip."""
    return _format_date(day, "M/d" if _current.get() == "zh" else "d/M", _current.get())


def full_date_text(day: dt.date) -> str:
    """2021年6月21日 / 21 June 2021."""
    pattern = "y年M月d日" if _current.get() == "zh" else "d MMMM y"
    return _format_date(day, pattern, _current.get())


def window_text(start: str, end: str) -> str:
    """09:00-10:00 in either language: the SMS's own way (models/messaging/wording.py:
    time_span), so the page and the message say the same time the same way."""
    from models.messaging.wording import time_span

    return time_span(start, end)


def datetime_text(moment: dt.datetime) -> str:
    """A moment in Beijing time, e.g. 6月21日 14:30."""
    from models.clock import TZ

    local = moment.astimezone(TZ)
    pattern = "M月d日" if _current.get() == "zh" else "d MMM"
    return f"{_format_date(local.date(), pattern, _current.get())} {local:%H:%M}"


def clock_text(moment: dt.datetime) -> str:
    """A time of day in Beijing time: 14:35."""
    from models.clock import TZ

    return f"{moment.astimezone(TZ):%H:%M}"
