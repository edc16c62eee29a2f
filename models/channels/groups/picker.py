"""Where to book or move a list to: the site (the list's own sub-district's first), the day, the time
windows ticked, with free places and how many of the people fit. `digest` sums up what the page
showed, so an action is taken only for the choice the clerk looked at."""
from __future__ import annotations

import datetime as dt
import hashlib
from dataclasses import dataclass

from ...booking import availability
from ...booking.availability import DayChoice
from ...db.tables import GroupList, Site, Slot
from ...district import District
from ...rules.interval import has_started
from .errors import ListError
from .standing import Row

MAX_WINDOWS = 20  # time windows one booking or move may fill


@dataclass(frozen=True)
class Fit:
    """How many of the people an action is for fit the chosen windows."""

    people: int  # eligible (booking) or booked through the list (moving)
    allowed: int  # of them, those whose interval rule allows the chosen day
    free: int  # free places in the chosen windows

    @property
    def fits(self) -> int:
        return min(self.allowed, self.free)


@dataclass(frozen=True)
class Picker:
    """Site, day and time windows to book or move to, with free places and the fit. `digest`
    sums up what the page shows (the list, site, day, windows ticked, the people it is for and
    how many fit): the action's form carries it, and the action is taken only if the same choice
    still gives the same digest (see book_shown())."""

    sites: list[Site]
    site: Site | None
    days: list[DayChoice]
    day: dt.date | None
    windows: list[Slot]  # the day's windows not yet begun, at the site
    chosen: list[Slot]  # only the windows ticked (none until the clerk ticks one)
    fit: Fit | None
    digest: str = ""


async def _sites(subdistrict: str) -> list[Site]:
    sites = await Site.filter(active=True).order_by("subdistrict", "code")
    return sorted(sites, key=lambda s: s.subdistrict != subdistrict)  # the list's own first


async def _days(site_id: int, now: dt.datetime) -> list[DayChoice]:
    """The site's days from today that have open windows, with their free places."""
    slots = await Slot.filter(site_id=site_id, day__gte=now.date(), closed_reason="").order_by("day", "start")
    free: dict[dt.date, int] = {}
    for slot in slots:
        if not has_started(slot.day, slot.start, now):
            free[slot.day] = free.get(slot.day, 0) + slot.free
    return [DayChoice(day, n) for day, n in free.items()]


def _allowed(row: Row, chosen: list[Slot], now: dt.datetime) -> bool:
    return row.standing is not None and any(row.standing.window.allows(s.day, s.start, now) for s in chosen)


async def picker_for(district: District, group: GroupList, people: list[Row], site_id: int | None,
                  day: dt.date | None, slot_ids: list[int]) -> Picker:
    now = district.clock.now()
    sites = await _sites(group.subdistrict)
    site = next((s for s in sites if s.id == site_id), None) or (sites[0] if sites else None)
    days = await _days(site.id, now) if site else []
    day = availability.day_to_show(days, day, or_first_day=True)
    windows = await availability.windows_for_day(site.id, day, now) if site and day else []
    # Only what the clerk ticked, and only windows with room (a full one cannot be ticked).
    chosen = [w for w in windows if w.id in slot_ids and w.free]
    fit = None
    if chosen:
        fit = Fit(len(people), sum(_allowed(r, chosen, now) for r in people), sum(w.free for w in chosen))
    shown = (group.id, site.id if site else 0, day.isoformat() if day else "",
             sorted(w.id for w in chosen), sorted(r.member.id for r in people), fit.fits if fit else 0)
    digest = hashlib.sha256(repr(shown).encode()).hexdigest()[:20]
    return Picker(sites, site, days, day, windows, chosen, fit, digest)


async def chosen_slots(slot_ids: list[int], now: dt.datetime) -> list[Slot]:
    """The chosen windows that are open and not yet begun, earliest first; ListError if none."""
    ids = list(dict.fromkeys(slot_ids))[:MAX_WINDOWS]
    slots = await (Slot.filter(id__in=ids, closed_reason="", site__active=True)
                   .order_by("day", "start", "id").select_related("site")) if ids else []
    slots = [s for s in slots if not has_started(s.day, s.start, now)]
    if not slots:
        raise ListError("no_windows")
    return slots
