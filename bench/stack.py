"""`python -m bench.stack`: what each middleware costs per request, in µs of CPU (issue 25).

The app is driven in-process (no network, no server, no database): a fixed request is sent
through the ASGI app N times and the CPU time of the loop (time.process_time) divided by N.
First the bare Starlette app with the same routing table (web/app.py ROUTES; the handlers of
the measured paths replaced by small fixed ones, so only the stack differs), then the stack
with one more layer at a time, outermost first, as web/app.py's middleware() puts them:

  bare                 Starlette, the routing table, no middleware of ours
  + error handler      the exception handlers (404, refusals, 500 page)
  + security headers   SecurityHeaders with the access log off and metrics off (request id, headers)
  + access log         the access line written (the text format, to /dev/null)
  + metrics            SecurityHeaders' observe and RouteName (as with METRICS_TOKEN set)
  + body guard         BodyGuard
  + csrf               CSRF
  + gzip               GZip (web/compression.py: Starlette's GZipMiddleware)
  + waiting room       WaitingRoom (a free place: the fast path)
  + sessions           RotatingSessionMiddleware

The requests: GET /healthz; GET /booking without a cookie (a page with a form: it asks for
the CSRF token); GET /booking with a session cookie (and the csrftoken cookie, as a resident
mid-journey); POST /booking/verify with a urlencoded form and its token. The handlers: /healthz
"ok"; /booking a fixed page of a journey page's size (6 KB of HTML), touching the session as
the real page does; the POST sets a session key and answers 303.

    .venv/bin/python -m bench.stack                 # 20000 requests a cell, the table
    .venv/bin/python -m bench.stack -n 5000 --json  # one JSON line
"""
from __future__ import annotations

import argparse
import asyncio
import gc
import json
import logging
import os
import time

from starlette.applications import Starlette
from starlette.middleware.gzip import GZipMiddleware
from starlette.responses import HTMLResponse, PlainTextResponse, RedirectResponse
from starlette.routing import Route

SECRET = "bench-stack-secret-key-not-for-production-0123456789"
PAGE = ("<!doctype html><html><head><title>Booking</title></head><body><main>"
        + "<p>Your second dose: choose where and when. 第二针：选择地点和时间。</p>" * 60
        + '<form method="post"><input type="hidden" name="csrftoken" value="{token}">'
        + '<input name="id_number"><button>Next</button></form></main></body></html>')


async def healthz(request):
    return PlainTextResponse("ok")


async def booking(request):
    session = request.scope.get("session")
    person = session.get("person") if session is not None else None
    csrf = request.scope.get("csrftoken")
    token = csrf() if csrf else ""
    return HTMLResponse(PAGE.replace("{token}", token) + (person or ""))


async def verify(request):
    form = await request.form()
    if "session" in request.scope:
        request.session["verified"] = form.get("id_number", "")[-4:]
    return RedirectResponse("/booking/site", status_code=303)


STUBS = {"/healthz": healthz, "/booking": booking, "/booking/verify": verify}
LAYERS = ["bare", "error handler", "security headers", "access log", "metrics", "body guard",
          "csrf", "gzip", "waiting room", "sessions"]


def routes():
    """web/app.py's routing table, the measured paths' handlers replaced (same names, same place)."""
    from web.app import ROUTES

    table = []
    for route in ROUTES:
        if isinstance(route, Route) and route.path in STUBS:
            route = Route(route.path, STUBS[route.path], methods=list(route.methods or ()) or None,
                          name=route.name)
        table.append(route)
    return table


def settings():
    from web.settings import load_settings

    return load_settings(secret_key=SECRET, base_url="http://127.0.0.1:8000",
                         metrics_token="bench-metrics-token-0123456789",
                         debug=False)


def build(upto: int, s) -> Starlette:
    """The app with LAYERS[:upto + 1]."""
    from web import app as webapp, errors, refusals, templating
    from web.csrf import CSRF
    from web.keys import RotatingSessionMiddleware
    from web.metrics import RouteName
    from web.security import BodyGuard, SecurityHeaders
    from web.waiting_room import WaitingRoom
    from starlette.exceptions import HTTPException
    from starlette.middleware import Middleware

    shipped = webapp.middleware(s)  # outermost first
    def shipped_as(cls):
        return next(m for m in shipped if issubclass(m.cls, cls))

    have = set(LAYERS[:upto + 1])
    stack = []
    if "security headers" in have:
        options = dict(shipped_as(SecurityHeaders).kwargs)
        if "metrics" not in have:
            options["observe"] = None
        stack.append(Middleware(SecurityHeaders, **options))
    for layer, cls in (("body guard", BodyGuard), ("csrf", CSRF), ("gzip", GZipMiddleware),
                       ("waiting room", WaitingRoom), ("sessions", RotatingSessionMiddleware)):
        if layer in have:
            stack.append(shipped_as(cls))
    if "metrics" in have:
        stack.append(shipped_as(RouteName))
    handlers = ({HTTPException: errors.http_error, refusals.PageRefusal: refusals.answer,
                 500: errors.server_error} if "error handler" in have else None)
    app = Starlette(routes=routes(), middleware=stack, exception_handlers=handlers)
    app.state.settings = s
    app.state.templates = templating.environment(debug=False)
    return app


def access_log(on: bool) -> None:
    """The access line as the server writes it (text format), to /dev/null; or not at all."""
    from web import logs

    root = logging.getLogger()
    for h in list(root.handlers):
        if getattr(h, "_bench_stack", False):
            root.removeHandler(h)
    handler = logging.StreamHandler(open(os.devnull, "w"))
    # setup_logging's formatter (a tree from before issue 25: logging's own)
    handler.setFormatter(getattr(logs, "TextFormatter", logging.Formatter)(logs.TEXT_FORMAT))
    handler._bench_stack = True
    root.addHandler(handler)
    root.setLevel(logging.INFO)
    logging.getLogger("booking.access").setLevel(logging.INFO if on else logging.WARNING)


def cookies(s) -> dict[str, str]:
    """A resident's cookies mid-journey: a genuine session and csrftoken, signed as the app does."""
    import base64

    from itsdangerous import TimestampSigner, URLSafeSerializer

    from web.csrf import NAMESPACE

    data = base64.b64encode(json.dumps({"person": "张*明", "link": 12345, "verified": True}).encode())
    session = TimestampSigner(s.signing_keys).sign(data).decode()
    csrf = URLSafeSerializer(s.signing_keys).dumps("abcdefghijklmnopqrstuv", salt=NAMESPACE)
    return {"session": session, "csrftoken": csrf}


def requests(s) -> dict[str, tuple[dict, bytes]]:
    jar = cookies(s)
    cookie = f"session={jar['session']}; csrftoken={jar['csrftoken']}".encode()
    common = [(b"host", b"127.0.0.1:8000"), (b"user-agent", b"bench"), (b"accept", b"text/html"),
              (b"accept-encoding", b"gzip, deflate")]
    form = f"csrftoken={jar['csrftoken']}&id_number=44010619800101001X".encode()

    def scope(method, path, headers):
        return {"type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1", "method": method,
                "scheme": "http", "path": path, "raw_path": path.encode(), "query_string": b"",
                "root_path": "", "headers": common + headers, "client": ("127.0.0.1", 50000),
                "server": ("127.0.0.1", 8000)}

    return {
        "GET /healthz": (scope("GET", "/healthz", []), b""),
        "GET /booking, no cookie": (scope("GET", "/booking", []), b""),
        "GET /booking, session": (scope("GET", "/booking", [(b"cookie", cookie)]), b""),
        "POST form, session": (scope("POST", "/booking/verify", [
            (b"cookie", cookie), (b"content-type", b"application/x-www-form-urlencoded"),
            (b"content-length", str(len(form)).encode()), (b"origin", b"null")]), form),
    }


async def one(app, scope: dict, body: bytes) -> int:
    sent = {"status": 0}

    async def receive():
        return {"type": "http.request", "body": body, "more_body": False}

    async def send(message):
        if message["type"] == "http.response.start":
            sent["status"] = message["status"]

    await app(dict(scope, headers=list(scope["headers"])), receive, send)
    return sent["status"]


async def measure(app, scope: dict, body: bytes, n: int) -> tuple[float, int]:
    """µs of CPU per request over n requests (after 200 not counted), and the last status."""
    for _ in range(200):
        status = await one(app, scope, body)
    gc.collect()
    started = time.process_time()
    for _ in range(n):
        await one(app, scope, body)
    return (time.process_time() - started) / n * 1e6, status


async def profile(n: int, rounds: int) -> dict:
    """Every cell measured once a round, the rounds one after the other (a burst of other work
    on the machine then spoils one round of every cell, not every round of one); the best kept."""
    s = settings()
    reqs = requests(s)
    apps = [build(i, s) for i in range(len(LAYERS))]
    table = {layer: {name: None for name in reqs} for layer in LAYERS}
    statuses: dict[str, int] = {}
    for _ in range(rounds):
        for i, layer in enumerate(LAYERS):
            access_log(i >= LAYERS.index("access log"))
            for name, (scope, body) in reqs.items():
                us, statuses[name] = await measure(apps[i], scope, body, n)
                best = table[layer][name]
                table[layer][name] = round(us if best is None else min(best, us), 1)
    return {"us_per_request": table, "statuses": statuses, "n": n, "rounds": rounds}


def show(result: dict) -> str:
    table = result["us_per_request"]
    names = list(next(iter(table.values())))
    width = max(len(x) for x in names) + 2
    lines = [f"{'layer (cumulative)':<20}" + "".join(f"{x:>{width}}" for x in names)]
    previous = None
    for layer, row in table.items():
        cells = "".join(f"{row[x]:>{width - 8}.1f} ({row[x] - previous[x] if previous else 0:+5.1f})"
                        for x in names)
        lines.append(f"{layer:<20}{cells}")
        previous = row
    bare, full = table["bare"], table[LAYERS[-1]]
    lines.append(f"{'stack / bare':<20}" + "".join(f"{full[x] / bare[x]:>{width}.2f}" for x in names))
    lines.append(f"statuses (full stack): {result['statuses']}")
    lines.append(f"µs of CPU per request, best of {result['rounds']} rounds of {result['n']}; "
                 f"in brackets what the layer added; load {os.getloadavg()[0]:.2f}")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m bench.stack", description=__doc__.split("\n\n")[0])
    p.add_argument("-n", type=int, default=20000, help="requests a measurement (default 20000)")
    p.add_argument("--rounds", type=int, default=3, help="measurements a cell, the best kept (default 3)")
    p.add_argument("--json", action="store_true", help="one JSON line instead of the table")
    args = p.parse_args(argv)
    try:
        import uvloop
        loop = uvloop.new_event_loop()
    except ImportError:
        loop = asyncio.new_event_loop()
    result = loop.run_until_complete(profile(args.n, args.rounds))
    loop.close()
    print(json.dumps(result, ensure_ascii=False) if args.json else show(result), flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
