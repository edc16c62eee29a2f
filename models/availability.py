"""What is free: sites, days and time windows a resident may choose, as of a moment."""
from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

from tortoise.expressions import F, Q
from tortoise.functions import Min, Sum

from .rules import Window
from .tables import Resident, Site, Slot


@dataclass(frozen=True)
class SiteChoice:
    site: Site
    first_free_day: dt.date | None
    is_first_site: bool


@dataclass(frozen=True)
class DayChoice:
    day: dt.date
    free: int


def _open_slots(from_day: dt.date, now: dt.datetime):
    """Slots on or after from_day with a free place and not already begun."""
    query = Slot.filter(day__gte=from_day, held__lt=F("capacity") - F("booked"), site__active=True)
    if from_day <= now.date():
        # Today's windows that have started are gone; days after today are all open.
        query = query.filter(Q(day__gt=now.date()) | Q(start__gt=now.strftime("%H:%M")))
    return query


async def site_choices(
    resident: Resident, window: Window, now: dt.datetime
) -> list[SiteChoice]:
    """All active sites with their first day that has room; first-dose site, then same sub-district."""
    from_day = window.first_bookable(now.date())
    rows = (
        await _open_slots(from_day, now)
        .annotate(first_day=Min("day"))
        .group_by("site_id")
        .values("site_id", "first_day")
    )
    first_free = {row["site_id"]: _as_date(row["first_day"]) for row in rows}
    sites = await Site.filter(active=True).order_by("subdistrict", "code")
    first_site = next((s for s in sites if s.id == resident.first_site_id), None)
    home = resident.subdistrict or (first_site.subdistrict if first_site else "")

    def order(site: Site):
        return (site.id != resident.first_site_id, site.subdistrict != home, site.subdistrict, site.code)

    return [
        SiteChoice(site, first_free.get(site.id), site.id == resident.first_site_id)
        for site in sorted(sites, key=order)
    ]


def _as_date(value) -> dt.date:
    return value if isinstance(value, dt.date) else dt.date.fromisoformat(str(value)[:10])


async def days_for_site(site_id: int, window: Window, now: dt.datetime) -> list[DayChoice]:
    """Days from the first allowed day that have windows at this site, with their free places."""
    from_day = window.first_bookable(now.date())
    slots = await Slot.filter(site_id=site_id, day__gte=from_day).order_by("day", "start")
    free: dict[dt.date, int] = {}
    for slot in slots:
        usable = not (slot.day == now.date() and slot.start <= now.strftime("%H:%M"))
        free[slot.day] = free.get(slot.day, 0) + (slot.free if usable else 0)
    return [DayChoice(day, n) for day, n in free.items()]


async def windows_for_day(site_id: int, day: dt.date, now: dt.datetime) -> list[Slot]:
    """The time windows of one day at a site, past windows of today left out."""
    slots = await Slot.filter(site_id=site_id, day=day).order_by("start")
    if day == now.date():
        slots = [s for s in slots if s.start > now.strftime("%H:%M")]
    return slots


async def total_free(window: Window, now: dt.datetime) -> int:
    """Free places at any site on any allowed day."""
    rows = (
        await _open_slots(window.first_bookable(now.date()), now)
        .annotate(taken=Sum("booked"), kept=Sum("held"), cap=Sum("capacity"))
        .values("taken", "kept", "cap")
    )
    return sum((r["cap"] or 0) - (r["taken"] or 0) - (r["kept"] or 0) for r in rows)


def slot_is_allowed(slot: Slot, window: Window, now: dt.datetime) -> bool:
    if not window.allows(slot.day, now.date()):
        return False
    return not (slot.day == now.date() and slot.start <= now.strftime("%H:%M"))
