"""A site's capacity: its weekly template, applying it to a date range, and per-window edits.

Capacity never drops below the places taken (booked plus held): applying the template keeps
such a window at exactly its taken places and reports it (`slots.apply_plan`), a per-window edit
below them is refused with the number taken. Errors are reason codes; the console words them.
"""
from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field

from tortoise.exceptions import IntegrityError
from tortoise.expressions import F
from tortoise.transactions import in_transaction

from ..booking import waitlist
from ..db.tables import Site, SiteTemplate, Slot
from ..district import District
from .slots import (HHMM, MAX_CAPACITY, MAX_DAYS, OpenSlotsResult, SlotError, apply_plan,
                    check_windows)

WEEKDAYS = tuple(range(7))  # 0 Monday … 6 Sunday
EVERY_DAY, WORKDAYS = "all", "workdays"  # add a window to several weekdays at once
MAX_SHOWN_DAYS = 31  # the slots page shows at most a month


class CapacityError(ValueError):
    """Refused; `code` says why (the console words it), `taken` the places taken when it matters."""

    def __init__(self, code: str, *, field: str = "", taken: int = 0, slot_id: int | None = None):
        super().__init__(code)
        self.code, self.field, self.taken, self.slot_id = code, field, taken, slot_id


def parse_capacity(text: str) -> int:
    """A number of places 0..MAX_CAPACITY typed in a form; CapacityError("capacity") otherwise."""
    text = (text or "").strip()
    if not (text.isascii() and text.isdigit()) or len(text) > 5 or int(text) > MAX_CAPACITY:
        raise CapacityError("capacity", field="capacity")
    return int(text)


def parse_weekdays(text: str) -> list[int]:
    text = (text or "").strip()
    if text == EVERY_DAY:
        return list(WEEKDAYS)
    if text == WORKDAYS:
        return list(range(5))
    if text in {str(d) for d in WEEKDAYS}:
        return [int(text)]
    raise CapacityError("weekday", field="weekday")


def check_window(start: str, end: str) -> tuple[str, str]:
    if not HHMM.match(start or ""):
        raise CapacityError("time_format", field="start")
    if not HHMM.match(end or ""):
        raise CapacityError("time_format", field="end")
    if start >= end:
        raise CapacityError("time_order", field="end")
    return start, end


# ---- the weekly template


async def template(site_id: int) -> list[SiteTemplate]:
    return await SiteTemplate.filter(site_id=site_id).order_by("weekday", "start")


async def add_window(site: Site, weekday_text: str, start: str, end: str,
                     capacity_text: str) -> list[SiteTemplate]:
    """Add the window to each weekday asked for; nothing is added if it overlaps one already there."""
    weekdays = parse_weekdays(weekday_text)
    start, end = check_window(start, end)
    capacity = parse_capacity(capacity_text)
    existing = await template(site.id)
    for day in weekdays:
        try:
            check_windows([(w.start, w.end) for w in existing if w.weekday == day] + [(start, end)])
        except SlotError:
            raise CapacityError("overlap", field="start") from None
    try:
        async with in_transaction() as conn:  # every weekday asked for, or none
            return [await SiteTemplate.create(site=site, weekday=day, start=start, end=end,
                                              capacity=capacity, using_db=conn) for day in weekdays]
    except IntegrityError:  # the same window added meanwhile
        raise CapacityError("overlap", field="start") from None


async def remove_window(site_id: int, window_id: int | None) -> SiteTemplate | None:
    """Remove one window of the template (slots already opened stay as they are)."""
    window = await SiteTemplate.get_or_none(id=window_id, site_id=site_id) if window_id else None
    if window is not None:
        await SiteTemplate.filter(id=window.id).delete()
    return window


def check_range(from_day: dt.date | None, to_day: dt.date | None, today: dt.date,
                *, longest: int = MAX_DAYS) -> tuple[dt.date, dt.date]:
    if from_day is None:
        raise CapacityError("from_day", field="from_day")
    if to_day is None:
        raise CapacityError("to_day", field="to_day")
    if from_day < today:
        raise CapacityError("from_past", field="from_day")
    if to_day < from_day:
        raise CapacityError("range_order", field="to_day")
    if (to_day - from_day).days + 1 > longest:
        raise CapacityError("range_long", field="to_day")
    return from_day, to_day


async def apply_template(site: Site, from_day: dt.date | None, to_day: dt.date | None, *,
                         today: dt.date, district: District | None = None) -> OpenSlotsResult:
    """Open each template window on every day of the range with the template's places: missing
    slots are created, existing ones set (a window whose taken places are more keeps exactly
    those: `result.held`). With the `district`, the new places go to the waiting list first."""
    from_day, to_day = check_range(from_day, to_day, today)
    windows = await template(site.id)
    if not windows:
        raise CapacityError("no_template")
    by_weekday: dict[int, list[SiteTemplate]] = {}
    for w in windows:
        by_weekday.setdefault(w.weekday, []).append(w)
    plan = []
    day = from_day
    while day <= to_day:
        plan.extend((day, w.start, w.end, w.capacity) for w in by_weekday.get(day.weekday(), []))
        day += dt.timedelta(days=1)
    return await apply_plan(site.id, from_day, to_day, plan, district=district)


# ---- the slots of a date range, and per-window edits


@dataclass(frozen=True)
class WindowRow:
    slot: Slot
    planned: int | None  # the template's places for this weekday and window, if any

    @property
    def taken(self) -> int:
        return self.slot.booked + self.slot.held

    @property
    def kept(self) -> bool:
        """More places than the template asks for, because they are taken."""
        return self.planned is not None and self.slot.capacity > self.planned and \
            self.slot.capacity == self.taken


@dataclass
class DayRows:
    day: dt.date
    windows: list[WindowRow] = field(default_factory=list)


async def windows_between(site: Site, from_day: dt.date, to_day: dt.date) -> list[DayRows]:
    """The site's windows per day, with what is booked, held and free."""
    planned = {(w.weekday, w.start): w.capacity for w in await template(site.id)}
    days: dict[dt.date, DayRows] = {}
    for slot in await Slot.filter(site_id=site.id, day__gte=from_day, day__lte=to_day).order_by(
            "day", "start"):
        row = days.setdefault(slot.day, DayRows(slot.day))
        row.windows.append(WindowRow(slot, planned.get((slot.day.weekday(), slot.start))))
    return list(days.values())


async def window(site_id: int, slot_id: int | None) -> Slot | None:
    return await Slot.get_or_none(id=slot_id, site_id=site_id) if slot_id else None


async def set_window_capacity(slot: Slot, capacity_text: str, district: District | None = None) -> Slot:
    """Set one window's places; refused ("taken", with the number) below booked + held. Places
    added go to the waiting list (with the `district`) in the same commit, before the public
    journey can see them."""
    capacity = parse_capacity(capacity_text)
    async with in_transaction() as conn:
        # One conditional UPDATE: a booking made meanwhile is never squeezed out.
        if await Slot.filter(id=slot.id, booked__lte=capacity - F("held")).using_db(conn).update(capacity=capacity):
            if district is not None:
                await waitlist.offer_free_in(district, conn, [slot.id])
            return await Slot.get(id=slot.id).using_db(conn)
    fresh = await Slot.get(id=slot.id)
    raise CapacityError("taken", field="capacity", taken=fresh.booked + fresh.held, slot_id=slot.id)


async def reopen_window(slot: Slot, district: District | None = None) -> bool:
    """Let a closed window take bookings again (a closure called off); whether it was closed.
    Its free places go to the waiting list first (with the `district`), in the same commit."""
    async with in_transaction() as conn:
        reopened = bool(await Slot.filter(id=slot.id).exclude(closed_reason="").using_db(conn)
                        .update(closed_reason=""))
        if reopened and district is not None:
            await waitlist.offer_free_in(district, conn, [slot.id])
    return reopened
