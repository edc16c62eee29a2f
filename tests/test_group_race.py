"""A group of 60 racing 200 residents for 100 places, against the real server (`run.py serve
--workers 4`), on SQLite and on PostgreSQL when TEST_POSTGRES_URL is set: never overbooked, and
the group holds exactly the bookings its result said it got (tests/test_concurrency.py's helpers).

The crowd waits on the window page until the group's booking is under way (a condition read from
the database, not a delay), so that the two really race for the places left."""
from __future__ import annotations

import asyncio
import csv
import datetime as dt
import io
import re

import httpx
import pytest

from tortoise.backends.base.executor import EXECUTOR_CACHE

from models.clock import SystemClock
from models.db.setup import close_db, init_db
from models.db.tables import Booking, GroupMember
from models.channels import groups
from models.people.links import issue_link
from tests.conftest import TEST_SECRET, VAULT
from tests.factories import make_resident, make_site, make_slot
from tests.realserver import Server, seed
from tests.rush import CSRF, GOOD, Person
from tests.staff_helpers import PASSWORD, make_staff
from tests.test_concurrency import NO_LIMITS, counts, database, run_check  # noqa: F401 (a fixture)

pytestmark = pytest.mark.slow
GROUP, CROWD, PLACES = 60, 200, 100
KEY = re.compile(r'name="key" value="([^"]+)"')
SHOWN = re.compile(r'name="shown" value="([^"]+)"')
DAY = re.compile(r'<option value="(\d{4}-\d\d-\d\d)" selected')
HEAD_START = 20  # group bookings made before the crowd goes: the rest is a real race
SUMMARY = re.compile(r"(\d+)人中已为(\d+)人预约")


class Resident(Person):
    """A resident of the crowd, on the window page when the race starts (as the rush tests' crowd
    is a page earlier). With every place taken or held by then, the site or window page sends
    them to their booking page, which says so."""

    slot_page: httpx.Response | None = None

    async def ready(self, site_id: int) -> None:
        await self.sign_in()
        page = await self._get("/booking/site")
        await self._post("/booking/site", page, {"site": site_id})
        page = await self._get("/booking/slot")
        self.slot_page = page if page.status_code == 200 else None

    async def take(self, slot_id: int) -> None:
        if self.slot_page is None:
            return
        r = await self._post("/booking/slot", self.slot_page, {"slot": slot_id})
        if r.status_code != 303:
            return  # just taken: "choose another"
        check = await self._get("/booking/check")
        if check.status_code == 200:
            await self.confirm(check, slot_id)


def build(url: str) -> dict:
    clock = SystemClock()
    today = clock.today()

    async def run():
        site = await make_site("R01", "天河南街")
        slot = await make_slot(site, today + dt.timedelta(days=1), "09:00", "10:00", capacity=PLACES)
        first = today - dt.timedelta(days=30)
        crowd, rows = [], []
        for i in range(CROWD + GROUP):
            resident, number = await make_resident(site, first_dose=first, name=f"市民{i}",
                                                   phone=f"139{i:08d}")
            if i < CROWD:
                crowd.append((await issue_link(resident, now=clock.now()), number))
            else:
                rows.append(f"市民{i},{number},")
        user = await make_staff("subdistrict", "tiannan", subdistrict="天河南街")
        group = await groups.create_list(VAULT, user, "天河南街单位", "\n".join(rows).encode())
        return dict(slot=slot.id, site=site.id, people=crowd, group=group.id)

    return seed(url, run)


async def race(url: str, base_url: str, world: dict) -> tuple[list[Resident], httpx.Response, str]:
    """The crowd waits on the window page until the group has HEAD_START bookings (read from
    the database), then all 200 go for the remaining places while the group books on."""
    crowd = [Resident(base_url, token, number) for token, number in world["people"]]
    office = httpx.AsyncClient(base_url=base_url, timeout=300,
                               limits=httpx.Limits(max_keepalive_connections=0))

    async def open_list() -> httpx.Response:
        page = await office.get("/staff")
        signed = await office.post("/staff/login", data={
            "csrftoken": CSRF.search(page.text).group(1), "username": "tiannan", "password": PASSWORD})
        assert signed.status_code == 303, signed.text[:300]
        # The window ticked and looked at ("查看能约上几人"), as the clerk does before booking.
        page = await office.get(f"/group/{world['group']}?site={world['site']}&w={world['slot']}")
        assert page.status_code == 200
        return page

    EXECUTOR_CACHE.clear()
    await init_db(url, migrate_schema=False)
    try:
        page, *_ = await asyncio.gather(open_list(), *(p.ready(world["site"]) for p in crowd))
        booking = asyncio.create_task(office.post("/group/book", data={
            "csrftoken": CSRF.search(page.text).group(1), "g": world["group"],
            "key": KEY.search(page.text).group(1), "w": world["slot"], "site": world["site"],
            "day": DAY.search(page.text).group(1), "shown": SHOWN.search(page.text).group(1), "do": "book"}))
        while not booking.done() and await Booking.filter(channel="group").count() < HEAD_START:
            await asyncio.sleep(0.01)
        await asyncio.gather(*(p.take(world["slot"]) for p in crowd))
        booked = await booking
        result = await office.get(f"/group/{world['group']}/result")
        download = await office.get(f"/group/{world['group']}/result.csv")
    finally:
        await asyncio.gather(office.aclose(), *(p.close() for p in crowd))
        await close_db()
    return crowd, booked, result.text + "\n" + download.text


def test_a_group_of_60_races_200_residents_for_100_places(database):
    world = build(database)
    server = Server(database, TEST_SECRET, workers=4, **NO_LIMITS)
    try:
        crowd, booked, told = asyncio.run(race(database, server.base_url, world))
    finally:
        server.stop()
    assert booked.status_code == 303 and booked.headers["location"].endswith("/result")
    assert sorted({s for p in crowd for s in p.statuses if s not in GOOD}) == []
    page, _, csv_text = told.partition("\n\ufeff")
    total, said = map(int, SUMMARY.search(page).groups())
    rows = list(csv.DictReader(io.StringIO(csv_text)))
    told_codes = {r["预约码"].replace("-", "") for r in rows if r["结果"] == "已预约"}
    assert total == GROUP and len(told_codes) == said
    assert {r["结果"] for r in rows} <= {"已预约", "所选时段已约满", "已约满"}  # booked, full, no room

    async def group_bookings():
        ids = await GroupMember.filter(group_id=world["group"]).values_list("resident_id", flat=True)
        return set(await Booking.filter(resident_id__in=ids, status=Booking.ACTIVE)
                   .values_list("code", flat=True))

    assert seed(database, group_bookings) == told_codes, "the group holds exactly what it was told"
    crowd_codes = {p.code for p in crowd if p.code}
    print(f"group: {said} of {GROUP} booked; crowd: {len(crowd_codes)} of {CROWD}")
    assert len(crowd_codes) + said == PLACES, (len(crowd_codes), said)
    assert counts(database, world["slot"]) == {"capacity": PLACES, "booked": PLACES, "held": 0,
                                               "active": PLACES}
    result = run_check(database)
    assert result.returncode == 0, result.stdout + result.stderr
