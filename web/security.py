"""Security plumbing: safety headers on every response, a guard on request bodies, CSRF (the rate
limits: web/limits.py), and an access log that hides tokens and escapes control characters.

Order, outermost first (web/app.py): SecurityHeaders -> BodyGuard -> asgi-csrf -> the app. So
the CSRF refusal, a refused body and a 500 all carry the same headers as every page.
"""
from __future__ import annotations

import logging
import re
import time
from urllib.parse import parse_qsl

from asgi_csrf import asgi_csrf
from starlette.datastructures import MutableHeaders

from models.operations import metrics

from .logs import REQUEST_ID, new_request_id

access_log = logging.getLogger("booking.access")
ROUTE_KEY = "booking.route"  # in the ASGI scope: a list the route's name is put in (metrics)
log = logging.getLogger("booking")

CSP = (
    "default-src 'self'; img-src 'self' data:; style-src 'self'; script-src 'self'; "
    "form-action 'self'; frame-ancestors 'none'; base-uri 'none'; object-src 'none'"
)
_TOKEN_IN_PATH = re.compile(r"^/([bh])/[^/]+")  # a personal link, a hand-off's one-time address
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")
_LONG_NUMBER = re.compile(r"\d{11,}[0-9Xx]?")  # a phone or ID number typed into an address
MAX_FORM_BYTES = 64 * 1024  # our largest form is a few hundred bytes
BODY_METHODS = {"POST", "PUT", "PATCH", "DELETE"}


def redact_path(path: str) -> str:
    """For the log: hide the token of a personal link (/b/abc… -> /b/…) or a one-time address
    (/h/…) and any run of 11 digits or more (a phone or ID number someone typed into the
    address), and escape control characters, so a path can never forge a log line."""
    path = _LONG_NUMBER.sub("…", _TOKEN_IN_PATH.sub(r"/\1/…", path))
    return _CONTROL.sub(lambda m: f"\\x{ord(m.group()):02x}", path)


def add_safety_headers(headers: MutableHeaders, *, https: bool, static: bool) -> None:
    headers["Referrer-Policy"] = "no-referrer"
    headers["X-Content-Type-Options"] = "nosniff"
    headers["X-Frame-Options"] = "DENY"
    headers.setdefault("Content-Security-Policy", CSP)
    if https:
        headers["Strict-Transport-Security"] = "max-age=31536000"
    if not static:
        headers["Cache-Control"] = "no-store"


class SecurityHeaders:
    """Adds no-referrer, no-store on pages, CSP and friends to every response; gives each
    request an id (`X-Request-Id`, and on every line logged while it is answered: web/logs.py);
    logs one line per request; hands its route, status and time to `observe` (web/metrics.py)."""

    def __init__(self, app, *, https: bool = False, observe=None):
        self.app = app
        self.https = https
        self.observe = observe  # (route name, status, seconds) -> None; None: metrics off

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        started = time.monotonic()
        is_static = scope["path"].startswith("/static/")
        status = 0
        request_id = new_request_id()
        waited = False  # answered with the waiting room's page
        if self.observe is not None:  # the route's name, written by web/metrics.py's RouteName
            scope[ROUTE_KEY] = answered = []

        async def send_with_headers(message):
            nonlocal status, waited
            if message["type"] == "http.response.start":
                status = message["status"]
                headers = MutableHeaders(scope=message)
                add_safety_headers(headers, https=self.https, static=is_static)
                headers.append("X-Request-Id", request_id)  # ours alone: no need to look for one
                waited = self.observe is not None and "x-waiting-room" in headers
            await send(message)

        reset = REQUEST_ID.set(request_id)
        try:
            await self.app(scope, receive, send_with_headers)
        except Exception:
            status = status or 500
            raise
        finally:
            seconds = time.monotonic() - started
            path = redact_path(scope["path"])
            access_log.info(
                "%s %s %s %.0fms id=%s", scope["method"], path, status, seconds * 1000, request_id,
                extra={"request_id": request_id, "method": scope["method"], "path": path,
                       "status": status, "ms": round(seconds * 1000, 1)},
            )
            REQUEST_ID.reset(reset)
            if self.observe is not None:  # no route: refused before the routing table, or unknown
                self.observe(answered[0] if answered else "waiting_room" if waited else "none",
                             status, seconds)


def _content_type(scope) -> tuple[str, dict[str, str]]:
    for key, value in scope.get("headers", []):
        if key == b"content-type":
            main, _, rest = value.decode("latin-1").partition(";")
            params = {}
            for part in rest.split(";"):
                name, eq, val = part.strip().partition("=")
                if eq:
                    params[name.strip().lower()] = val.strip().strip('"')
            return main.strip().lower(), params
    return "", {}


def _content_length(scope) -> int | None:
    for key, value in scope.get("headers", []):
        if key == b"content-length":
            text = value.decode("latin-1").strip()
            return int(text) if text.isdigit() and len(text) < 16 else None
    return None


class BodyGuard:
    """Reads a request body once and lets through only what our forms send: a urlencoded body in
    UTF-8, or multipart with a boundary, within MAX_FORM_BYTES. Anything else gets a page in the
    user's language (400, 413 or 415) before the CSRF check or a handler sees it.

    A file upload (a path in `uploads`, with its size limit) is multipart with a declared length:
    it streams through unread, so a large file never sits in memory.
    """

    def __init__(self, app, *, refuse, uploads: dict[str, int] | None = None,
                 signed: frozenset[str] = frozenset()):
        self.app = app
        self.refuse = refuse  # async (scope, send, status, kind) -> None
        self.uploads = uploads or {}
        # Paths other servers call (WeChat's XML, the city platform's JSON): the body is read and
        # its size checked as above, its format is the handler's to check, with the signature.
        self.signed = signed

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http" or scope["method"] not in BODY_METHODS:
            return await self.app(scope, receive, send)
        if scope["path"] in self.uploads and _content_type(scope)[0] == "multipart/form-data":
            # Anything else sent there is read and checked as below: a small form is the
            # handler's to answer (no file chosen), and the role checks come first as everywhere.
            _, params = _content_type(scope)
            length = _content_length(scope)
            if not params.get("boundary"):
                return await self.refuse(scope, send, 400, "bad_request")
            if length is None or length > self.uploads[scope["path"]]:
                return await self.refuse(scope, send, 413, "too_large")
            return await self.app(scope, receive, send)
        body = b""
        more = True
        while more:
            message = await receive()
            if message["type"] == "http.disconnect":
                return
            body += message.get("body", b"")
            more = message.get("more_body", False)
            if len(body) > MAX_FORM_BYTES:
                return await self.refuse(scope, send, 413, "too_large")
        kind, params = _content_type(scope)
        problem = None
        if scope["path"] in self.signed:
            pass
        elif kind == "application/x-www-form-urlencoded":
            try:
                parse_qsl(body.decode("utf-8"), strict_parsing=False)
            except UnicodeDecodeError:
                problem = (400, "bad_request")
        elif kind == "multipart/form-data":
            if not params.get("boundary") or len(params["boundary"]) > 200:
                problem = (400, "bad_request")
        elif body or kind:
            problem = (415, "unsupported")
        if problem:
            return await self.refuse(scope, send, *problem)
        sent = False

        async def replay():
            nonlocal sent
            if sent:
                return await receive()
            sent = True
            return {"type": "http.request", "body": body, "more_body": False}

        return await self.app(scope, replay, send)


def csrf(app, *, secret: str, post_paths: set[str], https: bool, refuse,
         skip: frozenset[str] = frozenset()):
    """asgi-csrf; every POST path is protected even when no cookie came with it, except the
    paths in `skip`, which other servers call with a signature of their own."""

    async def send_csrf_failed(scope, send, message_id=None):
        await refuse(scope, send, 403, "expired")

    return asgi_csrf(
        app, signing_secret=secret, always_protect=post_paths, cookie_secure=https,
        cookie_samesite="Lax", send_csrf_failed=send_csrf_failed,
        skip_if_scope=(lambda scope: scope.get("path") in skip) if skip else None,
    )


# The rate limits moved to web/limits.py (issue 21: they count before they let through).
from .limits import RateLimits  # noqa: E402,F401  (old imports keep working)
