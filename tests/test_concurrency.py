"""Real concurrency against the real server (`run.py serve --workers 4`): a rush, a storm, a crash.

Runs on SQLite, and on PostgreSQL when TEST_POSTGRES_URL is set. Afterwards the places are
counted in the database and `python run.py check` must pass.
"""
from __future__ import annotations

import asyncio
import datetime as dt
import os
import subprocess
import sys

import pytest

from models.clock import SystemClock
from models.db.tables import Booking, Slot
from models.people.links import issue_link
from tests.conftest import DB_BACKENDS, PG_URL, TEST_SECRET, reset_postgres
from tests.factories import book_for, make_resident, make_site, make_slot
from tests.realserver import ROOT, Server, seed
from tests.rush import GOOD, Person, seen_codes
from web.settings import Settings, build_district

pytestmark = pytest.mark.slow
NO_LIMITS = {"RATE_LIMIT_OPEN_LINK": "1000000/minute", "RATE_LIMIT_VERIFY": "1000000/minute"}
SEEN_BEFORE_KILL = 5  # confirmations the crowd has been shown when the server is killed


@pytest.fixture(params=DB_BACKENDS)
def database(request, tmp_path):
    if request.param == "postgres":
        asyncio.run(reset_postgres(PG_URL))
        return PG_URL
    return f"sqlite://{tmp_path}/rush.sqlite3"


def build_world(url: str, *, rushers: int, capacity: int, storm: int = 0):
    """One site; a rush slot; two storm slots already full of `storm` bookings each.

    In real time (the server runs on the real clock), booked through the booking service."""
    district = build_district(Settings(database_url=url, secret_key=TEST_SECRET),
                              clock=SystemClock())
    today = district.clock.today()

    async def build():
        site = await make_site("R01", "天河南街")
        rush = await make_slot(site, today + dt.timedelta(days=1), "09:00", "10:00", capacity=capacity)
        a = await make_slot(site, today + dt.timedelta(days=2), "09:00", "10:00", capacity=storm or 1)
        b = await make_slot(site, today + dt.timedelta(days=2), "10:00", "11:00", capacity=storm or 1)
        first = today - dt.timedelta(days=30)
        people, storm_people = [], {a.id: [], b.id: []}
        for i in range(rushers + 2 * storm):
            resident, number = await make_resident(site, first_dose=first, name=f"市民{i}",
                                                   phone=f"139{i:08d}")
            token = await issue_link(resident, now=district.clock.now(),
                                     days_valid=district.link_days_valid)
            if i < rushers:
                people.append((token, number))
                continue
            slot = a if i < rushers + storm else b
            await book_for(district, resident, slot)
            storm_people[slot.id].append((token, number))
        return dict(site=site.id, rush=rush.id, a=a.id, b=b.id, people=people, storm=storm_people)

    return seed(url, build)


def counts(url: str, slot_id: int) -> dict:
    async def read():
        slot = await Slot.get(id=slot_id)
        active = await Booking.filter(slot_id=slot_id, status=Booking.ACTIVE).count()
        return {"capacity": slot.capacity, "booked": slot.booked, "held": slot.held, "active": active}

    return seed(url, read)


def run_check(url: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "DATABASE_URL": url, "SECRET_KEY": TEST_SECRET}
    return subprocess.run([sys.executable, "run.py", "check"], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=120)


async def rush(base_url: str, world: dict, repeats: dict[int, int],
               crowd: list[Person] | None = None) -> list[Person]:
    """Everybody signs in, then everybody goes for the same window at the same moment."""
    people = [Person(base_url, token, number) for token, number in world["people"]]
    if crowd is not None:
        crowd.extend(people)
    barrier = asyncio.Barrier(len(people))

    async def one(i: int, p: Person) -> None:
        try:
            await p.sign_in()
        finally:  # one who could not sign in must not leave the others waiting for ever
            await barrier.wait()
        check = await p.choose(world["site"], world["rush"])
        if check is not None:
            await p.confirm(check, world["rush"], times=repeats.get(i, 1))
        else:  # they saw the window free a moment ago: they press confirm all the same
            await p.confirm_stale(world["rush"])

    try:
        # With a crowd to report to, a crash is expected: keep going past failed connections.
        await asyncio.gather(*(one(i, p) for i, p in enumerate(people)),
                             return_exceptions=crowd is not None)
    finally:
        await asyncio.gather(*(p.close() for p in people))
    return people


def test_400_residents_rush_50_places(database):
    world = build_world(database, rushers=400, capacity=50)
    server = Server(database, TEST_SECRET, workers=4, **NO_LIMITS)
    try:
        repeats = {i: 3 + i % 3 for i in range(30)}  # 30 people tap 3-5 times
        people = asyncio.run(rush(server.base_url, world, repeats))
    finally:
        server.stop()
    bad = sorted({s for p in people for s in p.statuses if s not in GOOD})
    assert bad == [], f"responses other than a page or a redirect: {bad}"
    confirmed = [p.code for p in people if p.code]
    assert len(confirmed) == 50 and len(set(confirmed)) == 50
    assert counts(database, world["rush"]) == {"capacity": 50, "booked": 50, "held": 0, "active": 50}
    result = run_check(database)
    assert result.returncode == 0, result.stdout + result.stderr


def test_move_and_cancel_storm_between_two_full_slots(database):
    world = build_world(database, rushers=0, capacity=1, storm=20)
    a, b = world["a"], world["b"]
    server = Server(database, TEST_SECRET, workers=4, **NO_LIMITS)

    async def storm():
        crowd = []
        for here, there in ((a, b), (b, a)):
            for i, (token, number) in enumerate(world["storm"][here]):
                crowd.append((Person(server.base_url, token, number), there, i % 2 == 0))

        async def one(person: Person, there: int, cancels: bool) -> None:
            await person.sign_in()
            if cancels:
                await person.cancel()
                return
            for _ in range(20):  # keep trying to move while others cancel
                check = await person.choose(world["site"], there)
                if check is not None:
                    await person.confirm(check, there)
                    return
                await asyncio.sleep(0.05)

        try:
            await asyncio.gather(*(one(*c) for c in crowd))
        finally:
            await asyncio.gather(*(c[0].close() for c in crowd))
        return [c[0] for c in crowd]

    try:
        people = asyncio.run(storm())
    finally:
        server.stop()
    assert sorted({s for p in people for s in p.statuses if s not in GOOD}) == []
    for slot_id in (a, b):
        c = counts(database, slot_id)
        assert c["booked"] == c["active"] <= c["capacity"] and c["held"] == 0
    still_booked = [p for p in people if p.code]
    assert len(still_booked) == 20, "the 20 who cancelled hold nothing; the 20 movers keep a booking"
    result = run_check(database)
    assert result.returncode == 0, result.stdout + result.stderr


def test_kill_9_during_a_rush_loses_no_confirmed_booking(database):
    world = build_world(database, rushers=120, capacity=60)
    server = Server(database, TEST_SECRET, workers=2, **NO_LIMITS)
    crowd: list[Person] = []

    async def rush_then_crash():
        task = asyncio.create_task(rush(server.base_url, world, {}, crowd))
        # Kill once residents have been shown confirmations (or the rush is over): whenever the
        # kill lands after that, every confirmation shown must survive it.
        while len(seen_codes(crowd)) < SEEN_BEFORE_KILL and not task.done():
            await asyncio.sleep(0.01)
        server.kill()
        await task

    asyncio.run(rush_then_crash())
    seen = seen_codes(crowd)
    assert len(seen) >= SEEN_BEFORE_KILL, f"only {len(seen)} confirmations were shown"
    server.start()  # the same database, after the crash
    server.stop()

    async def codes_on_disk():
        return set(await Booking.filter(status=Booking.ACTIVE).values_list("code", flat=True))

    assert seen <= seed(database, codes_on_disk), "a booking whose confirmation was shown is missing"
    result = run_check(database)
    assert result.returncode == 0, result.stdout + result.stderr
