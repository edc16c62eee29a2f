"""Pages anyone can open: the start page, and the language and text-size choices."""
from __future__ import annotations

from starlette.requests import Request

from .. import i18n
from ..http import district, parse_text, see_other
from ..templating import LARGE_COOKIE, render

YEAR = 365 * 24 * 3600


def safe_next(value: str | None, default: str = "/") -> str:
    """Only a path on this site: never an open redirect."""
    if value and value.startswith("/") and not value.startswith("//") and "\\" not in value:
        return value
    return default


def _remember(response, request: Request, name: str, value: str) -> None:
    response.set_cookie(name, value, max_age=YEAR, httponly=True, samesite="lax",
                        secure=request.app.state.settings.https)


async def start_page(request: Request):
    # The interval in the words, from the rule book the booking uses (as the guide takes it).
    return render(request, "pages/public/start.html", {"rules": district(request).rules.default})


async def set_language(request: Request):
    lang = request.path_params["lang"]
    response = see_other(safe_next(parse_text(request.query_params.get("next"), 200)))
    if lang in i18n.LANGUAGES:
        _remember(response, request, i18n.LANG_COOKIE, lang)
    return response


async def toggle_large_text(request: Request):
    form = await request.form()
    response = see_other(safe_next(parse_text(form.get("next"), 200)))
    large = request.cookies.get(LARGE_COOKIE) == "large"
    _remember(response, request, LARGE_COOKIE, "normal" if large else "large")
    return response
