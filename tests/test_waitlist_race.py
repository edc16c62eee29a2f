"""Issue 24, "Fair and exact", against the real server (`run.py serve`: one worker and two on
SQLite, two on PostgreSQL): 30 people on the waiting list, 10 owners cancelling at the same moment
from 10 clients, and a public rush beside them. Afterwards exactly 10 offers, to the first 10 in
the list's order whose choice the freed windows match, every place counted once, and each
offer's SMS in the outbox.

The world: site A has two morning windows on one weekday (S1, S2, 6 places each), full of
bookings, and one afternoon window (S3) with room. Nobody on the list accepts that afternoon
(every choice that could take A's places says "mornings"; the others want weekends or another
site), so S3 stays free for the public: that is what lets the rush choose site A and press for
S1 and S2 through the engine (a site with no room at all would turn them away before it), then
book S3, the only places free before the cancellations. A public resident who got a place on S1
or S2 would have taken one freed for the list.

Nothing here waits for a moment: the cancels and the rush are sent together, and whatever order
the server takes them in, the counts afterwards must be these.
"""
from __future__ import annotations

import asyncio
import datetime as dt
import os
import random
import subprocess
import sys
from dataclasses import dataclass

import pytest

from models.booking import service, waitlist
from models.clock import SystemClock
from models.db.tables import Booking, Slot, SmsMessage, WaitlistEntry, WaitlistOffer
from models.operations.checks import check_database
from models.people.links import issue_link
from tests.conftest import PG_URL, TEST_SECRET, reset_postgres
from tests.factories import book_for, make_resident, make_site, make_slot
from tests.realserver import ROOT, Server, seed
from tests.rush import GOOD, Person
from web.settings import Settings, build_district

pytestmark = pytest.mark.slow
# No rate limits, and no quiet hours: the offers are made the same way at any time of day.
NO_LIMITS = {"RATE_LIMIT_OPEN_LINK": "1000000/minute", "RATE_LIMIT_VERIFY": "1000000/minute",
             "QUIET_HOURS": "off"}
PER_SLOT = 6  # S1 and S2: each full of 6 bookings
CANCELS_PER_SLOT = 5  # 10 owners cancel: 5 places freed on each
WAITING = 30
RUSHERS = 30
PUBLIC_PLACES = 20  # S3: free before, for the rush (fewer places than rushers)
MORNING = ("site", "subdistrict", "any")  # matching choices' scopes, all "morning"

# As tests/test_limits_race.py: two workers on PostgreSQL (two processes, and each one's pool).
CONFIGS = [
    pytest.param("sqlite", 1, id="sqlite-1worker"),
    pytest.param("sqlite", 2, id="sqlite-2workers"),
    pytest.param("postgres", 2, id="postgres-2workers",
                 marks=pytest.mark.skipif(not PG_URL, reason="TEST_POSTGRES_URL is not set")),
]


@dataclass(frozen=True)
class Waiter:
    """One person put on the list: what orders them, and whether A's morning places suit them."""

    name: str
    first_dose_days_ago: int
    senior: bool
    at_a: bool  # first-dose site A (else Z, in another sub-district, with no windows)
    choice: waitlist.Choice
    matches: bool


def _waiters() -> list[Waiter]:
    """30 people in the order they join (shuffled against the list's order): five interval ends,
    a third of them 70 or more, and seven kinds of choice, three of which A's places do not suit."""
    kinds = [
        (True, waitlist.Choice("site", "any", "morning"), True),
        (True, waitlist.Choice("subdistrict", "weekdays", "morning"), True),
        (True, waitlist.Choice("any", "any", "morning"), True),
        (True, waitlist.Choice("site", "weekends", "any"), False),  # the day is a weekday
        (False, waitlist.Choice("site", "any", "any"), False),  # site Z only
        (True, waitlist.Choice("any", "weekdays", "morning"), True),
        (False, waitlist.Choice("subdistrict", "any", "any"), False),  # Z's sub-district only
    ]
    people = []
    for i in range(WAITING):
        at_a, choice, matches = kinds[i % len(kinds)]
        people.append(Waiter(f"候补{i:02d}", (44, 40, 36, 32, 28)[i % 5], i % 3 == 0, at_a, choice, matches))
    random.Random(7).shuffle(people)  # a shuffle where each rule of the order counts (below)
    return people


def _first_ten(people: list[Waiter], key) -> list[str]:
    """The first 10 in the order `key` (of a person's joining place) gives, among those A's
    morning places suit."""
    order = sorted(range(len(people)), key=key)
    return [people[i].name for i in order if people[i].matches][:2 * CANCELS_PER_SLOT]


def expected_offers(people: list[Waiter]) -> list[str]:
    """The list's order (README): interval end (first dose earliest), then 70 or more, then who
    joined first."""
    return _first_ten(people, lambda i: (-people[i].first_dose_days_ago, not people[i].senior, i))


def test_each_rule_of_the_order_changes_who_the_ten_are():
    """The world below is one where an order that forgot a rule, or took them in another
    sequence, would offer the places to other people: the race test then checks all three."""
    people = _waiters()
    right = set(expected_offers(people))
    wrong = {
        "no 70+": lambda i: (-people[i].first_dose_days_ago, i),
        "no interval end": lambda i: (not people[i].senior, i),
        "last joined first": lambda i: (-people[i].first_dose_days_ago, not people[i].senior, -i),
        "70+ before interval end": lambda i: (not people[i].senior, -people[i].first_dose_days_ago, i),
    }
    for rule, key in wrong.items():
        assert set(_first_ten(people, key)) != right, rule


def _weekday_after(today: dt.date, days: int) -> dt.date:
    day = today + dt.timedelta(days=days)
    while day.weekday() >= 5:
        day += dt.timedelta(days=1)
    return day


def build_world(url: str) -> dict:
    """Seed the world on the real clock (the server's): bookings through the booking service,
    the list through waitlist.join, before the server starts."""
    district = build_district(Settings(database_url=url, secret_key=TEST_SECRET, quiet_hours=None),
                              clock=SystemClock())
    today = district.clock.today()
    day = _weekday_after(today, 2)
    people = _waiters()

    async def person(site, name: str, phone: int, days_ago: int = 30, senior: bool = False):
        born = dt.date(1945, 5, 17) if senior else None  # else make_resident's 1980
        resident, number = await make_resident(site, first_dose=today - dt.timedelta(days=days_ago),
                                               name=name, phone=f"139{phone:08d}", born=born)
        token = await issue_link(resident, now=district.clock.now(), days_valid=district.link_days_valid)
        return resident, (token, number)

    async def build():
        a = await make_site("A01", "天河南街")
        z = await make_site("Z01", "龙洞街")
        s1 = await make_slot(a, day, "09:00", "10:00", capacity=PER_SLOT)
        s2 = await make_slot(a, day, "10:00", "11:00", capacity=PER_SLOT)
        s3 = await make_slot(a, day, "14:00", "15:00", capacity=PUBLIC_PLACES)
        phone = iter(range(1, 1000))
        cancellers, stayers = [], []
        for slot in (s1, s2):
            for n in range(PER_SLOT):
                resident, link = await person(a, f"占位{slot.id}-{n}", next(phone))
                await book_for(district, resident, slot)
                (cancellers if n < CANCELS_PER_SLOT else stayers).append(link)
        for w in people:  # in joining order
            resident, _ = await person(a if w.at_a else z, w.name, next(phone), w.first_dose_days_ago, w.senior)
            standing = await service.stand(district, resident)
            assert standing.companion == w.senior
            await waitlist.join(district, standing, w.choice)
        rushers = [(await person(a, f"抢号{n}", next(phone)))[1] for n in range(RUSHERS)]
        assert await WaitlistOffer.all().count() == 0, "nothing free suits anyone on the list yet"
        return dict(site=a.id, full=[s1.id, s2.id], public=s3.id, cancellers=cancellers, rushers=rushers)

    world = seed(url, build)
    world["expected"] = expected_offers(people)
    return world


async def _cancel_at(person: Person, ready: asyncio.Barrier) -> None:
    """Signed in, the "are you sure?" page open; then, with everyone else, press cancel."""
    try:
        await person.sign_in()
        page = await person._get("/booking/cancel")
        assert page.status_code == 200, page.status_code
    finally:  # one who could not get ready must not leave the others waiting for ever
        await ready.wait()
    await person._post("/booking/cancel", page, {})
    await person.read_booking()


async def _rush_at(person: Person, world: dict, ready: asyncio.Barrier) -> list[int]:
    """Signed in, site A chosen (S3 gives it room), the window page open; then press S1 and S2
    (full, or held for the list), and last the free afternoon. The full windows a press got."""
    try:
        await person.sign_in()
        page = await person._get("/booking/site")
        r = await person._post("/booking/site", page, {"site": world["site"]})
        assert r.status_code == 303, r.status_code
        page = await person._get("/booking/slot")
    finally:
        await ready.wait()
    got = []
    for slot_id in (*world["full"], *world["full"], world["public"]):
        r = await person._post("/booking/slot", page, {"slot": slot_id})
        if r.status_code == 422:  # "just taken, choose another": the page they now look at
            page = r
            continue
        if r.headers.get("location", "").endswith("/booking/check"):
            check = await person._get("/booking/check")
            if check.status_code == 200:
                await person.confirm(check, slot_id)
                got += [slot_id] if slot_id in world["full"] else []
                break
        # Turned away (no room anywhere now) or the hold lost before the check page: see the
        # window page again, as the browser would, if the journey still lets them choose.
        page = await person._get("/booking/slot")
        if page.status_code != 200:
            break
    return got


async def cancel_and_rush(base_url: str, world: dict) -> tuple[list[Person], list[Person], list[int]]:
    cancellers = [Person(base_url, token, number) for token, number in world["cancellers"]]
    rushers = [Person(base_url, token, number) for token, number in world["rushers"]]
    ready = asyncio.Barrier(len(cancellers) + len(rushers))
    try:
        done = await asyncio.gather(*(_cancel_at(p, ready) for p in cancellers),
                                    *(_rush_at(p, world, ready) for p in rushers))
    finally:
        await asyncio.gather(*(p.close() for p in cancellers + rushers))
    return cancellers, rushers, [slot for got in done[len(cancellers):] for slot in got]


def read_after(url: str, world: dict) -> dict:
    district = build_district(Settings(database_url=url, secret_key=TEST_SECRET, quiet_hours=None),
                              clock=SystemClock())

    async def read():
        offers = await WaitlistOffer.all().order_by("id").values("resident__name", "slot_id", "status",
                                                                  "resident_id")
        slots = {s["id"]: s for s in await Slot.all().values("id", "capacity", "booked", "held")}
        report = await check_database(district.rules)
        return {
            "offers": offers,
            "slots": slots,
            "entries": {e["resident__name"]: e["status"]
                        for e in await WaitlistEntry.all().values("resident__name", "status")},
            "offer_sms": sorted(await SmsMessage.filter(kind="offer").values_list("resident_id", flat=True)),
            "on_full": await Booking.filter(slot_id__in=world["full"], status=Booking.ACTIVE).count(),
            "public": await Booking.filter(slot_id=world["public"], status=Booking.ACTIVE).count(),
            "cancelled": await Booking.filter(status=Booking.CANCELLED).count(),
            "errors": report.errors,
        }

    return seed(url, read)


def run_check(url: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "DATABASE_URL": url, "SECRET_KEY": TEST_SECRET}
    return subprocess.run([sys.executable, "run.py", "check"], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=120)


@pytest.mark.parametrize("database,workers", CONFIGS)
def test_ten_cancels_at_once_offer_ten_places_to_the_first_ten_in_order(tmp_path, database, workers):
    if database == "postgres":
        asyncio.run(reset_postgres(PG_URL))  # migrated from nothing by the seeding below
        url = PG_URL
    else:
        url = f"sqlite://{tmp_path}/waitlist-race.sqlite3"
    world = build_world(url)
    server = Server(url, TEST_SECRET, workers=workers, **NO_LIMITS)
    try:
        cancellers, rushers, public_got_freed = asyncio.run(cancel_and_rush(server.base_url, world))
    finally:
        server.stop()

    bad = sorted({s for p in cancellers + rushers for s in p.statuses if s not in GOOD})
    assert bad == [], f"answers other than a page, a redirect or a form error: {bad}"
    assert [p.code for p in cancellers] == [None] * len(cancellers), "every owner's cancel went through"
    after = read_after(url, world)
    assert after["cancelled"] == 2 * CANCELS_PER_SLOT
    # Exactly 10 offers, open, to the first 10 in the list's order whose choice matches.
    offers = after["offers"]
    assert len(offers) == 2 * CANCELS_PER_SLOT, [o["resident__name"] for o in offers]
    assert {o["status"] for o in offers} == {WaitlistOffer.OPEN}
    assert sorted(o["resident__name"] for o in offers) == sorted(world["expected"])
    for slot_id in world["full"]:  # each cancel's place offered on its own window
        assert sum(o["slot_id"] == slot_id for o in offers) == CANCELS_PER_SLOT
    offered = set(world["expected"])
    assert {n: s for n, s in after["entries"].items() if n in offered} == dict.fromkeys(offered, "offered")
    assert set(after["entries"].values()) - {"offered"} == {"waiting"}
    # No place double-held: still full, the freed places held by the offers only.
    for slot_id in world["full"]:
        slot = after["slots"][slot_id]
        assert (slot["booked"], slot["held"]) == (PER_SLOT - CANCELS_PER_SLOT, CANCELS_PER_SLOT)
    # The public got none of the freed places, only the ones free before.
    assert public_got_freed == [] and after["on_full"] == 2 * (PER_SLOT - CANCELS_PER_SLOT)
    assert after["public"] == sum(1 for p in rushers if p.code) == PUBLIC_PLACES
    # Each offer's SMS in the outbox, one each.
    assert after["offer_sms"] == sorted(o["resident_id"] for o in offers)
    assert after["errors"] == []
    if workers > 1:  # `run.py check` says the same (once per database: a second of start-up)
        result = run_check(url)
        assert result.returncode == 0, result.stdout + result.stderr
