"""The staff vocabulary (models/staff/vocabulary.py) in the language of the request: Chinese by
default, English when the interface is English. Bound to the language's catalog, not to the
request's context, so a CSV streamed after the handler returns is written in the same words."""
from __future__ import annotations

from starlette.requests import Request

from models.staff.vocabulary import Words
from . import i18n


def words_for(request: Request) -> Words:
    lang = i18n.choose_language(request.cookies.get(i18n.LANG_COOKIE))
    return Words(i18n.translations(lang).gettext, lang)
