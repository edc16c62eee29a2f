"""`python -m bench --healthz`: /healthz through the full stack against a bare Starlette app on the
same server and loop (issue 25), one JSON line.

Both served by uvicorn with uvloop and httptools, one worker, keep-alive as `run.py serve`:
- full: `run.py serve --workers 1`, the service as shipped (its middleware in front of /healthz,
  the access log written to a file);
- bare: a Starlette app with web/app.py's own /healthz handler (the same database ping) and
  nothing else (`bench.healthz:bare_app`), on the same database;
- plain: a Starlette app whose /healthz answers "ok" without the database (`plain_app`): the
  framework alone, as the issue's hello-world figure (`healthz.plain_rps`, `plain_ratio`).

`wrk` is used when the machine has it (`wrk -t1 -c C -d Ds`); else our own load loop: a raw
HTTP/1.1 keep-alive client on uvloop (`C` connections, one request in flight on each; far
cheaper per request than aiohttp, so that the server, not the client, is measured). With
taskset the server runs on CPU 0 and the client on CPU 1 (`--no-pin`: anywhere).

The JSON line: `healthz.full_rps`, `healthz.bare_rps`, `healthz.ratio` (full / bare; the target
of issue 25: ≥ 0.5), and each one's server CPU µs per request (/proc, the figure that holds on a
shared machine) and their ratio (`healthz.cpu_ratio`: bare / full).

    .venv/bin/python -m bench --healthz                      # 10 s each, 50 connections
    .venv/bin/python -m bench --healthz --duration 20 --connections 100
"""
from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from bench.server import ROOT, Server, free_port, server_env

REQUEST = b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\nUser-Agent: bench\r\nAccept: */*\r\n\r\n"
_LENGTH = re.compile(rb"\r\ncontent-length: *(\d+)", re.IGNORECASE)


def plain_app():
    """uvicorn --factory: Starlette with a /healthz that answers "ok" without asking the database
    (the framework alone: the issue's hello-world figure)."""
    from starlette.applications import Starlette
    from starlette.responses import PlainTextResponse
    from starlette.routing import Route

    async def healthz(request):
        return PlainTextResponse("ok")

    return Starlette(routes=[Route("/healthz", healthz, name="healthz")])


def bare_app():
    """uvicorn --factory: Starlette with /healthz (web/app.py's handler) and the database only."""
    import contextlib

    from starlette.applications import Starlette
    from starlette.routing import Route

    from models.db.setup import close_db, init_db
    from web.app import healthz
    from web.settings import load_settings

    settings = load_settings()

    @contextlib.asynccontextmanager
    async def lifespan(app):
        await init_db(settings.database_url, migrate_schema=False)
        try:
            yield
        finally:
            await close_db()

    return Starlette(routes=[Route("/healthz", healthz, name="healthz")], lifespan=lifespan)


class Served:
    """A server process group (pinned with taskset when asked), its CPU read from /proc."""

    def __init__(self, command: list[str], env: dict, log: Path, pin: str | None):
        self.port = free_port()
        self.base_url = f"http://127.0.0.1:{self.port}"
        command = [part.replace("{port}", str(self.port)) for part in command]
        if pin:
            command = ["taskset", "-c", pin, *command]
        self.log = open(log, "ab")
        self.proc = subprocess.Popen(command, cwd=ROOT, env={**env, "BASE_URL": self.base_url},
                                     stdout=self.log, stderr=subprocess.STDOUT, start_new_session=True)

    wait_ready = Server.wait_ready
    cpu_seconds = Server.cpu_seconds
    stop = Server.stop


class _Client(asyncio.Protocol):
    """One keep-alive connection: a request, its whole answer, the next request."""

    def __init__(self, tally: dict, stop_at: float):
        self.tally, self.stop_at = tally, stop_at
        self.buffer = b""
        self.done = asyncio.get_running_loop().create_future()

    def connection_made(self, transport):
        self.transport = transport
        transport.write(REQUEST)

    def data_received(self, data: bytes):
        self.buffer += data
        while True:
            end = self.buffer.find(b"\r\n\r\n")
            if end < 0:
                return
            found = _LENGTH.search(self.buffer, 0, end + 2)
            total = end + 4 + (int(found.group(1)) if found else 0)
            if len(self.buffer) < total:
                return
            status = self.buffer[9:12]
            self.buffer = self.buffer[total:]
            self.tally["requests"] += 1
            if status != b"200":
                self.tally["errors"] += 1
            if time.monotonic() >= self.stop_at:
                self.transport.close()
                return
            self.transport.write(REQUEST)

    def connection_lost(self, exc):
        if not self.done.done():
            self.done.set_result(None)


async def _load(port: int, connections: int, seconds: float) -> dict:
    loop = asyncio.get_running_loop()
    tally = {"requests": 0, "errors": 0}
    stop_at = time.monotonic() + seconds
    clients = []
    for _ in range(connections):
        _, client = await loop.create_connection(lambda: _Client(tally, stop_at), "127.0.0.1", port)
        clients.append(client)
    await asyncio.gather(*(c.done for c in clients))
    return tally


def own_load(port: int, connections: int, seconds: float) -> dict:
    try:
        import uvloop
        loop = uvloop.new_event_loop()
    except ImportError:
        loop = asyncio.new_event_loop()
    try:
        return loop.run_until_complete(_load(port, connections, seconds))
    finally:
        loop.close()


def wrk_load(port: int, connections: int, seconds: float, pin: str | None) -> dict:
    command = ["wrk", "-t1", f"-c{connections}", f"-d{max(1, round(seconds))}s",
               f"http://127.0.0.1:{port}/healthz"]
    if pin:
        command = ["taskset", "-c", pin, *command]
    out = subprocess.run(command, capture_output=True, text=True, check=True).stdout
    requests = int(re.search(r"(\d+) requests in", out).group(1))
    bad = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    return {"requests": requests, "errors": int(bad.group(1)) if bad else 0}


def measure(served: Served, args, client_cpu: str | None) -> dict:
    served.wait_ready()
    port = served.port
    use_wrk = shutil.which("wrk") is not None and not args.own_client

    def run(seconds):
        if use_wrk:
            return wrk_load(port, args.connections, seconds, client_cpu)
        return own_load(port, args.connections, seconds)

    run(args.warmup)
    cpu0, started = served.cpu_seconds(), time.monotonic()
    tally = run(args.duration)
    elapsed, cpu = time.monotonic() - started, served.cpu_seconds() - cpu0
    return {"rps": round(tally["requests"] / elapsed, 1), "requests": tally["requests"],
            "errors": tally["errors"], "seconds": round(elapsed, 1),
            "server_cpu_us_per_request": round(1e6 * cpu / max(tally["requests"], 1), 1),
            "server_cpu_share": round(cpu / elapsed, 2), "client": "wrk" if use_wrk else "own (uvloop)"}


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m bench --healthz", description=__doc__.split("\n\n")[0])
    p.add_argument("--duration", type=float, default=10, help="seconds measured per server (default 10)")
    p.add_argument("--warmup", type=float, default=2, help="seconds before, not counted (default 2)")
    p.add_argument("--connections", type=int, default=50, help="keep-alive connections (default 50)")
    p.add_argument("--no-pin", action="store_true", help="no taskset: server and client anywhere")
    p.add_argument("--own-client", action="store_true", help="our load loop even if wrk is there")
    p.add_argument("--rounds", type=int, default=1, help="full then bare, this many times; the best of each")
    return p


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    pin = not args.no_pin and shutil.which("taskset") is not None and (os.cpu_count() or 1) >= 2
    server_cpu, client_cpu = ("0", "1") if pin else (None, None)
    if client_cpu and not shutil.which("wrk"):
        os.sched_setaffinity(0, {int(client_cpu)})
    workdir = Path(tempfile.mkdtemp(prefix="bench-healthz-"))
    env = server_env(f"sqlite://{workdir}/healthz.sqlite3")
    say = lambda text: print(text, file=sys.stderr, flush=True)  # noqa: E731
    try:
        uvicorn = [sys.executable, "-m", "uvicorn", "bench.healthz:bare_app", "--factory",
                   "--host", "127.0.0.1", "--port", "{port}", "--workers", "1", "--loop", "uvloop",
                   "--http", "httptools", "--no-access-log", "--timeout-keep-alive", "30"]
        full = [sys.executable, "run.py", "serve", "--host", "127.0.0.1", "--port", "{port}",
                "--workers", "1"]
        # full first: `run.py serve` creates the schema; the bare app only pings the database.
        results: dict[str, list[dict]] = {"full": [], "bare": [], "plain": []}
        plain = [part.replace("bench.healthz:bare_app", "bench.healthz:plain_app") for part in uvicorn]
        for _ in range(args.rounds):
            for name, command in (("full", full), ("bare", uvicorn), ("plain", plain)):
                served = Served(command, env, workdir / f"{name}.log", server_cpu)
                try:
                    results[name].append(measure(served, args, client_cpu))
                finally:
                    served.stop()
                say(f"{name}: {results[name][-1]}")
        best = {name: max(runs, key=lambda r: r["rps"]) for name, runs in results.items()}
        f, b, plain_best = best["full"], best["bare"], best["plain"]
        report = {
            "bench": "healthz",
            "at": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
            "healthz": {
                "full_rps": f["rps"], "bare_rps": b["rps"],
                "ratio": round(f["rps"] / b["rps"], 3) if b["rps"] else None,
                "full_cpu_us_per_request": f["server_cpu_us_per_request"],
                "bare_cpu_us_per_request": b["server_cpu_us_per_request"],
                "cpu_ratio": (round(b["server_cpu_us_per_request"] / f["server_cpu_us_per_request"], 3)
                              if f["server_cpu_us_per_request"] else None),
                # The framework alone, its /healthz not asking the database (issue 25's 38,800/s
                # was such an app, on 2 workers).
                "plain_rps": plain_best["rps"],
                "plain_ratio": round(f["rps"] / plain_best["rps"], 3) if plain_best["rps"] else None,
                "plain_cpu_us_per_request": plain_best["server_cpu_us_per_request"],
                "full": results["full"], "bare": results["bare"], "plain": results["plain"],
                "server": "uvicorn, uvloop + httptools, 1 worker" + (", CPU 0" if pin else ""),
                "client_cpu": client_cpu, "connections": args.connections,
            },
            "machine": {"cpus": os.cpu_count(), "load_average_1m": round(os.getloadavg()[0], 2)},
        }
        print(json.dumps(report, ensure_ascii=False), flush=True)
        errors = sum(r["errors"] for runs in results.values() for r in runs)
        return 0 if errors == 0 else 1
    finally:
        shutil.rmtree(workdir, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
