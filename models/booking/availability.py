"""What is free: sites, days and time windows a person may choose, as of a moment."""
from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from functools import lru_cache

from tortoise.expressions import Q

from ..clock import as_date
from ..db import fast
from ..db.tables import Resident, Site, Slot
from ..rules.interval import Window, has_started


@dataclass(frozen=True)
class SiteChoice:
    site: Site
    first_free_day: dt.date | None
    is_first_site: bool


@dataclass(frozen=True)
class DayChoice:
    day: dt.date
    free: int


async def open_site(site_id: int | None) -> Site | None:
    """The site if it is open for booking (asked on every time page: models/db/fast.py)."""
    found = await fast.rows(f"SELECT {fast.columns(Site, 's')} FROM {fast.table(Site)} s "
                            "WHERE s.id = ? AND s.active = ?", [site_id, True]) if site_id else None
    return fast.load(Site, found[0], "s") if found else None


async def slot_at(site_id: int, slot_id: int | None) -> Slot | None:
    """One of the site's windows by id (to book it, the engine still checks the rules)."""
    found = await fast.rows(f"SELECT {fast.columns(Slot, 'sl')} FROM {fast.table(Slot)} sl "
                            "WHERE sl.id = ? AND sl.site_id = ?", [slot_id, site_id]) if slot_id else None
    return fast.load(Slot, found[0], "sl") if found else None


async def slot_by_id(slot_id: int | None) -> Slot | None:
    return await Slot.get_or_none(id=slot_id) if slot_id else None


async def slot_with_site(slot_id: int) -> Slot:
    return await Slot.get(id=slot_id).select_related("site")


def not_started(now: dt.datetime) -> Q:
    """rules.interval.has_started as a filter: days after today, and today's windows not begun."""
    return Q(day__gt=now.date()) | Q(day=now.date(), start__gt=now.strftime("%H:%M"))


def _open_slots(from_day: dt.date, now: dt.datetime):
    """Open slots of open sites on or after from_day, with a free place, not already begun."""
    return Slot.filter(Slot.has_room(), not_started(now), day__gte=from_day, site__active=True,
                       closed_reason="")


# _open_slots in SQL written once (models/db/fast.py), for the queries of every resident page:
# a slot `sl` with a free place, on or after a day, open, not begun (not_started); its site `s`
# active. Parameters: _open_params().
OPEN_SLOT = ("sl.\"day\" >= ? AND sl.held < sl.capacity - sl.booked AND sl.closed_reason = '' "
             "AND (sl.\"day\" > ? OR (sl.\"day\" = ? AND sl.\"start\" > ?))")


def _open_params(conn, from_day: dt.date, now: dt.datetime) -> list:
    today = fast.day(conn, now.date())
    return [fast.day(conn, from_day), today, today, now.strftime("%H:%M")]


@lru_cache(maxsize=1)
def _sites_sql() -> str:
    # Each active site with its first day that has a free place: asked per site in day order
    # along the slot index (site_id, day, start), so it stops at the first such slot instead of
    # grouping every open slot of the district (10 ms for 100 sites of 14 days).
    return (f"SELECT {fast.columns(Site, 's')}, (SELECT sl.\"day\" FROM {fast.table(Slot)} sl "
            f"WHERE sl.site_id = s.id AND {OPEN_SLOT} ORDER BY sl.\"day\" LIMIT 1) AS first_day "
            f"FROM {fast.table(Site)} s WHERE s.active = ? ORDER BY s.subdistrict, s.code")


@lru_cache(maxsize=2)
def _room_sql(one_site: bool) -> str:
    return (f"SELECT 1 AS hit FROM {fast.table(Slot)} sl JOIN {fast.table(Site)} s ON s.id = sl.site_id "
            f"WHERE {'sl.site_id = ? AND ' if one_site else ''}s.active = ? AND {OPEN_SLOT} LIMIT 1")


async def site_choices(resident: Resident, window: Window, now: dt.datetime) -> list[SiteChoice]:
    """All active sites with their first day that has room; first-dose site, then same sub-district
    (rule 7)."""
    conn = fast.db()
    rows = await fast.rows(_sites_sql(), [*_open_params(conn, window.first_bookable(now.date()), now),
                                          True], conn)
    sites = [(fast.load(Site, row, "s"), row["first_day"]) for row in rows]
    first_site = next((s for s, _ in sites if s.id == resident.first_site_id), None)
    home = resident.subdistrict or (first_site.subdistrict if first_site else "")

    def order(pair: tuple[Site, object]):
        site = pair[0]
        return (site.id != resident.first_site_id, site.subdistrict != home, site.subdistrict, site.code)

    return [
        SiteChoice(site, as_date(first) if first else None, site.id == resident.first_site_id)
        for site, first in sorted(sites, key=order)
    ]


async def has_room_at(site_id: int, window: Window, now: dt.datetime) -> bool:
    """Whether the site is open and has a free place on an allowed day (one of site_choices'
    sites with a first free day), asked alone."""
    conn = fast.db()
    return bool(await fast.rows(_room_sql(True), [
        site_id, True, *_open_params(conn, window.first_bookable(now.date()), now)], conn))


async def days_for_site(site_id: int, window: Window, now: dt.datetime) -> list[DayChoice]:
    """Days from the first allowed day that have windows at this site, with their free places."""
    conn = fast.db()
    rows = await fast.rows(
        f'SELECT "day", "start", capacity, booked, held FROM {fast.table(Slot)} '
        "WHERE site_id = ? AND \"day\" >= ? AND closed_reason = '' ORDER BY \"day\", \"start\"",
        [site_id, fast.day(conn, window.first_bookable(now.date()))], conn)
    free: dict[dt.date, int] = {}
    for row in rows:  # plain rows, not a Slot per window: two weeks of a site are 100 or more
        day = as_date(row["day"])
        usable = not has_started(day, row["start"], now)
        places = max(row["capacity"] - row["booked"] - row["held"], 0)  # Slot.free
        free[day] = free.get(day, 0) + (places if usable else 0)
    return [DayChoice(day, n) for day, n in free.items()]


async def windows_for_day(site_id: int, day: dt.date, now: dt.datetime) -> list[Slot]:
    """The time windows of one day at a site, windows that have begun left out."""
    conn = fast.db()
    rows = await fast.rows(
        f"SELECT {fast.columns(Slot, 'sl')} FROM {fast.table(Slot)} sl WHERE sl.site_id = ? "
        "AND sl.\"day\" = ? AND sl.closed_reason = '' ORDER BY sl.\"start\"",
        [site_id, fast.day(conn, day)], conn)
    slots = [fast.load(Slot, row, "sl") for row in rows]
    return [s for s in slots if not has_started(s.day, s.start, now)]


async def total_free(window: Window, now: dt.datetime) -> int:
    """Free places at any site on any allowed day."""
    rows = await _open_slots(window.first_bookable(now.date()), now).values_list(
        "capacity", "booked", "held")
    return sum(cap - taken - kept for cap, taken, kept in rows)


async def any_free(window: Window, now: dt.datetime) -> bool:
    """Whether any site has a free place on an allowed day: the first open slot found, however
    many there are (asked on every resident page; total_free reads every open slot)."""
    conn = fast.db()
    return bool(await fast.rows(_room_sql(False), [
        True, *_open_params(conn, window.first_bookable(now.date()), now)], conn))
