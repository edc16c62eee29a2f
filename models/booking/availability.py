"""What is free: sites, days and time windows a person may choose, as of a moment."""
from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

from tortoise.expressions import Q
from tortoise.functions import Min, Sum

from ..clock import as_date
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
    """The site if it is open for booking."""
    return await Site.get_or_none(id=site_id, active=True) if site_id else None


async def slot_at(site_id: int, slot_id: int | None) -> Slot | None:
    """One of the site's windows by id (to book it, the engine still checks the rules)."""
    return await Slot.get_or_none(id=slot_id, site_id=site_id) if slot_id else None


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


async def site_choices(resident: Resident, window: Window, now: dt.datetime) -> list[SiteChoice]:
    """All active sites with their first day that has room; first-dose site, then same sub-district
    (rule 7)."""
    from_day = window.first_bookable(now.date())
    rows = (
        await _open_slots(from_day, now)
        .annotate(first_day=Min("day"))
        .group_by("site_id")
        .values("site_id", "first_day")
    )
    first_free = {row["site_id"]: as_date(row["first_day"]) for row in rows}
    sites = await Site.filter(active=True).order_by("subdistrict", "code")
    first_site = next((s for s in sites if s.id == resident.first_site_id), None)
    home = resident.subdistrict or (first_site.subdistrict if first_site else "")

    def order(site: Site):
        return (site.id != resident.first_site_id, site.subdistrict != home, site.subdistrict, site.code)

    return [
        SiteChoice(site, first_free.get(site.id), site.id == resident.first_site_id)
        for site in sorted(sites, key=order)
    ]


async def days_for_site(site_id: int, window: Window, now: dt.datetime) -> list[DayChoice]:
    """Days from the first allowed day that have windows at this site, with their free places."""
    from_day = window.first_bookable(now.date())
    slots = await Slot.filter(site_id=site_id, day__gte=from_day, closed_reason="").order_by(
        "day", "start")
    free: dict[dt.date, int] = {}
    for slot in slots:
        usable = not has_started(slot.day, slot.start, now)
        free[slot.day] = free.get(slot.day, 0) + (slot.free if usable else 0)
    return [DayChoice(day, n) for day, n in free.items()]


async def windows_for_day(site_id: int, day: dt.date, now: dt.datetime) -> list[Slot]:
    """The time windows of one day at a site, windows that have begun left out."""
    slots = await Slot.filter(site_id=site_id, day=day, closed_reason="").order_by("start")
    return [s for s in slots if not has_started(s.day, s.start, now)]


async def total_free(window: Window, now: dt.datetime) -> int:
    """Free places at any site on any allowed day."""
    rows = (
        await _open_slots(window.first_bookable(now.date()), now)
        .annotate(taken=Sum("booked"), kept=Sum("held"), cap=Sum("capacity"))
        .values("taken", "kept", "cap")
    )
    return sum((r["cap"] or 0) - (r["taken"] or 0) - (r["kept"] or 0) for r in rows)
