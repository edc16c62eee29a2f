"""Refusals a handler raises instead of returning them: the page to answer with, drawn by one
exception handler registered in web/app.py (as Starlette's own ExceptionMiddleware answers an
HTTPException), so a handler reads straight: parse, call one service, render.

A refusal raised below the router still passes every middleware on its way out (security
headers, the session cookie a handler changed before refusing), like any returned page."""
from __future__ import annotations

from starlette.requests import Request
from starlette.responses import Response

from .http import see_other


class PageRefusal(Exception):
    """Stop the handler and answer with `response` instead: a refusal page (404, 403, 429 …)."""

    def __init__(self, response: Response):
        super().__init__(response.status_code)
        self.response = response


class GoTo(PageRefusal):
    """Stop the handler and send the browser elsewhere (303): back home, back to the card …"""

    def __init__(self, url: str):
        super().__init__(see_other(url))


async def answer(request: Request, exc: PageRefusal) -> Response:
    """The exception handler of every PageRefusal (web/app.py): the page it carries."""
    return exc.response
