"""models/db/fast.py makes model objects from its own rows without Tortoise's per-value
parsing: they must be the very objects Tortoise makes (same values, same types, same zone),
on SQLite and PostgreSQL, or a page would compare a parsed time with a wrong one."""
from __future__ import annotations

import datetime as dt

from models.db import fast
from models.db.tables import Link, Resident, Site
from models.people.links import issue_link, live_link
from tests.conftest import NOW
from tests.factories import make_resident, make_site


def _values(obj) -> dict:
    return {name: (getattr(obj, name), type(getattr(obj, name)))
            for name in obj._meta.fields_db_projection}


async def test_a_link_resident_and_site_load_as_tortoise_loads_them(db):
    site = await make_site("S01")
    resident, _ = await make_resident(site, first_dose=dt.date(2021, 6, 5))
    await Resident.filter(id=resident.id).update(invited_at=NOW)  # a time column with a value
    await issue_link(resident, now=NOW)
    link = await Link.filter(resident_id=resident.id).first()
    await Link.filter(id=link.id).update(locked_until=NOW + dt.timedelta(minutes=30))

    fast_link = await live_link(link.id, NOW)
    assert fast_link is not None
    for mine, tortoise_s in ((fast_link, await Link.get(id=link.id)),
                             (fast_link.resident, await Resident.get(id=resident.id)),
                             (fast_link.resident.first_site, await Site.get(id=site.id))):
        assert _values(mine) == _values(tortoise_s)
        for name, (value, _) in _values(mine).items():
            if isinstance(value, dt.datetime):
                assert value.tzinfo is not None and value.utcoffset() == dt.timedelta(0), name
    assert fast_link.locked_until == NOW + dt.timedelta(minutes=30)
    assert fast_link._saved_in_db and not fast_link._partial


async def test_a_time_with_an_offset_or_none_is_read_as_tortoise_reads_it():
    utc = fast._moment("2021-06-05 10:00:00+00:00")
    assert utc == dt.datetime(2021, 6, 5, 10, tzinfo=dt.timezone.utc)
    shanghai = fast._moment("2021-06-05 18:00:00+08:00")
    assert shanghai == utc and shanghai.utcoffset() == dt.timedelta(0)
    naive = fast._moment("2021-06-05 10:00:00")
    assert naive == utc


def test_a_date_is_read_as_tortoise_reads_it():
    assert fast._day("2021-06-05") == dt.date(2021, 6, 5)
    assert fast._day("2021-06-05 00:00:00") == dt.date(2021, 6, 5)
    assert fast._day(dt.date(2021, 6, 5)) == dt.date(2021, 6, 5)
