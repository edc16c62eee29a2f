"""Small builders of sites, residents and slots for tests."""
from __future__ import annotations

import datetime as dt
import itertools

from models.clock import SystemClock
from models.booking import service
from models.db.tables import Site, Slot
from models.people import pii
from models.people.links import issue_link
from models.people.residents import upsert_resident
from tests.conftest import VAULT
from tests.realserver import seed

_seq = itertools.count(1)


async def make_site(code: str = "S01", subdistrict: str = "五山街", **kw) -> Site:
    return await Site.create(
        code=code, name=kw.pop("name", f"{subdistrict}社区卫生服务中心"), subdistrict=subdistrict,
        address=kw.pop("address", f"天河区{subdistrict}1号"), phone=kw.pop("phone", "020-12345678"), **kw,
    )


def id_number(born: dt.date = dt.date(1980, 5, 17), region: str = "440106") -> str:
    return pii.build_id_number(region, born, next(_seq))


async def make_resident(site: Site, *, first_dose: dt.date, name: str = "张三明", born=None,
                        phone: str = "13812345678", number: str | None = None, **kw):
    number = number or id_number(born or dt.date(1980, 5, 17))
    resident, _ = await upsert_resident(
        VAULT, name=name, id_number=number, phone=phone, first_dose_date=first_dose, site=site, **kw
    )
    return resident, number


async def make_slot(site: Site, day: dt.date, start: str = "09:00", end: str = "10:00",
                    capacity: int = 10, booked: int = 0) -> Slot:
    return await Slot.create(site=site, day=day, start=start, end=end, capacity=capacity, booked=booked)


async def book_for(district, resident, slot: Slot, now: dt.datetime | None = None):
    """Book the window for the resident as any channel would (the booking service); the booking."""
    standing = await service.stand(district, resident, now)
    placed = await service.confirm(district, standing, slot.id, request_key=None, channel="sms",
                                   chosen=slot.id)
    return placed.booking


async def make_journey_sites(today: dt.date) -> Site:
    """The browser tests' world: the first-dose site (TH01) with four days of windows, one of
    them full; a site with no slots (TH02); a far site (TH03). Returns TH01."""
    home = await make_site("TH01", "五山街", name="五山街社区卫生服务中心", address="天河区五山路71号")
    await make_site("TH02", "五山街", name="华南理工大学医院接种点", address="天河区五山路381号")
    far = await make_site("TH03", "龙洞街", name="龙洞街社区卫生服务中心", address="天河区龙洞北路2号")
    for offset in range(1, 5):
        day = today + dt.timedelta(days=offset)
        await make_slot(home, day, "08:30", "09:30", capacity=20)
        await make_slot(home, day, "09:30", "10:30", capacity=1, booked=1)
        await make_slot(home, day, "14:00", "15:00", capacity=20)
        await make_slot(far, day, "09:00", "10:00", capacity=20)
    return home


def journey_world(url: str, people: dict[str, dict]) -> tuple[dt.date, dict[str, tuple[str, str]]]:
    """Seed the browser tests' journey world at `url`, as of the real clock's today: the journey
    sites and, per key of `people`, a resident (张三明, born 1948, first dose 30 days ago, unless
    the key's make_resident arguments say otherwise) with a personal link.
    Returns (today, {key: (ID number, link token)})."""
    clock = SystemClock()
    today = clock.today()

    async def build():
        home = await make_journey_sites(today)
        links = {}
        for key, kw in people.items():
            kw = {"first_dose": today - dt.timedelta(days=30), "name": "张三明",
                  "born": dt.date(1948, 3, 9), **kw}
            resident, number = await make_resident(home, **kw)
            links[key] = (number, await issue_link(resident, now=clock.now()))
        return links

    return today, seed(url, build)
