"""Small HTTP helpers every handler shares: typed parsing at the edge, redirects, links, the district."""
from __future__ import annotations

import datetime as dt
import functools
import ipaddress
import re
import unicodedata
from urllib.parse import urlencode

from starlette.requests import Request
from starlette.responses import RedirectResponse
from starlette.routing import Route

from models.district import District

MAX_ID = 2**31 - 1  # row ids are 32-bit integers on both databases
FIRST_DAY, LAST_DAY = dt.date(2020, 1, 1), dt.date(2099, 12, 31)  # any day the service deals in
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")


def parse_id(value) -> int | None:
    """A row id typed or posted by anyone: a whole number 1..2^31-1, else None (never an error)."""
    text = str(value or "").strip()
    if not (text.isascii() and text.isdigit()) or len(text) > 10:
        return None
    number = int(text)
    return number if 0 < number <= MAX_ID else None


def parse_day(value) -> dt.date | None:
    """A YYYY-MM-DD day between 2020 and 2099, else None."""
    text = str(value or "").strip()
    if len(text) != 10:
        return None
    try:
        day = dt.date.fromisoformat(text)
    except ValueError:
        return None
    return day if FIRST_DAY <= day <= LAST_DAY else None


def parse_text(value, max_length: int) -> str:
    """Free text for a field of `max_length` characters: NFKC-folded, control characters and
    surrounding spaces removed, cut to length. Never an error."""
    text = unicodedata.normalize("NFKC", str(value or ""))
    return _CONTROL.sub("", text).strip()[:max_length]


def see_other(url: str) -> RedirectResponse:
    """Post/redirect/get, and every other redirect: 303 so the browser GETs the address."""
    return RedirectResponse(url, status_code=303)


@functools.lru_cache(maxsize=8)
def _networks(proxies: tuple[str, ...]) -> tuple:
    return tuple(ipaddress.ip_network(p, strict=False) for p in proxies)


def _trusted(address: str, proxies: tuple[str, ...]) -> bool:
    try:
        ip = ipaddress.ip_address(address)
    except ValueError:
        return False
    return any(ip in net for net in _networks(proxies))


def client_address(request: Request) -> str:
    """The client's address: the peer, or, when the peer is a trusted proxy (TRUSTED_PROXIES),
    the last address in X-Forwarded-For that is not one of ours."""
    peer = request.client.host if request.client else ""
    proxies = request.app.state.settings.trusted_proxies
    if not proxies or not _trusted(peer, proxies):
        return peer
    hops = [h.strip() for h in request.headers.get("x-forwarded-for", "").split(",") if h.strip()]
    for hop in reversed(hops):
        if not _trusted(hop, proxies):
            try:
                return str(ipaddress.ip_address(hop))
            except ValueError:
                return peer  # a forged or broken header: fall back to the proxy itself
    return peer


def district(request: Request) -> District:
    """The district the app was built with (rule book, keys, clock): web/app.py's create_app."""
    return request.app.state.district


def _route(router, name: str) -> Route | None:
    """The Route named `name`, from a table made once per router: a page asks for a dozen paths,
    and the router's own url_path_for tries every route in turn, each refusal an exception."""
    named = router.__dict__.get("_routes_by_name")
    if named is None:
        named = router._routes_by_name = {
            r.name: r for r in reversed(router.routes) if isinstance(r, Route)}  # first one wins
    return named.get(name)


def url_for(request: Request, name: str, /, **params) -> str:
    """The path of a named route; parameters the route's path does not take become the query.

    Remembered per router (a page asks for the same dozen paths on every render), up to a few
    thousand distinct ones; parameters that cannot be a key are worked out every time."""
    router = request.scope.get("router") or request.scope["app"].router
    known = router.__dict__.get("_paths_by_call")
    if known is None:
        known = router._paths_by_call = {}
    try:
        key = (name, *((k, v.__class__, v) for k, v in params.items()))  # 1 and True differ
        return known[key]
    except KeyError:
        path = _url_for(router, name, params)
        if len(known) >= 4096:
            known.clear()
        known[key] = path
        return path
    except TypeError:  # a parameter that is not hashable
        return _url_for(router, name, params)


def _url_for(router, name: str, params: dict) -> str:
    route = _route(router, name)
    in_path = set(route.param_convertors) if route else set()
    path_params = {k: v for k, v in params.items() if k in in_path}
    path = route.url_path_for(name, **path_params) if route else router.url_path_for(name, **path_params)
    query = {k: v for k, v in params.items() if k not in in_path and v is not None}
    return str(path) + (f"?{urlencode(query, safe='/')}" if query else "")
