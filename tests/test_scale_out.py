"""Scale-out, run: two server instances (`run.py serve` on two ports, as two hosts behind a load
balancer that does not keep a resident on one of them) against one PostgreSQL and one Redis.

A rush spread over both keeps the invariants; every request of every resident goes to the other
instance than the one before (the session and CSRF cookies are signed, so either can continue a
journey); failures counted by one instance count on the other (rate limits in Redis).
docs/scaling.md says what this proves and what it does not.
"""
from __future__ import annotations

import asyncio
import datetime as dt
import os
import secrets
from collections import Counter

import httpx
import pytest

from models.clock import SystemClock
from models.db.tables import Booking
from models.people.links import issue_link
from tests.conftest import PG_URL, TEST_SECRET, reset_postgres
from tests.factories import make_resident, make_site, make_slot
from tests.realserver import Server, seed
from tests.rush import GOOD, Person, seen_codes
from tests.test_concurrency import counts, run_check

REDIS_URL = os.environ.get("TEST_REDIS_URL", "")

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(not PG_URL, reason="TEST_POSTGRES_URL is not set: two instances need one "
                                          "shared PostgreSQL"),
    pytest.mark.skipif(not REDIS_URL, reason="TEST_REDIS_URL is not set: two instances share "
                                             "their rate-limit counts through Redis"),
]

RESIDENTS, PLACES = 150, 100
VERIFY_LIMIT, OPEN_LINK_LIMIT = 4, 3  # below the per-link lock (5 wrong numbers): not confused
DOUBLE_TAPPERS = 20  # press confirm 2 or 3 times at once, on alternating instances
LB = "http://127.0.0.1"  # what clients ask for; Alternating picks the instance's port


class Alternating(httpx.AsyncBaseTransport):
    """A round-robin balancer per client: each request goes to the next instance in turn."""

    def __init__(self, inner: httpx.AsyncBaseTransport, ports: list[int], first: int = 0):
        self.inner, self.ports, self.turn = inner, ports, first
        self.served: list[int] = []  # the port of each request, in order
        self.waited = 0  # waiting-room pages: none expected, the waiting room is off

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        port = self.ports[self.turn % len(self.ports)]
        self.turn += 1
        request.url = request.url.copy_with(port=port)
        request.headers["Host"] = f"127.0.0.1:{port}"
        self.served.append(port)
        response = await self.inner.handle_async_request(request)
        self.waited += response.headers.get("x-waiting-room") == "1"
        return response


def connections() -> httpx.AsyncHTTPTransport:
    """One pool for the whole crowd (a transport costs 50 ms of CPU to make); a new connection
    per request, as tests/rush.py: a kept-alive one may be closed by the server as it is reused."""
    return httpx.AsyncHTTPTransport(limits=httpx.Limits(max_connections=None,
                                                        max_keepalive_connections=0))


class Resident(Person):
    """tests/rush.py's resident behind the balancer, who may find the site or the window full by
    the time they choose it (the rush's slowest get there after the last place went)."""

    def __init__(self, token: str, id_number: str, balancer: Alternating):
        # Cookies are kept per host name, never per port: one jar for both instances, as a
        # browser has for one site behind a balancer.
        super().__init__(LB, token, id_number, transport=balancer)
        self.balancer = balancer

    async def choose(self, site_id: int, slot_id: int) -> httpx.Response | None:
        """Site, then window (which holds the place): the check page, or None when the site or
        the window filled up first (`last_form`: the last form they were shown)."""
        self.last_form = await self._get("/booking/site")
        r = await self._post("/booking/site", self.last_form, {"site": site_id})
        if r.status_code == 303:
            page = await self._get("/booking/slot")
            if page.status_code == 200:  # else the site is full now: back to the site page
                self.last_form = page
                r = await self._post("/booking/slot", page, {"slot": slot_id})
                if r.status_code == 303:
                    check = await self._get("/booking/check")
                    if check.status_code == 200:
                        return check
        return None


def build_world(url: str) -> dict:
    """One site, one window of PLACES; RESIDENTS with links, and one more (the guesser's target)."""
    clock = SystemClock()
    today = clock.today()

    async def build():
        site = await make_site("S01", "天河南街")
        tomorrow = today + dt.timedelta(days=1)
        slot = await make_slot(site, tomorrow, "09:00", "10:00", capacity=PLACES)
        first = today - dt.timedelta(days=30)
        people = []
        for i in range(RESIDENTS + 1):
            resident, number = await make_resident(site, first_dose=first, name=f"市民{i}",
                                                   phone=f"139{i:08d}")
            people.append((await issue_link(resident, now=clock.now()), number, resident.id))
        *crowd, target = people
        return {"site": site.id, "slot": slot.id, "crowd": crowd, "target": target}

    return seed(url, build)


async def rush(ports: list[int], world: dict) -> tuple[list[Person], list[BaseException]]:
    """Everybody signs in, then everybody goes for the window at the same moment; the crowd and
    what went wrong on the client's side (a page without the form it should have)."""
    pool = connections()
    people = [Resident(token, number, Alternating(pool, ports, first=i))
              for i, (token, number, _) in enumerate(world["crowd"])]
    barrier = asyncio.Barrier(len(people))
    # Every ID check is counted from one address before it is made (and given back once it
    # proved right): fewer at once than VERIFY_LIMIT, as residents arriving over a minute are.
    signing_in = asyncio.Semaphore(VERIFY_LIMIT - 1)

    async def one(i: int, p: Person) -> None:
        try:
            async with signing_in:
                await p.sign_in()
        finally:  # one who could not sign in must not leave the others waiting for ever
            await barrier.wait()
        check = await p.choose(world["site"], world["slot"])
        if check is not None:
            await p.confirm(check, world["slot"], times=2 + i % 2 if i < DOUBLE_TAPPERS else 1)
        else:  # they saw the window free a moment ago: they press confirm all the same
            await p.confirm_stale(world["slot"])

    try:
        failed = await asyncio.gather(*(one(i, p) for i, p in enumerate(people)),
                                      return_exceptions=True)
    finally:
        await asyncio.gather(*(p.close() for p in people))
        await pool.aclose()
    return people, [f for f in failed if f is not None]


async def guess_id_numbers(ports: list[int], world: dict, tries: int) -> list[httpx.Response]:
    """Someone with another person's link types wrong (well-formed) ID numbers, one at a time."""
    token, _, _ = world["target"]
    wrong = world["crowd"][0][1]  # a real ID number, somebody else's
    pool = connections()
    guesser = Resident(token, wrong, Alternating(pool, ports))
    try:
        await guesser._get(f"/b/{token}")
        page = await guesser._get("/booking")
        return [await guesser._post("/booking/verify", page, {"id_number": wrong})
                for _ in range(tries)]
    finally:
        await guesser.close()
        await pool.aclose()


async def guess_links(ports: list[int], tries: int) -> list[httpx.Response]:
    async with connections() as pool, \
            httpx.AsyncClient(base_url=LB, transport=Alternating(pool, ports)) as c:
        return [await c.get(f"/b/{secrets.token_urlsafe(16)}") for _ in range(tries)]


def active_bookings(url: str) -> list[dict]:
    async def read():
        return await Booking.filter(status=Booking.ACTIVE).values("code", "resident_id")

    return seed(url, read)


def forget_prefix(prefix: str) -> None:
    import redis

    r = redis.Redis.from_url(REDIS_URL)
    try:
        keys = list(r.scan_iter(f"{prefix}*"))
        if keys:
            r.delete(*keys)
    finally:
        r.close()


def test_two_instances_share_one_database_and_one_redis():
    asyncio.run(reset_postgres(PG_URL))  # migrated from nothing by the seeding below
    world = build_world(PG_URL)
    prefix = f"test-scale-{secrets.token_hex(6)}"  # counts of this run only, in the shared Redis
    shared = {"REDIS_URL": REDIS_URL, "REDIS_PREFIX": prefix,
              "RATE_LIMIT_VERIFY": f"{VERIFY_LIMIT}/minute",
              "RATE_LIMIT_OPEN_LINK": f"{OPEN_LINK_LIMIT}/minute",
              # The waiting room counts per process (web/waiting_room.py, its own tests): off, so
              # every request reaches the app and the counts below are exact.
              "WAITING_ROOM_ACTIVE": "0"}
    one = Server(PG_URL, TEST_SECRET, workers=2, **shared)
    two = None
    try:
        two = Server(PG_URL, TEST_SECRET, workers=1, **shared)
        ports = [one.port, two.port]
        people, failed = asyncio.run(rush(ports, world))
        # Last: past the limit, this address is refused for a minute, residents included.
        verify = asyncio.run(guess_id_numbers(ports, world, 2 * VERIFY_LIMIT))
        opened = asyncio.run(guess_links(ports, 2 * OPEN_LINK_LIMIT))
    finally:
        one.stop()
        if two is not None:
            two.stop()
        forget_prefix(prefix)

    # Sessions: every resident's journey went back and forth between the instances.
    waited = sum(p.balancer.waited for p in people)
    assert waited == 0, f"{waited} waiting-room pages: is WAITING_ROOM_ACTIVE still its name?"
    assert failed == [], failed[:3]
    for p in people:
        assert set(p.balancer.served) == set(ports), p.balancer.served
        assert all(a != b for a, b in zip(p.balancer.served, p.balancer.served[1:]))
    bad = sorted({s for p in people for s in p.statuses if s not in GOOD})
    assert bad == [], f"responses other than a page or a redirect: {bad}"
    shown = seen_codes(people)
    assert len(shown) == PLACES, f"{len(shown)} residents were shown a confirmation"

    # The places, counted in the database.
    assert counts(PG_URL, world["slot"]) == {"capacity": PLACES, "booked": PLACES, "held": 0,
                                             "active": PLACES}
    booked = active_bookings(PG_URL)
    twice = [r for r, n in Counter(b["resident_id"] for b in booked).items() if n > 1]
    assert twice == [], "somebody holds two active bookings"
    assert shown <= {b["code"] for b in booked}, "a confirmation shown is not in the database"
    assert world["target"][2] not in {b["resident_id"] for b in booked}
    result = run_check(PG_URL)
    assert result.returncode == 0, result.stdout + result.stderr

    # Rate limits: one count over both instances, not one per instance.
    assert [r.status_code for r in verify] == [422] * VERIFY_LIMIT + [429] * VERIFY_LIMIT
    assert {r.url.port for r in verify[VERIFY_LIMIT:]} == set(ports), "both instances refuse"
    assert all(0 < int(r.headers["retry-after"]) <= 60 for r in verify[VERIFY_LIMIT:])
    assert [r.status_code for r in opened] == [404] * OPEN_LINK_LIMIT + [429] * OPEN_LINK_LIMIT
    assert {r.url.port for r in opened[OPEN_LINK_LIMIT:]} == set(ports)
