"""Small HTTP helpers every handler shares: typed parsing at the edge, redirects, links, the district."""
from __future__ import annotations

import datetime as dt
from urllib.parse import urlencode

from starlette.requests import Request
from starlette.responses import RedirectResponse
from starlette.routing import Route

from models.district import District

MAX_ID = 2**31 - 1  # row ids are 32-bit integers on both databases


def parse_id(value) -> int | None:
    """A row id typed or posted by anyone: a whole number 1..2^31-1, else None (never an error)."""
    text = str(value or "").strip()
    if not (text.isascii() and text.isdigit()) or len(text) > 10:
        return None
    number = int(text)
    return number if 0 < number <= MAX_ID else None


def parse_day(value) -> dt.date | None:
    """A YYYY-MM-DD day, else None."""
    text = str(value or "").strip()
    if len(text) != 10:
        return None
    try:
        return dt.date.fromisoformat(text)
    except ValueError:
        return None


def see_other(url: str) -> RedirectResponse:
    """Post/redirect/get, and every other redirect: 303 so the browser GETs the address."""
    return RedirectResponse(url, status_code=303)


def client_address(request: Request) -> str:
    return request.client.host if request.client else ""


def district(request: Request) -> District:
    """The district the app was built with (rule book, keys, clock): web/app.py's create_app."""
    return request.app.state.district


def url_for(request: Request, name: str, /, **params) -> str:
    """The path of a named route; parameters the route's path does not take become the query."""
    router = request.scope["router"]
    route = next((r for r in router.routes if isinstance(r, Route) and r.name == name), None)
    in_path = set(route.param_convertors) if route else set()
    path = router.url_path_for(name, **{k: v for k, v in params.items() if k in in_path})
    query = {k: v for k, v in params.items() if k not in in_path and v is not None}
    return str(path) + (f"?{urlencode(query, safe='/')}" if query else "")
