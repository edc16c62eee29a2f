"""Error pages in the user's language, with the same headers as every page: the CSRF refusal, a
refused request body, an unknown address or method, and a 500 (never a traceback)."""
from __future__ import annotations

import logging

from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response

from .security import add_safety_headers
from .templating import render

log = logging.getLogger("booking.errors")

KINDS = {400: "bad_request", 403: "expired", 404: "not_found", 405: "bad_method",
         413: "too_large", 415: "unsupported", 500: "server_error"}


def error_page(request: Request, status: int, kind: str | None = None) -> Response:
    """The page for an HTTP error; plain text if even the page cannot be drawn."""
    kind = kind or KINDS.get(status, "bad_request")
    try:
        response = render(request, "pages/error.html", {"kind": kind}, status=status)
    except Exception:  # the error page must never itself fail
        log.exception("rendering the %s page failed", status)
        response = PlainTextResponse(f"{status}", status_code=status)
    # A 500 is answered outside every middleware of ours: it gets the headers here.
    add_safety_headers(response.headers, https=request.app.state.settings.https, static=False)
    return response


async def refuse(scope, send, status: int, kind: str) -> None:
    """Answer a raw ASGI request with an error page (for middleware below the router)."""
    async def nothing():
        return {"type": "http.disconnect"}

    await error_page(Request(scope), status, kind)(scope, nothing, send)


async def http_error(request: Request, exc: HTTPException) -> Response:
    return error_page(request, exc.status_code)


async def server_error(request: Request, exc: Exception) -> Response:
    return error_page(request, 500)
