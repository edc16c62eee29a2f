"""Rate limits count failures, in Redis when REDIS_URL is set, so every worker and host counts
together: residents sharing one address all get through, a guesser is stopped."""
from __future__ import annotations

import asyncio
import datetime as dt
import os
import secrets

import httpx
import pytest

from models.clock import SystemClock
from models.people.links import issue_link
from tests.conftest import TEST_SECRET
from tests.factories import make_resident, make_site, make_slot
from tests.realserver import Server, seed
from tests.rush import GOOD, Person
from web.limits import RateLimits

REDIS_URL = os.environ.get("TEST_REDIS_URL", "")
needs_redis = pytest.mark.skipif(not REDIS_URL, reason="TEST_REDIS_URL is not set")


def _limits(**kw) -> RateLimits:
    return RateLimits({"verify": "3/minute"}, **kw)


def _fresh_prefix() -> str:
    """A namespace of this test's own in the shared Redis: nothing left from another run."""
    return f"test-{secrets.token_hex(6)}"


async def _fail_until_refused(limits: RateLimits, key: str, tries: int = 5) -> list[bool]:
    return [bool(await limits.hit("verify", key)) for _ in range(tries)]


async def test_in_memory_each_process_counts_alone():
    one, two = _limits(store="memory"), _limits(store="memory")
    assert await _fail_until_refused(one, "198.51.100.1", 4) == [True, True, True, False]
    assert await two.hit("verify", "198.51.100.1"), "a second process has its own memory"
    assert 0 < await one.retry_after("verify", "198.51.100.1") <= 60


async def test_without_redis_every_process_on_the_database_counts_together(db):
    """Two RateLimits are two worker processes: without Redis they share the database's count."""
    one, two = _limits(), _limits()
    assert await one.hit("verify", "198.51.100.1") and await two.hit("verify", "198.51.100.1")
    assert await one.hit("verify", "198.51.100.1")
    refused = await two.hit("verify", "198.51.100.1")
    assert not refused and 0 < refused.retry_after <= 60
    assert 0 < await one.retry_after("verify", "198.51.100.1") <= 60
    assert await two.hit("verify", "198.51.100.2"), "another address has its own count"


def _closed_port() -> int:
    import socket
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


async def test_with_redis_away_residents_get_through_and_staff_sign_in_waits(caplog):
    limits = RateLimits({"verify": "1/minute", "staff_login": "1/minute"},
                        redis_url=f"redis://127.0.0.1:{_closed_port()}/0", prefix=_fresh_prefix())
    for _ in range(3):
        assert await limits.hit("verify", "198.51.100.4")  # never a 500, never a refusal
    refused = await limits.hit("staff_login", "198.51.100.4")
    assert not refused and refused.retry_after == 60
    assert await limits.retry_after("staff_login", "198.51.100.4") == 60
    assert "rate limits not counted" in caplog.text and caplog.text.count("rate limits not counted") == 1


async def test_with_redis_away_an_unknown_link_is_still_a_page_not_a_500(db, settings, clock):
    from web.app import create_app

    settings = settings.with_(redis_url=f"redis://127.0.0.1:{_closed_port()}/0", redis_prefix=_fresh_prefix())
    transport = httpx.ASGITransport(app=create_app(settings, manage_db=False, clock=clock))
    async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as c:
        assert (await c.get("/b/guess")).status_code == 404


@needs_redis
async def test_with_redis_two_processes_share_one_count():
    prefix = _fresh_prefix()
    one, two = _limits(redis_url=REDIS_URL, prefix=prefix), _limits(redis_url=REDIS_URL, prefix=prefix)
    assert await one.hit("verify", "198.51.100.2") and await two.hit("verify", "198.51.100.2")
    assert await one.hit("verify", "198.51.100.2")
    assert not await two.hit("verify", "198.51.100.2")
    assert await one.hit("verify", "198.51.100.3"), "another address has its own count"


async def _guesses_on_two_workers(settings, clock) -> list[int]:
    """Four made-up links from one address, alternating between two apps (two workers)."""
    from web.app import create_app

    apps = [create_app(settings, manage_db=False, clock=clock) for _ in range(2)]
    statuses = []
    for n in range(4):
        transport = httpx.ASGITransport(app=apps[n % 2], client=("198.51.100.9", 5000))
        async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as c:
            statuses.append((await c.get(f"/b/guess{n}")).status_code)
    return statuses


@needs_redis
async def test_two_app_workers_with_redis_url_refuse_the_guesser_together(db, settings, clock):
    settings = settings.with_(redis_url=REDIS_URL, redis_prefix=_fresh_prefix(),
                              rate_limit_open_link="2/minute")
    assert await _guesses_on_two_workers(settings, clock) == [404, 404, 429, 429]


async def test_two_app_workers_without_redis_refuse_the_guesser_together(db, settings, clock):
    """Issue 21: without REDIS_URL each worker counted alone; now the database counts for all."""
    settings = settings.with_(redis_url="", rate_limit_open_link="2/minute")
    assert await _guesses_on_two_workers(settings, clock) == [404, 404, 429, 429]


def _crowd_world(url: str, people: int) -> dict:
    clock = SystemClock()
    today = clock.today()

    async def build():
        site = await make_site("N01", "天河南街")
        slot = await make_slot(site, today + dt.timedelta(days=1), "09:00", "17:00", capacity=people)
        first = today - dt.timedelta(days=30)
        crowd = []
        for i in range(people):
            resident, number = await make_resident(site, first_dose=first, phone=f"139{i:08d}")
            crowd.append((await issue_link(resident, now=clock.now()), number))
        return {"site": site.id, "slot": slot.id, "crowd": crowd}

    return seed(url, build)


async def _journeys(base_url: str, world: dict) -> list[Person]:
    people = [Person(base_url, token, number) for token, number in world["crowd"]]
    # A crowd arriving together, not 200 sockets at once. Each try is counted while it is in
    # flight (web/limits.py: given back once the link proved live), so no more than the limit's
    # 30 may be opening a link at the same instant from one address: 25 at once.
    gate = asyncio.Semaphore(25)

    async def one(p: Person) -> None:
        async with gate:
            await p.sign_in()
            check = await p.choose(world["site"], world["slot"])
            assert check is not None, p.statuses[-4:]
            await p.confirm(check, world["slot"])

    try:
        await asyncio.gather(*(one(p) for p in people))
    finally:
        await asyncio.gather(*(p.close() for p in people))
    return people


async def _guess(base_url: str, tries: int) -> list[httpx.Response]:
    async with httpx.AsyncClient(base_url=base_url) as c:
        return [await c.get(f"/b/{secrets.token_urlsafe(16)}") for _ in range(tries)]


@pytest.mark.slow
@needs_redis
def test_200_residents_behind_one_address_all_book_and_a_guesser_is_stopped(tmp_path):
    """Two workers and then a second server instance, sharing the database and Redis, with the
    shipped limits: everyone of a carrier address books, a guesser from it gets its 30 tries."""
    url = f"sqlite://{tmp_path}/crowd.sqlite3"
    world = _crowd_world(url, 200)
    shared = {"REDIS_URL": REDIS_URL, "REDIS_PREFIX": _fresh_prefix()}
    server = Server(url, TEST_SECRET, workers=2, **shared)
    try:
        people = asyncio.run(_journeys(server.base_url, world))
        assert sorted({s for p in people for s in p.statuses if s not in GOOD}) == []
        assert len({p.code for p in people if p.code}) == 200
        guesses = asyncio.run(_guess(server.base_url, 35))
        second = Server(url, TEST_SECRET, workers=1, **shared)
        try:
            later = asyncio.run(_guess(second.base_url, 3))
        finally:
            second.stop()
    finally:
        server.stop()
    statuses = [r.status_code for r in guesses]
    assert statuses == [404] * 30 + [429] * 5, "both workers count one address together"
    assert all(0 < int(r.headers["retry-after"]) <= 60 for r in guesses[30:])
    assert [r.status_code for r in later] == [429] * 3, "so does another server instance"
