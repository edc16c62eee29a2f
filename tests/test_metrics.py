"""/metrics: not public, counts by route name, values that move with a booking, and totals that
add up across the workers of a real server."""
from __future__ import annotations

import asyncio
import datetime as dt
import glob
import logging
import os

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from models.booking import service
from models.db.tables import Link
from models.messaging.config import SmsConfig
from models.messaging.delivery import send_due
from models.messaging.gateways.console import ConsoleBackend
from models.people import pii
from models.people.links import issue_link, verify_identity
from tests.conftest import NOW, TEST_SECRET, TODAY, VAULT
from tests.factories import make_resident, make_site, make_slot
from tests.realserver import Server
from web.limits import RateLimits

TOKEN = "metrics-token-for-the-tests-0123456789"
BEARER = {"Authorization": f"Bearer {TOKEN}"}
TOMORROW = TODAY + dt.timedelta(days=1)


def value(text: str, name: str, **labels: str) -> float:
    """The sum of the samples `name` whose labels include `labels` (0 when there is none)."""
    total = 0.0
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.name == name and all(sample.labels.get(k) == v for k, v in labels.items()):
                total += sample.value
    return total


async def _client(app, address="203.0.113.7"):
    transport = httpx.ASGITransport(app=app, client=(address, 5000))
    return httpx.AsyncClient(transport=transport, base_url="http://testserver")


@pytest.fixture
def make_app(settings, clock):
    from web.app import create_app

    def make(**changes):
        return create_app(settings.with_(**changes), manage_db=False, clock=clock)

    return make


@pytest.fixture
async def scraper(make_app):
    async with await _client(make_app(metrics_token=TOKEN)) as c:
        yield c


async def scrape(c) -> str:
    r = await c.get("/metrics", headers=BEARER)
    assert r.status_code == 200, r.text[:300]
    assert r.headers["content-type"].startswith("text/plain; version=0.0.4")
    return r.text


async def test_off_unless_a_token_or_addresses_are_set(make_app):
    async with await _client(make_app()) as c:
        assert (await c.get("/metrics")).status_code == 404
        assert (await c.get("/metrics", headers=BEARER)).status_code == 404


async def test_refused_without_the_token(scraper):
    assert (await scraper.get("/metrics")).status_code == 404
    for wrong in ("Bearer nope", f"Bearer {TOKEN}x", f"Basic {TOKEN}", TOKEN, "Bearer ",
                  "Bearer \xe9".encode("latin-1")):
        r = await scraper.get("/metrics", headers={"Authorization": wrong})
        assert r.status_code == 404, wrong
        assert "booking_" not in r.text
    assert "booking_http_requests_total" in await scrape(scraper)


async def test_trusted_addresses_scrape_without_a_token(make_app):
    app = make_app(metrics_allow=("203.0.113.0/24", "::1"))
    async with await _client(app, "203.0.113.7") as inside, await _client(app, "198.51.100.1") as out:
        assert (await inside.get("/metrics")).status_code == 200
        assert (await out.get("/metrics")).status_code == 404
    # Behind a proxy, the client's own address counts, not the proxy's.
    proxied = make_app(metrics_allow=("127.0.0.1",), trusted_proxies=("127.0.0.1",))
    async with await _client(proxied, "127.0.0.1") as via_proxy:
        r = await via_proxy.get("/metrics", headers={"X-Forwarded-For": "198.51.100.1"})
        assert r.status_code == 404
        assert (await via_proxy.get("/metrics")).status_code == 200


async def test_values_move_with_a_booking(scraper, district):
    site = await make_site()
    resident, _ = await make_resident(site, first_dose=dt.date(2021, 6, 5))
    await make_slot(site, TODAY, "09:00", "10:00", capacity=3)
    await make_slot(site, TODAY, "07:00", "08:00", capacity=9)  # begun: not bookable any more
    slot = await make_slot(site, TOMORROW, "09:00", "10:00", capacity=5)
    before = await scrape(scraper)
    assert value(before, "booking_places_free", day="today") == 3
    assert value(before, "booking_places_free", day="tomorrow") == 5
    assert value(before, "booking_live_holds") == 0

    await service.choose(district, await service.stand(district, resident), slot.id)
    held = await scrape(scraper)
    assert value(held, "booking_live_holds") == 1
    assert value(held, "booking_places_free", day="tomorrow") == 4

    standing = await service.stand(district, resident)
    placed = await service.confirm(district, standing, slot.id, request_key="k1", channel="sms",
                                   chosen=slot.id)
    booked = await scrape(scraper)
    assert value(booked, "booking_bookings_made_total", channel="sms") == \
        value(before, "booking_bookings_made_total", channel="sms") + 1
    assert value(booked, "booking_live_holds") == 0
    assert value(booked, "booking_places_free", day="tomorrow") == 4
    assert value(booked, "booking_sms_messages", kind="confirm", status="queued") == 1
    assert value(booked, "booking_sms_messages", kind="confirm", status="sent") == 0
    assert (await send_due(VAULT, ConsoleBackend(), SmsConfig(), now=NOW)).sent == 1
    sent = await scrape(scraper)
    assert value(sent, "booking_sms_messages", kind="confirm", status="queued") == 0
    assert value(sent, "booking_sms_messages", kind="confirm", status="sent") == 1

    await service.cancel(district, resident.id, placed.booking.id)
    cancelled = await scrape(scraper)
    assert value(cancelled, "booking_bookings_cancelled_total", channel="sms") == \
        value(before, "booking_bookings_cancelled_total", channel="sms") + 1
    assert value(cancelled, "booking_places_free", day="tomorrow") == 5
    assert value(cancelled, "booking_sms_messages", kind="cancel", status="queued") == 1


async def test_requests_are_counted_by_route_name_never_by_path(scraper):
    site = await make_site()
    resident, _ = await make_resident(site, first_dose=dt.date(2021, 6, 5))
    token = await issue_link(resident, now=NOW)
    before = await scrape(scraper)
    await scraper.get(f"/b/{token}")
    await scraper.get("/no/such/page/12345678901234")
    after = await scrape(scraper)
    assert value(after, "booking_http_requests_total", route="open_link") == \
        value(before, "booking_http_requests_total", route="open_link") + 1
    assert value(after, "booking_http_requests_total", route="none", status="404") == \
        value(before, "booking_http_requests_total", route="none", status="404") + 1
    assert value(after, "booking_http_request_duration_seconds_count", route="open_link") == \
        value(before, "booking_http_request_duration_seconds_count", route="open_link") + 1
    assert token not in after and "12345678901234" not in after


async def test_rate_limit_refusals_are_counted(make_app):
    async with await _client(make_app(metrics_token=TOKEN, rate_limit_open_link="2/minute")) as c:
        before = await scrape(c)
        statuses = [(await c.get(f"/b/unknown-token-{n}")).status_code for n in range(4)]
        assert statuses[-1] == 429
        after = await scrape(c)
    assert value(after, "booking_rate_limit_refusals_total", limit="open_link") == \
        value(before, "booking_rate_limit_refusals_total", limit="open_link") + 2


async def test_sign_in_lock_outs_are_counted(scraper):
    site = await make_site()
    resident, _ = await make_resident(site, first_dose=dt.date(2021, 6, 5))
    await issue_link(resident, now=NOW)
    link = await Link.get(resident_id=resident.id)
    before = await scrape(scraper)
    other = pii.build_id_number("440106", dt.date(1950, 1, 1), 7)
    for _ in range(5):
        result = await verify_identity(VAULT, link, other, now=NOW, max_failures=5)
    assert result.reason == "locked"
    limits = RateLimits({"login_guess": "1 per 15 minutes"})
    assert await limits.hit("login_guess", "boss|203.0.113.7")
    assert not await limits.hit("login_guess", "boss|203.0.113.7")
    after = await scrape(scraper)
    assert value(after, "booking_signin_lockouts_total", who="link") == \
        value(before, "booking_signin_lockouts_total", who="link") + 1
    assert value(after, "booking_signin_lockouts_total", who="staff") == \
        value(before, "booking_signin_lockouts_total", who="staff") + 1


@pytest.mark.slow
async def settled(c) -> str:
    """A scrape once the count of /healthz stopped moving between two scrapes in a row (the
    server's own readiness checks all counted)."""
    last = None
    for _ in range(200):
        text = (await c.get("/metrics", headers=BEARER)).text
        now = value(text, "booking_http_requests_total", route="healthz")
        if now == last:
            return text
        last = now
    raise AssertionError("the count of /healthz never settled")


def test_counts_add_up_across_two_workers(tmp_path):
    """Every worker's requests in every scrape, whichever worker answers it."""
    counters = tmp_path / "metrics"
    counters.mkdir()
    (counters / "counter_1.db").write_bytes(b"left over from an earlier run")  # removed at start
    server = Server(f"sqlite://{tmp_path}/m.sqlite3", TEST_SECRET, workers=2,
                    METRICS_TOKEN=TOKEN, PROMETHEUS_MULTIPROC_DIR=str(counters))
    try:
        async def run() -> tuple[int, list[str]]:
            # A new connection per request, so that the kernel hands them to either worker.
            async with httpx.AsyncClient(base_url=server.base_url, timeout=30,
                                         limits=httpx.Limits(max_keepalive_connections=0)) as c:
                start = value(await settled(c), "booking_http_requests_total", route="healthz")
                sent = 0
                # Until both workers have answered some (each then has its own counter file).
                for _ in range(50):
                    replies = await asyncio.gather(*(c.get("/healthz") for _ in range(20)))
                    assert all(r.status_code == 200 for r in replies)
                    sent += len(replies)
                    if len(glob.glob(os.path.join(counters, "counter_*.db"))) >= 2:
                        break
                # A worker counts a request just after its answer has left: wait for the last
                # ones to be counted (a condition, asked again at once, never a sleep)...
                for _ in range(200):
                    text = (await c.get("/metrics", headers=BEARER)).text
                    if value(text, "booking_http_requests_total", route="healthz") >= start + sent:
                        break
                # ... then every scrape, whichever worker answers it, has them all.
                scrapes = [(await c.get("/metrics", headers=BEARER)).text for _ in range(8)]
                return start + sent, scrapes

        expected, scrapes = asyncio.run(run())
        writers = {os.path.basename(f) for f in glob.glob(os.path.join(counters, "counter_*.db"))}
        assert len(writers) >= 2 and "counter_1.db" not in writers
        for text in scrapes:
            assert value(text, "booking_http_requests_total", route="healthz") == expected
            assert value(text, "booking_http_request_duration_seconds_count", route="healthz") == expected
            assert "booking_places_free" in text
    finally:
        server.stop()


def test_serve_gives_several_workers_a_fresh_directory_for_their_counts(monkeypatch, tmp_path):
    import uvicorn

    import run

    seen = []

    def fake_run(*args, **kwargs):
        folder = os.environ["PROMETHEUS_MULTIPROC_DIR"]
        seen.append((folder, os.path.isdir(folder), kwargs))

    monkeypatch.setattr(uvicorn, "run", fake_run)
    monkeypatch.setenv("DATABASE_URL", f"sqlite://{tmp_path}/x.sqlite3")
    monkeypatch.setenv("SECRET_KEY", TEST_SECRET)
    monkeypatch.setenv("METRICS_TOKEN", TOKEN)
    monkeypatch.setenv("LOG_FORMAT", "json")
    monkeypatch.delenv("PROMETHEUS_MULTIPROC_DIR", raising=False)
    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    try:
        assert run.main(["--port", "8123", "--workers", "2"]) == 0
    finally:
        os.environ.pop("PROMETHEUS_MULTIPROC_DIR", None)  # run.py set it for the workers
        root.handlers[:] = handlers  # run.py set up its JSON handler
        root.setLevel(level)
    (folder, existed, kwargs), = seen
    assert existed and not os.path.exists(folder)  # made for the workers, removed after
    assert kwargs["workers"] == 2 and kwargs["log_config"] is None  # uvicorn's lines as JSON too


async def test_the_outbox_is_counted_along_an_index_not_read_row_by_row(db, db_url):
    """Millions of sent messages are counted at each scrape: by the (status, kind) index alone."""
    from models.db import fast
    from models.db.tallies import SMS_BY_KIND

    if not db_url.startswith("sqlite"):
        pytest.skip("the plan's wording is SQLite's")
    conn = fast.db()
    plan = " ".join(str(tuple(row)) for row in fast._reader(conn).execute("EXPLAIN QUERY PLAN " + SMS_BY_KIND))
    assert "COVERING INDEX" in plan, plan
