"""What the request id, the access line and the /metrics counts cost a request: a trivial ASGI
app called directly, bare and wrapped in SecurityHeaders (web/security.py) as create_app wraps
it, best of 7 rounds. One line per case, in microseconds a request.

    .venv/bin/python bench/metrics_cost.py            # counters in this process
    PROMETHEUS_MULTIPROC_DIR=$(mktemp -d) .venv/bin/python bench/metrics_cost.py   # as with --workers N
"""
from __future__ import annotations

import asyncio
import logging
import os
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from web import metrics  # noqa: E402  (after the path, and after PROMETHEUS_MULTIPROC_DIR is read)
from web.logs import JsonFormatter, new_request_id  # noqa: E402
from web.security import SecurityHeaders  # noqa: E402

CALLS = int(os.environ.get("CALLS", "20000"))


class Named:
    name = "healthz"


async def app(scope, receive, send):
    scope["route"] = Named  # what the router does
    await send({"type": "http.response.start", "status": 200,
                "headers": [(b"content-type", b"text/plain")]})
    await send({"type": "http.response.body", "body": b"ok"})


async def receive():
    return {"type": "http.request", "body": b""}


async def send(message):
    pass


async def timed(asgi) -> float:
    best = float("inf")
    for _ in range(7):
        started = time.perf_counter()
        for _ in range(CALLS):
            scope = {"type": "http", "method": "GET", "path": "/healthz", "headers": []}
            await asgi(scope, receive, send)
        best = min(best, (time.perf_counter() - started) / CALLS * 1e6)
    return best


async def main() -> None:
    sink = logging.StreamHandler(open(os.devnull, "w"))
    logging.getLogger().addHandler(sink)
    logging.getLogger().setLevel(logging.INFO)
    mode = "multiprocess files" if metrics.multiprocess() else "in-process counters"
    bare = await timed(app)
    cases = {
        "bare app": bare,
        "SecurityHeaders, metrics off, text log": await timed(SecurityHeaders(app)),
        f"SecurityHeaders + metrics ({mode}), text log": await timed(
            SecurityHeaders(metrics.RouteName(app), observe=metrics.observe)),
    }
    sink.setFormatter(JsonFormatter())
    cases[f"SecurityHeaders + metrics ({mode}), JSON log"] = await timed(
        SecurityHeaders(metrics.RouteName(app), observe=metrics.observe))
    logging.disable(logging.CRITICAL)
    cases["SecurityHeaders + metrics, no log line at all (for comparison)"] = await timed(
        SecurityHeaders(metrics.RouteName(app), observe=metrics.observe))
    for name, call in (("metrics.observe alone", lambda: metrics.observe("healthz", 200, 0.001)),
                       ("new_request_id alone", new_request_id)):
        best = float("inf")
        for _ in range(7):
            started = time.perf_counter()
            for _ in range(CALLS):
                call()
            best = min(best, (time.perf_counter() - started) / CALLS * 1e6)
        cases[name] = best
    for name, us in cases.items():
        print(f"{us:7.1f} µs  {name}")


if __name__ == "__main__":
    asyncio.run(main())
