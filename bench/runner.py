"""The SMS-rush benchmark: data set, real server, /healthz, journeys, `check`; one JSON line.

    .venv/bin/python -m bench                       # = make bench: SQLite, serve's workers, 200 at once, 60 s
    .venv/bin/python -m bench --db postgres --workers 2
    .venv/bin/python -m bench --journeys 300 --duration 600 --concurrency 5 --residents 300

In order, all on 127.0.0.1, bounded in time and count:

1. the data set (bench/dataset.py) in a new temporary SQLite file (a copy of the one built
   before with the same parameters, from --cache-dir) or the PostgreSQL database of
   --postgres-url (its public schema dropped and made anew);
2. `run.py serve --workers N` on a free port, as tests/realserver.py starts it: DATABASE_URL,
   SECRET_KEY, BASE_URL, and the rate limits and waiting room as shipped (RATE_LIMIT_* and
   WAITING_ROOM_* in the environment are left out, --server-env adds some back); every resident comes from 127.0.0.1, as behind one carrier address;
   with --server granian, the same app, workers and environment under granian instead
   (bench/granian_serve.py, to compare the servers: issue 25);
3. a warm-up of --warmup journeys (not counted), then --healthz-seconds of `/healthz` by the
   same generator processes at the same concurrency: the most this generator and this server
   stack answer, to set the journey against;
4. the journeys: --concurrency residents at once (× --overload), in --generators processes,
   for --duration seconds or --journeys journeys, whichever comes first;
5. the server stopped, then `run.py check` on the database (the invariants: no window holds
   more bookings than places, …) and the number of bookings it holds.

With --waitlist (bench/waitlist.py), before the server starts the mornings of --waitlist-sites
sites are filled with bookings and --waiting people join the list for them; during the
journeys --cancels of the booked people cancel through their links; after them, before the
server stops, each offer is taken through the link of its SMS. Reported under `waitlist`.

The JSON line (standard output; progress goes to standard error) has the rates, the 50th, 95th
and 99th percentiles of every step in milliseconds, errors by kind (a 5xx, an exception, a
journey that did not end booked), the waiting room's answers, the generators' own CPU seconds,
/healthz's rate and the ratio, the server's settings, and check's result. The exit status is 0
when there was no error and check was clean, else 1.
"""
from __future__ import annotations

import argparse
import concurrent.futures
import importlib.util
import json
import multiprocessing
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

from bench import dataset, waitlist
from bench.load import Plan, ready, run_plan
from bench.report import merge, summarise
from bench.server import (SECRET, Server, count_bookings, default_workers, on_this_machine, run_check,
                          server_env, settings_for)

DEFAULT_PG = "postgres://postgres@127.0.0.1/booking_bench"


def say(text: str) -> None:
    print(f"[bench {time.strftime('%H:%M:%S')}] {text}", file=sys.stderr, flush=True)


def split(n: int, parts: int) -> list[int]:
    return [n // parts + (1 if i < n % parts else 0) for i in range(parts)]


def run_phase(pool, base_url: str, mode: str, *, generators: int, concurrency: int, duration: float,
              count: int, residents: range, seed: int, think_time: float, timeout: float,
              ramp: float = 0.0) -> dict:
    """Every generator process at once, from the same moment; their tallies merged."""
    start_at = time.time() + 0.5  # every process started and connected by then
    plans = []
    for i, (c, n) in enumerate(zip(split(concurrency, generators), split(count, generators))):
        if c == 0:
            continue
        plans.append(Plan(base_url=base_url, mode=mode, concurrency=c, start_at=start_at,
                          duration=duration, max_journeys=n, residents=residents[i::generators],
                          seed=seed, think_time=think_time, timeout=timeout, ramp=ramp,
                          label=f"{mode}{i}"))
    return merge(list(pool.map(run_plan, plans)))


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m bench", description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--db", choices=["sqlite", "postgres"], default="sqlite")
    p.add_argument("--postgres-url", default=os.environ.get("BENCH_POSTGRES_URL", DEFAULT_PG),
                   help=f"for --db postgres; its public schema is dropped (default: $BENCH_POSTGRES_URL "
                   f"or {DEFAULT_PG})")
    p.add_argument("--redis-url", default="", help="REDIS_URL for the server (default: none, as `make run`)")
    p.add_argument("--server-env", action="append", default=[], metavar="NAME=VALUE",
                   help="a setting for the server, e.g. WAITING_ROOM_ACTIVE=0 (reported in the JSON)")
    p.add_argument("--workers", type=int, default=None,
                   help="server processes (default: `run.py serve`'s own default, as `make run`)")
    p.add_argument("--server", choices=["uvicorn", "granian"], default="uvicorn",
                   help="the HTTP server: uvicorn as `run.py serve` (default), or granian with the same app, "
                   "workers and environment (bench/granian_serve.py; granian installed in the venv)")
    p.add_argument("--send-sms", action="store_true",
                   help="the server also delivers the SMS outbox (`make run` does; production runs send-sms apart)")
    p.add_argument("--concurrency", type=int, default=200, help="residents at once (default 200)")
    p.add_argument("--overload", type=float, default=1.0,
                   help="multiply the concurrency, e.g. 3 for the waiting room's 3× run")
    p.add_argument("--duration", type=float, default=60.0, help="seconds of journeys at most (default 60)")
    p.add_argument("--journeys", type=int, default=1_000_000, help="journeys at most (default: no bound)")
    p.add_argument("--think-time", type=float, default=0.0,
                   help="seconds a resident reads each page before the next request (0.5–1.5×; default 0)")
    p.add_argument("--ramp", type=float, default=0.0,
                   help="seconds over which the residents arrive, evenly (default 0: all at once, the rush)")
    p.add_argument("--generators", type=int, default=2, help="load generator processes (default 2)")
    p.add_argument("--residents", type=int, default=200_000)
    p.add_argument("--sites", type=int, default=100)
    p.add_argument("--days", type=int, default=14)
    p.add_argument("--seed", type=int, default=14)
    p.add_argument("--warmup", type=int, default=50, help="journeys before measuring, not counted (default 50)")
    p.add_argument("--healthz-seconds", type=float, default=5.0)
    p.add_argument("--healthz-requests", type=int, default=10_000_000, help="/healthz requests at most")
    p.add_argument("--timeout", type=float, default=60.0, help="seconds for one request (default 60)")
    p.add_argument("--cache-dir", default=os.environ.get("BENCH_CACHE_DIR", "/tmp/booking-bench-cache"),
                   help="SQLite data sets kept for the next run with the same parameters ('' for none)")
    p.add_argument("--keep", action="store_true", help="keep the temporary directory (database, server log)")
    p.add_argument("--waitlist", action="store_true",
                   help="the waiting list under the rush: full mornings, cancellations during the journeys, "
                   "the offers taken after them (bench/waitlist.py)")
    p.add_argument("--waitlist-sites", type=int, default=4, help="with --waitlist: sites with full mornings (default 4)")
    p.add_argument("--cancels", type=int, default=100,
                   help="with --waitlist: booked people who cancel during the journeys (default 100)")
    p.add_argument("--waiting", type=int, default=200, help="with --waitlist: people on the list (default 200)")
    p.add_argument("--cancel-over", type=float, default=None,
                   help="with --waitlist: seconds over which the cancellers arrive, evenly, from the start of "
                   "the journeys (default: half of --duration, at most 30; 0: all at once)")
    return p


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    concurrency = max(1, round(args.concurrency * args.overload))
    if args.warmup + 1 > args.residents:
        raise SystemExit("error: --residents must be more than --warmup")
    if args.db == "postgres" and not on_this_machine(args.postgres_url):
        raise SystemExit("error: the benchmark runs on 127.0.0.1 only: --postgres-url must name "
                         "127.0.0.1, localhost or a local socket")
    if args.server == "granian" and importlib.util.find_spec("granian") is None:
        raise SystemExit("error: --server granian: granian is not installed (.venv/bin/pip install granian)")
    if args.redis_url and not on_this_machine(args.redis_url):
        raise SystemExit("error: the benchmark runs on 127.0.0.1 only: --redis-url must name 127.0.0.1")
    workdir = Path(tempfile.mkdtemp(prefix="booking-bench-"))
    url = f"sqlite://{workdir}/bench.sqlite3" if args.db == "sqlite" else args.postgres_url
    started = time.monotonic()
    server = None
    try:
        data = dataset.build(url, secret_key=SECRET, residents=args.residents, sites=args.sites,
                             days=args.days, seed=args.seed,
                             cache_dir=(args.cache_dir or None) if args.db == "sqlite" else None, say=say)
        env = server_env(url, args.redis_url, args.server_env)
        setup = None
        if args.waitlist:
            setup = waitlist.choose_people(sites=args.sites, residents=args.residents, warmup=args.warmup,
                                           full_sites=args.waitlist_sites, cancels=args.cancels,
                                           waiting=args.waiting)
            waitlist.prepare(url, settings_for(env), setup, say)
        if args.workers is None:
            args.workers = default_workers(env)
        server = Server(env, args.workers, workdir / "server.log", args.send_sms, args.server)
        server.wait_ready()
        say(f"server on {server.base_url}, {args.workers} worker(s); log {workdir / 'server.log'}")
        # The warm-up plays the last residents; the measured run the others, from the first.
        measured = range(1, args.residents - args.warmup + 1)
        if setup is not None:  # the people of the waiting list's parts do not rush
            measured = [rid for rid in measured if rid not in setup.reserved]
        warmup = range(args.residents - args.warmup + 1, args.residents + 1)
        ctx = multiprocessing.get_context("spawn")
        with concurrent.futures.ProcessPoolExecutor(args.generators, mp_context=ctx) as pool:
            common = dict(generators=args.generators, seed=args.seed, timeout=args.timeout)
            list(pool.map(ready, [0.3] * args.generators))  # every process started, its imports done
            if args.warmup:
                w = run_phase(pool, server.base_url, "journey", concurrency=min(concurrency, args.warmup),
                              duration=120, count=args.warmup, residents=warmup, think_time=0, **common)
                say(f"warm-up: {w['journeys_completed']} journeys, errors {dict(w['errors']) or 'none'}")
            h = run_phase(pool, server.base_url, "healthz", concurrency=concurrency,
                          duration=args.healthz_seconds, count=args.healthz_requests, residents=range(0),
                          think_time=0, **common)
            healthz_rate = h["requests"] / h["elapsed"] if h["elapsed"] else 0.0
            say(f"/healthz: {healthz_rate:,.0f} requests/s")
            say(f"journeys: {concurrency} residents at once for {args.duration:.0f}s "
                f"(at most {args.journeys:,} journeys)")
            cpu_before = server.cpu_seconds()
            over = min(args.duration / 2, 30.0) if args.cancel_over is None else args.cancel_over
            cancels = waitlist.Cancellations(server.base_url, args.seed, setup, over) if setup else None
            j = run_phase(pool, server.base_url, "journey", concurrency=concurrency,
                          duration=args.duration, count=min(args.journeys, len(measured)),
                          residents=measured, think_time=args.think_time, ramp=args.ramp, **common)
            j["server_cpu_seconds"] = server.cpu_seconds() - cpu_before
            rush_ended = time.time()
        if cancels is not None:
            cancels = cancels.wait()
            tokens = waitlist.offer_tokens(url, SECRET)
            during = sum(at <= rush_ended for at in cancels.cancelled_at)
            say(f"waiting list: {cancels.cancelled} cancelled ({during} while the journeys ran), "
                f"{len(tokens)} offers to take")
            takes = waitlist.take_offers(server.base_url, args.seed, tokens)
        server.stop()
        server = None
        check = run_check(env)
        check["bookings_in_db"] = count_bookings(url)
        check["bookings_seen"] = j["bookings"] + (w["bookings"] if args.warmup else 0)
        listed = None
        if setup is not None:
            listed = waitlist.report(setup, cancels, takes, waitlist.tally(url, setup), rush_ended)
            check["bookings_seen"] += listed["bookings_seen"]
            say(f"waiting list: {listed['offers_made']} offers made, {listed['offers_taken']} taken, "
                f"{listed['public_on_freed']} freed places booked by the public")
        say(f"check: {check['summary']}")
        report = summarise(args, concurrency, data, env, j, h, healthz_rate, check,
                           time.monotonic() - started, listed)
        if args.server != "uvicorn":
            report["server"]["command"] = (f"python -m bench.granian_serve --workers {args.workers}"
                                           + (" --send-sms" if args.send_sms else ""))
        print(json.dumps(report, ensure_ascii=False), flush=True)
        return 0 if report["errors_total"] == 0 and check["ok"] else 1
    finally:
        if server is not None:
            server.stop()
        if args.keep:
            say(f"kept {workdir}")
        else:
            shutil.rmtree(workdir, ignore_errors=True)


