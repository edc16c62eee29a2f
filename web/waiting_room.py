"""The waiting room: at most `active` resident requests in flight per server process; the rest
wait in line, best place first, and past the wait get a small page that refreshes itself.

Place in line, best first: a POST (a resident mid-journey submitting a form), then a GET of a
resident mid-journey (a genuine session cookie), then a resident holding a `queue` cookie
(signed: when they first queued), oldest first, then new arrivals. A
GET not let in within `wait` seconds gets the waiting page (200, `X-Waiting-Room: 1`,
`Retry-After`, a meta refresh to the same address) and the cookie, so its refresh goes ahead of
newer arrivals. A POST waits `post_wait` seconds; past that its page offers the same form again.

Only resident paths are queued (RESIDENT_PREFIXES); staff pages, /static and /healthz never
are. The fast path is one comparison: a free place means nobody is waiting, because a finished
request hands its place straight to the best waiter.
"""
from __future__ import annotations

import asyncio
import heapq
import itertools
import math
import time
from urllib.parse import parse_qsl, quote

from itsdangerous import BadSignature, TimestampSigner
from starlette.requests import Request, cookie_parser

from .templating import render

RESIDENT_PREFIXES = ("/b/", "/h/", "/booking", "/entry", "/find", "/lang/", "/text-size", "/poster")
COOKIE = "queue"
COOKIE_MAX_AGE = 20 * 60  # since the last waiting page: a journey's length; a stale one is new
POST, JOURNEY, QUEUED, NEW = 0, 1, 2, 3  # classes of place in line, best first
MIN_REFRESH, MAX_REFRESH, UNKNOWN_REFRESH = 3, 20, 5  # seconds before the page asks again
PAGE = "pages/waiting.html"
_QUERY_SAFE = "=&%+/:,;@!$'()*~"  # a query string as sent stays as it was


def is_resident_path(path: str) -> bool:
    return path == "/" or path.startswith(RESIDENT_PREFIXES)


def _cookies(scope) -> dict[str, str]:
    for key, value in scope["headers"]:
        if key == b"cookie":
            return cookie_parser(value.decode("latin-1"))
    return {}


class Line:
    """Places in flight and the line of waiters (a heap of (place, sequence, future))."""

    def __init__(self, limit: int):
        self.limit = limit
        self.active = 0
        self.served = 0  # finished requests, for the wait estimate
        self._heap: list = []
        self._seq = itertools.count()
        self._gone = 0  # waiters gone (timed out or left) since the heap was last compacted
        self._marks = [(time.monotonic(), 0), (time.monotonic(), 0)]  # for rate()

    def waiting(self) -> int:
        return sum(1 for _, _, fut in self._heap if not fut.done())

    def ahead_of(self, place: tuple) -> int:
        """Waiters in line with a better place than `place` (about half the line, when long:
        the page says "about", and counting a long line for every page would cost)."""
        if len(self._heap) > 2000:
            return len(self._heap) // 2
        return sum(1 for p, _, fut in self._heap if p < place and not fut.done())

    async def wait(self, place: tuple, timeout: float, gone: asyncio.Future | None = None) -> bool:
        """Wait for a place: True once handed one (release() it after), False on timeout or
        when `gone` (the client leaving) completes first."""
        loop = asyncio.get_running_loop()
        fut = loop.create_future()
        heapq.heappush(self._heap, (place, next(self._seq), fut))
        timer = loop.call_later(timeout, self._give_up, fut)
        if gone is not None:
            gone.add_done_callback(lambda _: self._give_up(fut))
        try:
            return await fut
        except BaseException:  # cancelled: pass on a place handed over just as we left
            if fut.done() and not fut.cancelled() and fut.result():
                self.release()
            elif fut.cancelled():
                self._gone += 1
            raise
        finally:
            timer.cancel()

    def _give_up(self, fut: asyncio.Future) -> None:
        if not fut.done():
            fut.set_result(False)
            self._gone += 1
            if self._gone > 256 and self._gone > len(self._heap) // 2:  # drop the leavers
                self._heap = [e for e in self._heap if not e[2].done()]
                heapq.heapify(self._heap)
                self._gone = 0

    def release(self) -> None:
        """A request finished: its place goes to the best waiter, or back to the free places."""
        self.served += 1
        while self._heap:
            _, _, fut = heapq.heappop(self._heap)
            if not fut.done():
                fut.set_result(True)
                return
        self.active -= 1

    def rate(self) -> float | None:
        """Requests finished per second over the last 10 to 20 seconds (None: too early)."""
        now = time.monotonic()
        if now - self._marks[1][0] >= 10:
            self._marks = [self._marks[1], (now, self.served)]
        since, served = self._marks[0]
        if now - since < 1 or self.served == served:
            return None
        return (self.served - served) / (now - since)


class WaitingRoom:
    """Pure ASGI middleware; web/app.py puts it below CSRF and GZip, above the session."""

    def __init__(self, app, *, active: int, wait: float, post_wait: float, secret: str | list[str],
                 https: bool = False, session_cookie: str = "session",
                 session_max_age: int = 4 * 3600):
        self.app = app
        self.line = Line(active) if active > 0 else None  # 0: no waiting room
        self.wait = wait
        self.post_wait = post_wait
        self.signer = TimestampSigner(secret, salt="booking.waiting-room")
        # Starlette's SessionMiddleware signs its cookie so (web/app.py: same secret and age).
        self.session_signer = TimestampSigner(secret)
        self.session_cookie, self.session_max_age = session_cookie, session_max_age
        self.https = https

    async def __call__(self, scope, receive, send):
        line = self.line
        if line is None or scope["type"] != "http" or not is_resident_path(scope["path"]):
            return await self.app(scope, receive, send)
        if line.active < line.limit:
            line.active += 1
        else:
            return await self._queue(scope, receive, send)
        try:
            await self.app(scope, receive, send)
        finally:
            line.release()

    async def _queue(self, scope, receive, send):
        line = self.line
        now = time.time()
        cookies = _cookies(scope)
        first = self._first_queued(cookies.get(COOKIE), now)
        post = scope["method"] == "POST"
        kind = (POST if post else JOURNEY if self._in_journey(cookies.get(self.session_cookie))
                else NEW if first is None else QUEUED)
        place = (kind, first or now)
        timeout = self.post_wait if post else self.wait
        received = [await receive()]  # the request's body (read once already by BodyGuard)
        if received[0]["type"] == "http.disconnect":
            return
        watcher = None
        if not received[0].get("more_body"):  # what comes next is the client leaving
            watcher = asyncio.ensure_future(receive())
        admitted = False
        try:
            admitted = timeout > 0 and await line.wait(place, timeout, watcher)
        finally:
            if watcher is not None and not watcher.done():
                watcher.cancel()
        try:
            if watcher is not None:
                await asyncio.wait([watcher])  # gone for good before the app may receive()
                if not watcher.cancelled():  # the client left (a failed receive says the same)
                    received.append(watcher.result() if watcher.exception() is None
                                    else {"type": "http.disconnect"})
            if admitted:
                async def replay():
                    return received.pop(0) if received else await receive()

                await self.app(scope, replay, send)
            elif received[-1]["type"] != "http.disconnect":
                await self._waiting_page(scope, send, place, received)
        finally:
            if admitted:
                line.release()

    def _first_queued(self, cookie: str | None, now: float) -> float | None:
        """When this resident first queued, from a genuine and recent `queue` cookie."""
        if not cookie:
            return None
        try:
            since = int(self.signer.unsign(cookie, max_age=COOKIE_MAX_AGE)) / 1000
        except (BadSignature, ValueError):
            return None
        return since if since <= now else None

    def _in_journey(self, cookie: str | None) -> bool:
        """A genuine session cookie: this resident opened their link or signed in already."""
        if not cookie:
            return False
        try:
            self.session_signer.unsign(cookie, max_age=self.session_max_age)
        except (BadSignature, ValueError):
            return False
        return True

    async def _waiting_page(self, scope, send, place: tuple, received: list) -> None:
        line = self.line
        ahead = line.ahead_of(place)
        rate = line.rate()
        seconds = math.ceil(ahead / rate) if rate else None
        refresh = UNKNOWN_REFRESH if seconds is None else min(max(seconds, MIN_REFRESH), MAX_REFRESH)
        post = scope["method"] == "POST"
        request = Request(scope)
        fields: list[tuple[str, str]] | None = None
        if post:
            body = b"".join(m.get("body", b"") for m in received if m["type"] == "http.request")
            kind = request.headers.get("content-type", "").split(";")[0].strip().lower()
            if kind == "application/x-www-form-urlencoded":
                fields = parse_qsl(body.decode("utf-8", "replace"), keep_blank_values=True)
        query = scope.get("query_string", b"")
        again = quote(scope["path"]) + (f"?{quote(query, safe=_QUERY_SAFE)}" if query else "")
        context = {"ahead": ahead, "minutes": math.ceil(seconds / 60) if seconds else None,
                   "refresh": refresh, "post": post, "fields": fields, "again": again}
        headers = {"X-Waiting-Room": "1", "Retry-After": str(refresh), "Cache-Control": "no-store"}
        if not post and request.headers.get("hx-request") == "true":
            # htmx would swap in the page without its <meta refresh>: load it for real instead.
            headers["HX-Redirect"] = again
        response = render(request, PAGE, context, headers=headers)
        response.set_cookie(COOKIE, self.signer.sign(str(int(place[1] * 1000))).decode(),
                            max_age=COOKIE_MAX_AGE, httponly=True, samesite="lax", secure=self.https)

        async def nothing():
            return {"type": "http.disconnect"}

        await response(scope, nothing, send)
