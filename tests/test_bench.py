"""The benchmark (bench/, `make bench`) end to end with tiny numbers: a small district, a real
server, a few residents at once, bounded by the number of journeys (not by time), with the
waiting list beside them (--waitlist: cancellations during the journeys, the offers taken by their
SMS links after), then `check`."""
from __future__ import annotations

import json
import subprocess
import sys

import pytest

from bench.dataset import id_number_for, token_for
from bench.load import STEPS
from models.people import pii
from tests.conftest import DB_BACKENDS, PG_URL, reset_postgres
from tests.realserver import ROOT

JOURNEYS = 20
WARMUP = 2
CANCELS = 4


def test_tokens_and_id_numbers_are_derived_unique_and_valid():
    tokens = {token_for(14, rid) for rid in range(1, 2001)}
    numbers = {id_number_for(14, rid) for rid in range(1, 50_001)}
    assert len(tokens) == 2000 and all(len(t) == 22 for t in tokens)
    assert len(numbers) == 50_000
    for rid in (1, 22_999, 23_000, 49_999):
        assert pii.validate_id(id_number_for(14, rid)) == id_number_for(14, rid)
    assert token_for(14, 7) != token_for(15, 7)


@pytest.mark.slow
@pytest.mark.parametrize("backend", DB_BACKENDS)
async def test_bench_runs_journeys_books_and_checks_clean(backend):
    command = [sys.executable, "-m", "bench", "--residents", "300", "--sites", "3", "--days", "3",
               "--concurrency", "5", "--journeys", str(JOURNEYS), "--duration", "600",
               "--warmup", str(WARMUP), "--healthz-requests", "100", "--healthz-seconds", "60",
               "--generators", "1", "--workers", "1",  # the SQLite file is kept in /tmp/booking-bench-cache for next time
               # the waiting list beside the rush: 8 booked on site 1's mornings, 4 of them cancel, 6 waiting
               "--waitlist", "--waitlist-sites", "1", "--cancels", str(CANCELS), "--waiting", "6",
               "--cancel-over", "0"]
    if backend == "postgres":
        command += ["--db", "postgres", "--postgres-url", PG_URL]
    try:
        done = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, timeout=300)
    finally:
        if backend == "postgres":
            await reset_postgres(PG_URL)  # the next test migrates the test database again
    assert done.returncode == 0, done.stderr[-3000:] + done.stdout[-3000:]
    lines = done.stdout.strip().splitlines()
    assert len(lines) == 1, "one JSON line on standard output"
    report = json.loads(lines[0])
    assert report["db"] == backend
    assert report["journeys"]["completed"] == report["journeys"]["bookings"] == JOURNEYS
    assert report["journeys"]["not_booked"] == report["journeys"]["abandoned_at_end"] == 0
    assert report["errors_total"] == 0 and report["errors"] == {}
    assert set(report["statuses"]) <= {"200", "303", "422"}
    assert report["journeys_per_s"] > 0 and report["bookings_per_s"] > 0
    assert report["journeys_per_s_from_steps"] > 0
    for step in STEPS:
        assert report["steps_ms"][step]["n"] >= JOURNEYS
        assert report["steps_ms"][step]["p50"] <= report["steps_ms"][step]["p95"] <= report["steps_ms"][step]["p99"]
    assert report["healthz"]["requests"] == 100 and report["healthz_requests_per_s"] > 0
    assert report["journey_to_healthz_ratio"] > 0
    assert report["generator"]["cpu_seconds"] >= 0 and report["generator"]["processes"] == 1
    assert report["waits"]["answers"] >= 0
    assert report["server"]["workers"] == 1
    assert report["server"]["rate_limits"]["open_link"] == "30/minute"  # as shipped
    assert report["check"]["ok"] and report["check"]["exit_status"] == 0
    listed = report["waitlist"]
    assert listed["booked_before"] == 2 * CANCELS and listed["waiting"] == 6
    assert listed["cancelled"] == listed["offers_made"] == listed["offers_taken"] == CANCELS
    assert listed["offers_taken_seen"] == CANCELS and listed["offers_open"] == 0
    assert listed["public_on_freed"] == 0 and listed["errors"] == {}
    assert listed["steps_ms"]["cancel"]["n"] == listed["steps_ms"]["offer_confirm"]["n"] == CANCELS
    # the journeys' bookings, and the mornings': booked before, less the cancelled, plus the offers taken
    assert report["check"]["bookings_in_db"] == report["check"]["bookings_seen"] == JOURNEYS + WARMUP + 2 * CANCELS


async def test_a_waiting_room_answer_is_waited_out_and_asked_again():
    """X-Waiting-Room: 1 counts as a wait (not an error); the same request is sent again."""
    import aiohttp
    from aiohttp import web

    from bench.load import Generator, Plan, Resident

    seen = []

    async def page(request):
        seen.append((request.method, request.path, request.headers.get("Cookie", "")))
        if len(seen) == 1:
            return web.Response(text='<meta http-equiv="refresh" content="3">', headers={
                "X-Waiting-Room": "1", "Retry-After": "0", "Set-Cookie": "queue=abc; Path=/"})
        return web.Response(text="the page", headers={"Set-Cookie": "queue=; Max-Age=0; Path=/"})

    app = web.Application()
    app.router.add_route("*", "/booking/verify", page)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]
    try:
        async with aiohttp.ClientSession(cookie_jar=aiohttp.DummyCookieJar()) as session:
            plan = Plan(base_url=f"http://127.0.0.1:{port}", mode="journey", concurrency=1,
                        start_at=0, duration=60, max_journeys=1)
            gen = Generator(plan, session, (aiohttp.ServerDisconnectedError,))
            resident = Resident(gen, 1)
            status, _, text = await resident.request("id_check", "POST", "/booking/verify", {"a": "1"})
    finally:
        await runner.cleanup()
    assert (status, text) == (200, "the page")
    assert [s[:2] for s in seen] == [("POST", "/booking/verify")] * 2, "the same request again"
    assert seen[1][2] == "queue=abc", "with the place-in-line cookie"
    assert resident.cookies == {}, "an expired cookie is dropped"
    assert gen.tally.waits == 1 and gen.tally.wait_seconds == 0.1 and not gen.tally.errors
    assert len(gen.tally.latencies["id_check"]) == 1 and gen.tally.requests == 2
