"""Security plumbing: safety headers on every response, a guard on request bodies (the CSRF check:
web/csrf.py; the rate limits: web/limits.py), and an access log that hides tokens and escapes
control characters.

Order, outermost first (web/app.py): SecurityHeaders -> BodyGuard -> CSRF -> the app. So the
CSRF refusal, a refused body and a 500 all carry the same headers as every page.
"""
from __future__ import annotations

import logging
import re
import time
from starlette.datastructures import MutableHeaders

from models import metrics

from .bodies import (MULTIPART, URLENCODED, BodyRefused, BodyTooLarge, content_type, good_boundary,
                     replaying, set_content_type)
from .logs import REQUEST_ID, new_request_id

access_log = logging.getLogger("booking.access")
ROUTE_KEY = "booking.route"  # in the ASGI scope: a list the route's name is put in (metrics)
log = logging.getLogger("booking")

CSP = (
    "default-src 'self'; img-src 'self' data:; style-src 'self'; script-src 'self'; "
    "form-action 'self'; frame-ancestors 'none'; base-uri 'none'; object-src 'none'"
)
_TOKEN_IN_PATH = re.compile(r"^/([bho])/[^/]+")  # a personal link, a hand-off's one-time address, an offer link
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")
_LONG_NUMBER = re.compile(r"\d{11,}[0-9Xx]?")  # a phone or ID number typed into an address
_TO_REDACT = re.compile(r"^/[bho]/|\d{11}|[\x00-\x1f\x7f]")  # what any of the three could change
MAX_FORM_BYTES = 64 * 1024  # our largest form is a few hundred bytes
BODY_METHODS = {"POST", "PUT", "PATCH", "DELETE"}


def redact_path(path: str) -> str:
    """For the log: hide the token of a personal link (/b/abc… -> /b/…), a one-time address
    (/h/…) or a waiting-list offer link (/o/…), and any run of 11 digits or more (a phone or ID
    number someone typed into the address), and escape control characters, so a path can never
    forge a log line."""
    if _TO_REDACT.search(path) is None:
        return path
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


# The names add_safety_headers sets (replacing one the response has) or adds only if missing.
_SAFETY_NAMES = frozenset({b"referrer-policy", b"x-content-type-options", b"x-frame-options",
                           b"content-security-policy", b"strict-transport-security", b"cache-control"})


def safety_headers_raw(*, https: bool, static: bool) -> list[tuple[bytes, bytes]]:
    """What add_safety_headers adds to a response that has none of _SAFETY_NAMES, in its order."""
    headers = MutableHeaders(raw=[])
    add_safety_headers(headers, https=https, static=static)
    return headers.raw


class SecurityHeaders:
    """Adds no-referrer, no-store on pages, CSP and friends to every response; gives each
    request an id (`X-Request-Id`, and on every line logged while it is answered: web/logs.py);
    logs one line per request; hands its route, status and time to `observe` (web/metrics.py)."""

    def __init__(self, app, *, https: bool = False, observe=None):
        self.app = app
        self.https = https
        self.observe = observe  # (route name, status, seconds) -> None; None: metrics off
        # Worked out once: the headers of a page and of a static file, as add_safety_headers
        # would add them to a response that has none of them (most responses).
        self._added = {static: safety_headers_raw(https=https, static=static) for static in (False, True)}

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
                raw = message.get("headers")
                if type(raw) is list and not any(k in _SAFETY_NAMES for k, _ in raw):
                    # A new list, as MutableHeaders makes: a response object keeps its own.
                    message["headers"] = [*raw, *self._added[is_static],
                                          (b"x-request-id", request_id.encode("latin-1"))]
                    waited = self.observe is not None and any(k == b"x-waiting-room" for k, _ in raw)
                else:
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
            if access_log.isEnabledFor(logging.INFO):
                path = redact_path(scope["path"])
                # Logger.info's record without its look up the stack for the caller's file and
                # line, which no format of ours writes (web/logs.py).
                access_log.handle(access_log.makeRecord(
                    access_log.name, logging.INFO, "(unknown file)", 0, "%s %s %s %.0fms id=%s",
                    (scope["method"], path, status, seconds * 1000, request_id), None,
                    "(unknown function)",
                    {"request_id": request_id, "method": scope["method"], "path": path,
                     "status": status, "ms": round(seconds * 1000, 1)}))
            REQUEST_ID.reset(reset)
            if self.observe is not None:  # no route: refused before the routing table, or unknown
                self.observe(answered[0] if answered else "waiting_room" if waited else "none",
                             status, seconds)


def _content_length(scope) -> int | None:
    for key, value in scope.get("headers", []):
        if key == b"content-length":
            text = value.decode("latin-1").strip()
            return int(text) if text.isdigit() and len(text) < 16 else None
    return None


class BodyGuard:
    """Bounds every request body before anything reads it, and lets through only what our forms
    send: a urlencoded body in UTF-8, or multipart with a boundary RFC 2046 allows, in any valid
    form of the header (web/bodies.py; what comes after sees it in one canonical form). Anything
    else gets a page in the user's language (400, 413 or 415) before the CSRF check or a handler
    sees it.

    The bytes that actually arrive are counted, whatever Content-Length said or if it said
    nothing (a chunked body): past the path's limit the request is cut off with 413.

    - Every path: MAX_FORM_BYTES, read whole here (a Content-Length above it: refused unread).
    - A file upload (a path in `uploads`, with its limit) sent as multipart: not read here. It
      streams to its handler, which reads it only after its staff check (an anonymous or
      non-admin request is answered without a byte of the body read), and the count cuts it off
      past the limit while the handler reads (BodyTooLarge, answered 413 by Starlette).
    """

    def __init__(self, app, *, refuse, uploads: dict[str, int] | None = None,
                 signed: frozenset[str] = frozenset()):
        self.app = app
        self.refuse = refuse  # async (scope, send, status, kind) -> None
        self.uploads = uploads if uploads is not None else {}  # the same dict: tests may change it
        # Paths other servers call (WeChat's XML, the city platform's JSON): the body is read and
        # its size checked as above, its format is the handler's to check, with the signature.
        self.signed = signed

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http" or scope["method"] not in BODY_METHODS:
            return await self.app(scope, receive, send)
        path = scope["path"]
        kind, params = content_type(scope)
        length = _content_length(scope)
        if path in self.uploads and kind == MULTIPART:
            # Anything else sent there is read and checked as below: a small form is the
            # handler's to answer (no file chosen), and the role checks come first as everywhere.
            boundary = good_boundary(params)
            if boundary is None:
                return await self.refuse(scope, send, 400, "bad_request")
            if length is not None and length > self.uploads[path]:
                return await self.refuse(scope, send, 413, "too_large")
            set_content_type(scope, f'{MULTIPART}; boundary="{boundary}"')
            return await self._stream(scope, receive, send, self.uploads[path])
        if length is not None and length > MAX_FORM_BYTES:
            return await self.refuse(scope, send, 413, "too_large")
        chunks, size, more = [], 0, True
        while more:
            message = await receive()
            if message["type"] == "http.disconnect":
                return
            chunk = message.get("body", b"")
            size += len(chunk)
            if size > MAX_FORM_BYTES:
                return await self.refuse(scope, send, 413, "too_large")
            chunks.append(chunk)
            more = message.get("more_body", False)
        body = b"".join(chunks)
        problem = None
        if path in self.signed:
            pass
        elif kind == URLENCODED:
            try:
                body.decode("utf-8")
            except UnicodeDecodeError:
                problem = (400, "bad_request")
            set_content_type(scope, URLENCODED)
        elif kind == MULTIPART:
            boundary = good_boundary(params)
            if boundary is None:
                problem = (400, "bad_request")
            else:
                set_content_type(scope, f'{MULTIPART}; boundary="{boundary}"')
        elif kind == "?":  # several Content-Type headers
            problem = (400, "bad_request")
        elif body or kind:
            problem = (415, "unsupported")
        if problem:
            return await self.refuse(scope, send, *problem)
        return await self.app(scope, replaying(body, receive), send)

    async def _stream(self, scope, receive, send, limit: int):
        received = 0
        started = False

        async def counted():
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > limit:
                    raise BodyTooLarge(f"more than {limit} bytes")
            return message

        async def watched(message):
            nonlocal started
            started = started or message["type"] == "http.response.start"
            await send(message)

        try:
            await self.app(scope, counted, watched)
        except BodyRefused as refusal:  # read by a layer above Starlette's exception handling
            if started:
                raise
            await self.refuse(scope, send, refusal.status, refusal.kind)
