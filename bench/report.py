"""The JSON line: the generators' tallies merged, percentiles, and every figure in one dict."""
from __future__ import annotations

import datetime as dt
import math
import os
from collections import Counter
from importlib import metadata

from bench.load import STEPS
from bench.server import served_settings


def percentiles(values: list[float]) -> dict:
    """n, p50, p95, p99 (nearest rank) and max of milliseconds, rounded to 0.1."""
    if not values:
        return {"n": 0}
    ordered = sorted(values)

    def rank(p: float) -> float:
        return round(ordered[min(len(ordered) - 1, max(0, math.ceil(p * len(ordered)) - 1))], 1)

    return {"n": len(ordered), "p50": rank(0.50), "p95": rank(0.95), "p99": rank(0.99),
            "max": round(ordered[-1], 1)}


def merge(results: list[dict]) -> dict:
    """One tally from every generator process's: counts added, samples pooled."""
    total: dict = {"latencies": {}, "errors": Counter(), "statuses": Counter(), "journey_ms": []}
    for r in results:
        for step, values in r["latencies"].items():
            total["latencies"].setdefault(step, []).extend(values)
        total["errors"].update(r["errors"])
        total["statuses"].update({str(k): v for k, v in r["statuses"].items()})
        total["journey_ms"].extend(r["journey_ms"])
        for key in ("requests", "journeys_started", "journeys_completed", "bookings", "window_retries",
                    "waits", "wait_seconds", "waited_journeys", "disconnect_retries", "abandoned",
                    "cpu_seconds"):
            total[key] = total.get(key, 0) + r[key]
    total["elapsed"] = max((r["elapsed"] for r in results), default=0.0)
    return total


def versions(*names: str) -> dict:
    found = {}
    for name in names:
        try:
            found[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            pass
    return found


def summarise(args, concurrency: int, data, env: dict, j: dict, h: dict, healthz_rate: float,
              check: dict, wall: float, waitlist: dict | None = None) -> dict:
    """The JSON line; `waitlist`: bench/waitlist.py's part (--waitlist), its errors counted
    with the journeys'."""
    elapsed = j["elapsed"] or 1e-9
    not_booked = j["journeys_started"] - j["journeys_completed"] - j["abandoned"]
    errors = dict(j["errors"]) | (waitlist["errors"] if waitlist else {})
    request_rate = j["requests"] / elapsed
    answered = sum(len(j["latencies"].get(step, [])) for step in STEPS)  # waiting-room answers left out
    return {
        "bench": "sms-rush",
        "at": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
        "db": args.db,
        "journeys_per_s": round(j["journeys_completed"] / elapsed, 1),
        "bookings_per_s": round(j["bookings"] / elapsed, 1),
        # Journeys still under way at the end are not in journeys_per_s: when a journey takes a
        # good part of the run (a slow server, many at once), the steps answered tell the rate better.
        "journeys_per_s_from_steps": round(answered / len(STEPS) / elapsed, 1),
        "requests_per_s": round(request_rate, 1),
        "healthz_requests_per_s": round(healthz_rate, 1),
        "journey_to_healthz_ratio": round(request_rate / healthz_rate, 3) if healthz_rate else None,
        "seconds": round(elapsed, 1),
        "journeys": {"started": j["journeys_started"], "completed": j["journeys_completed"],
                     "not_booked": not_booked, "abandoned_at_end": j["abandoned"],
                     "bookings": j["bookings"], "window_retries": j["window_retries"]},
        "steps_ms": {step: percentiles(j["latencies"].get(step, [])) for step in STEPS},
        "journey_ms": percentiles(j["journey_ms"]),
        "errors_total": sum(errors.values()),
        "errors": errors,
        "statuses": dict(j["statuses"]),
        "waits": {"answers": j["waits"], "seconds": round(j["wait_seconds"], 1),
                  "journeys": j["waited_journeys"]},
        "healthz": {"requests": h["requests"], "seconds": round(h["elapsed"], 1),
                    "errors": dict(h["errors"]), "ms": percentiles(h["latencies"].get("healthz", []))},
        "generator": {"processes": args.generators, "concurrency": concurrency,
                      "overload": args.overload, "think_time_s": args.think_time, "ramp_s": args.ramp,
                      "cpu_seconds": round(j["cpu_seconds"], 1),
                      "cpu_share": round(j["cpu_seconds"] / elapsed, 2),  # of one core
                      "cpu_ms_per_request": round(1000 * j["cpu_seconds"] / max(j["requests"], 1), 2),
                      "healthz_cpu_seconds": round(h["cpu_seconds"], 1),
                      "healthz_cpu_share": round(h["cpu_seconds"] / (h["elapsed"] or 1e-9), 2),
                      "disconnect_retries": j["disconnect_retries"],
                      "client": versions("aiohttp", "uvloop")},
        "server": {"command": f"run.py serve --workers {args.workers}" + (" --send-sms" if args.send_sms else ""),
                   # every server process's CPU during the journeys (/proc), per journey's worth
                   # of answered steps: the figure that holds on a machine shared with other work
                   "cpu_seconds": round(j.get("server_cpu_seconds", 0.0), 1),
                   "cpu_share": round(j.get("server_cpu_seconds", 0.0) / elapsed, 2),
                   "cpu_ms_per_journey": round(1000 * j.get("server_cpu_seconds", 0.0)
                                               / max(answered / len(STEPS), 1), 1),
                   "env": args.server_env,
                   "workers": args.workers, "database": args.db, "redis": bool(args.redis_url),
                   **served_settings(env), "client_address": "127.0.0.1",
                   "stack": versions("uvicorn", "uvloop", "httptools", "granian", "starlette",
                                     "tortoise-orm", "aiosqlite", "asyncpg")},
        "dataset": data.summary() | {"url": "sqlite (temporary file)" if args.db == "sqlite" else args.postgres_url},
        "limits": {"duration_s": args.duration, "journeys": args.journeys, "residents": args.residents},
        "check": check,
        "waitlist": waitlist,
        "wall_seconds": round(wall, 1),
        "machine": {"cpus": os.cpu_count(), "load_average_1m": round(os.getloadavg()[0], 2)},
    }
