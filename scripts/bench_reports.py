"""How fast the report pages answer on a real server: median and 95th percentile per page.

    DATABASE_URL=sqlite:///tmp/district.sqlite3 SECRET_KEY=bench .venv/bin/python scripts/bench_reports.py

Starts `run.py serve` on that database (as tests/realserver.py does), signs in as the admin
(scripts/district_data.py creates `admin`; --password), asks for every report page and CSV
download, without and with filters, first once to warm up and then -n times each, one request at a
time, and prints a Markdown table (milliseconds, the whole response read). Dates are relative to
--today (default: today), the day scripts/district_data.py made the data as of. Also prints how
long the server took to take its resident snapshot (from the server's log). Not part of the test
suite: a measurement, exit status 0 unless the server cannot be used; --limit 500 makes a page
slower than 500 ms at the 95th percentile an exit status of 1.
"""
from __future__ import annotations

import argparse
import datetime as dt
import math
import os
import re
import statistics
import sys
import time
from pathlib import Path
from urllib.parse import urlencode

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import httpx  # noqa: E402

from tests.realserver import Server  # noqa: E402


def pages(today: dt.date) -> list[tuple[str, str, dict]]:
    """(label, path, query) of every report page and download, plain and filtered."""
    d = lambda n: (today + dt.timedelta(days=n)).isoformat()  # noqa: E731
    sixty = {"from_day": d(-30), "to_day": d(29)}
    return [
        ("sub-districts", "/admin/reports", {}),
        ("sub-districts, one sub-district", "/admin/reports", {"subdistrict": "五山街"}),
        ("sub-districts, first doses days 21-56 ago", "/admin/reports", {"from_day": d(-56), "to_day": d(-21)}),
        ("per site per day, 7 days (default)", "/admin/reports/sites", {}),
        ("per site per day, 60 days", "/admin/reports/sites", sixty),
        ("per site per day, 60 days, last page", "/admin/reports/sites", {**sixty, "page": 30}),
        ("per site per day, 60 days, one site", "/admin/reports/sites", {**sixty, "site": 1}),
        ("per site per day, 60 days, one sub-district", "/admin/reports/sites", {**sixty, "subdistrict": "五山街"}),
        ("per site per day, 92 days (the most)", "/admin/reports/sites", {"from_day": d(-62), "to_day": d(29)}),
        ("completion, 30 days (default)", "/admin/reports/completion", {}),
        ("completion, 60 days, one sub-district", "/admin/reports/completion", {**sixty, "subdistrict": "五山街"}),
        ("completion, 366 days", "/admin/reports/completion", {"from_day": d(-365), "to_day": d(0)}),
        ("CSV sub-districts", "/admin/reports/subdistricts.csv", {}),
        ("CSV per site per day, 60 days", "/admin/reports/sites.csv", sixty),
        ("CSV completion, 60 days", "/admin/reports/completion.csv", sixty),
    ]


def sign_in(client: httpx.Client, username: str, password: str) -> None:
    page = client.get("/staff")
    token = re.search(r'name="csrftoken" value="([^"]+)"', page.text).group(1)
    answer = client.post("/staff/login", data={"csrftoken": token, "username": username, "password": password})
    if answer.status_code != 303:
        raise SystemExit(f"could not sign in as {username} ({answer.status_code}): "
                         "is this a database made by scripts/district_data.py?")


def timed(client: httpx.Client, url: str) -> tuple[float, int, int]:
    started = time.perf_counter()
    answer = client.get(url)
    size = len(answer.content)
    return (time.perf_counter() - started) * 1000, answer.status_code, size


def p95(values: list[float]) -> float:
    ordered = sorted(values)
    return ordered[max(0, math.ceil(0.95 * len(ordered)) - 1)]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("-n", type=int, default=30, help="timed requests per page (default 30)")
    parser.add_argument("--today", type=dt.date.fromisoformat, default=None)
    parser.add_argument("--username", default="admin")
    parser.add_argument("--password", default="district-bench-password")
    parser.add_argument("--limit", type=float, default=None, help="exit 1 when a p95 is over this (ms)")
    args = parser.parse_args(argv)
    url, secret = os.environ.get("DATABASE_URL", ""), os.environ.get("SECRET_KEY", "")
    if not url.startswith("sqlite://") or not secret:
        print("error: set DATABASE_URL (sqlite:///tmp/district.sqlite3) and the SECRET_KEY the data was "
              "made with", file=sys.stderr)
        return 2
    if args.today is None:
        from models.clock import SystemClock

        args.today = SystemClock().today()
    print(f"starting `run.py serve` on {url} …", flush=True)
    started = time.monotonic()
    server = Server(url, secret)
    print(f"server up in {time.monotonic() - started:.1f} s at {server.base_url}", flush=True)
    rows, over = [], []
    try:
        with httpx.Client(base_url=server.base_url, timeout=60, headers={"Accept-Encoding": "gzip"}) as client:
            sign_in(client, args.username, args.password)
            first, status, _ = timed(client, "/admin/reports")  # may wait for the start-up snapshot
            print(f"first report page after start: {first:.0f} ms ({status})", flush=True)
            for label, path, query in pages(args.today):
                address = path + ("?" + urlencode(query) if query else "")
                _, status, size = timed(client, address)  # warm: templates compiled, caches filled
                if status != 200:
                    raise SystemExit(f"{address} answered {status}")
                times = [timed(client, address)[0] for _ in range(args.n)]
                rows.append((label, address, statistics.median(times), p95(times), max(times), size))
                print(f"  {label}: median {rows[-1][2]:.0f} ms, p95 {rows[-1][3]:.0f} ms", flush=True)
                if args.limit and rows[-1][3] > args.limit:
                    over.append(label)
    finally:
        server.stop()
    taken = re.findall(r"report snapshot taken in (\d+) ms", server.log_path.read_text(errors="replace"))
    print()
    print(f"{args.n} requests per page, one at a time; milliseconds for the whole response.")
    print()
    print("| page | median | p95 | max | bytes |")
    print("|---|---:|---:|---:|---:|")
    for label, address, median, high, top, size in rows:
        print(f"| {label} <br>`{address}` | {median:.0f} | {high:.0f} | {top:.0f} | {size:,} |")
    print()
    if taken:
        print(f"resident snapshot taken {len(taken)} time(s) in the background: "
              + ", ".join(f"{t} ms" for t in taken))
    print(f"first report page after start: {first:.0f} ms")
    if over:
        print(f"over {args.limit:.0f} ms at p95: {', '.join(over)}")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
