"""What is free: sites, days and time windows a person may choose, as of a moment."""
from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

from ..clock import as_date
from ..db import places, reads
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
    """The site if it is open for booking (asked on every time page: models/db/reads.py)."""
    return await reads.open_site(site_id) if site_id else None


async def slot_at(site_id: int, slot_id: int | None) -> Slot | None:
    """One of the site's windows by id (to book it, the engine still checks the rules)."""
    return await reads.slot_at(site_id, slot_id) if slot_id else None


async def slot_by_id(slot_id: int | None) -> Slot | None:
    return await Slot.get_or_none(id=slot_id) if slot_id else None


async def slot_with_site(slot_id: int) -> Slot:
    return await Slot.get(id=slot_id).select_related("site")


def _open_slots(from_day: dt.date, now: dt.datetime):
    """Open slots of open sites on or after from_day, with a free place, not already begun (the
    Tortoise form of models/db/reads.py's OPEN_SLOT; the rules: models/db/places.py)."""
    return Slot.filter(places.has_room_filter(), places.not_started_filter(now), day__gte=from_day,
                       site__active=True, closed_reason="")


async def site_choices(resident: Resident, window: Window, now: dt.datetime) -> list[SiteChoice]:
    """All active sites with their first day that has room; first-dose site, then same sub-district
    (rule 7)."""
    sites = await reads.sites_with_first_free_day(window.first_bookable(now.date()), now)
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
    return await reads.any_open_slot(window.first_bookable(now.date()), now, site_id)


async def days_for_site(site_id: int, window: Window, now: dt.datetime) -> list[DayChoice]:
    """Days from the first allowed day that have windows at this site, with their free places."""
    rows = await reads.site_slot_rows(site_id, window.first_bookable(now.date()))
    free: dict[dt.date, int] = {}
    for row in rows:  # plain rows, not a Slot per window: two weeks of a site are 100 or more
        day = as_date(row["day"])
        usable = not has_started(day, row["start"], now)
        left = places.free(row["capacity"], row["booked"], row["held"])
        free[day] = free.get(day, 0) + (left if usable else 0)
    return [DayChoice(day, n) for day, n in free.items()]


def day_to_show(days: list[DayChoice], wanted: dt.date | None, *,
                or_first_day: bool = False) -> dt.date | None:
    """The day a day picker opens on (the resident's, the call centre's, a group list's): the day
    asked for if it is among `days`, else the first with a free place; when none has one, no
    day, or with or_first_day the first of them (a group list's clerk sees full days' windows)."""
    if any(d.day == wanted for d in days):
        return wanted
    return next((d.day for d in days if d.free), days[0].day if days and or_first_day else None)


async def windows_for_day(site_id: int, day: dt.date, now: dt.datetime) -> list[Slot]:
    """The time windows of one day at a site, windows that have begun left out."""
    slots = await reads.day_windows(site_id, day)
    return [s for s in slots if not has_started(s.day, s.start, now)]


async def total_free(window: Window, now: dt.datetime) -> int:
    """Free places at any site on any allowed day."""
    rows = await _open_slots(window.first_bookable(now.date()), now).values_list(
        "capacity", "booked", "held")
    return sum(cap - taken - kept for cap, taken, kept in rows)


async def any_free(window: Window, now: dt.datetime) -> bool:
    """Whether any site has a free place on an allowed day: the first open slot found, however
    many there are (asked on every resident page; total_free reads every open slot)."""
    return await reads.any_open_slot(window.first_bookable(now.date()), now)
