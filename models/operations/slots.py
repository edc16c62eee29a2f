"""Opening slots: create the missing ones and set capacities, never below the places already booked."""
from __future__ import annotations

import datetime as dt
import re
from dataclasses import dataclass, field

from tortoise.expressions import F
from tortoise.transactions import in_transaction

from ..booking import waitlist
from ..db.tables import Site, Slot
from ..district import District

HHMM = re.compile(r"^([01]\d|2[0-3]):[0-5]\d$")
MAX_DAYS = 366  # a longer range is almost certainly a typo in a date
MAX_CAPACITY = 10_000


class SlotError(ValueError):
    """The request cannot be carried out; nothing was written."""


@dataclass(frozen=True)
class Held:
    """A slot asked to hold fewer places than are booked: it keeps exactly the booked number."""

    day: dt.date
    start: str
    requested: int
    booked: int


@dataclass
class OpenSlotsResult:
    created: int = 0
    raised: int = 0
    lowered: int = 0
    unchanged: int = 0
    held: list[Held] = field(default_factory=list)
    # (day, requested window, existing window): they overlap, so nothing was done for that window.
    conflicts: list[tuple[dt.date, str, str]] = field(default_factory=list)


def parse_times(text: str) -> list[tuple[str, str]]:
    """"08:30-09:30,14:00-15:00" -> [("08:30", "09:30"), ("14:00", "15:00")]; SlotError when malformed."""
    windows = []
    for part in (text or "").split(","):
        start, sep, end = part.strip().partition("-")
        start, end = start.strip(), end.strip()
        if not sep or not HHMM.match(start) or not HHMM.match(end):
            raise SlotError(f"time window {part.strip()!r} is not HH:MM-HH:MM (24-hour clock)")
        windows.append((start, end))
    return check_windows(windows)


def check_windows(windows: list[tuple[str, str]]) -> list[tuple[str, str]]:
    """Return the windows sorted; SlotError when one is empty, ends before it starts, or two overlap."""
    if not windows:
        raise SlotError("no time windows given")
    for start, end in windows:
        if not (HHMM.match(start) and HHMM.match(end)):
            raise SlotError(f"time window {start}-{end} is not HH:MM-HH:MM (24-hour clock)")
        if start >= end:
            raise SlotError(f"time window {start}-{end} ends before it starts")
    windows = sorted(windows)
    for (s1, e1), (s2, e2) in zip(windows, windows[1:]):
        if s2 < e1:
            raise SlotError(f"time windows {s1}-{e1} and {s2}-{e2} overlap")
    return windows


def days_between(from_day: dt.date, to_day: dt.date) -> list[dt.date]:
    if to_day < from_day:
        raise SlotError(f"--to {to_day} is before --from {from_day}")
    count = (to_day - from_day).days + 1
    if count > MAX_DAYS:
        raise SlotError(f"{count} days is more than {MAX_DAYS}: check the dates")
    return [from_day + dt.timedelta(days=n) for n in range(count)]


async def open_slots(
    site_code: str, from_day: dt.date, to_day: dt.date, times: list[tuple[str, str]],
    capacity: int, *, district: District | None = None,
) -> OpenSlotsResult:
    """Give the site each window on each day with `capacity` places (or the places booked, if more)."""
    site = await Site.get_or_none(code=site_code)
    if site is None:
        raise SlotError(f"unknown site code {site_code}")
    if not 0 <= capacity <= MAX_CAPACITY:
        raise SlotError(f"capacity must be between 0 and {MAX_CAPACITY}")
    windows = check_windows(list(times))
    days = days_between(from_day, to_day)
    plan = [(day, start, end, capacity) for day in days for start, end in windows]
    return await apply_plan(site.id, from_day, to_day, plan, district=district)


async def apply_plan(site_id: int, from_day: dt.date, to_day: dt.date,
                     plan: list[tuple[dt.date, str, str, int]], *,
                     district: District | None = None) -> OpenSlotsResult:
    """Give the site each (day, start, end, capacity) of the plan (days within from_day..to_day):
    missing windows are created, existing ones get the capacity (never below the places taken),
    a window overlapping a different existing one is left alone and reported. With the
    `district`, the places created or added go to the waiting list in the same commit, before
    the public journey can see them."""
    by_day: dict[dt.date, list[Slot]] = {}
    for slot in await Slot.filter(site_id=site_id, day__gte=from_day, day__lte=to_day):
        by_day.setdefault(slot.day, []).append(slot)
    result = OpenSlotsResult()
    missing: list[Slot] = []
    to_update: list[tuple[Slot, int]] = []
    for day, start, end, capacity in plan:
        same = [s for s in by_day.get(day, []) if s.start == start and s.end == end]
        clash = [s for s in by_day.get(day, []) if s.start < end and start < s.end]
        if same:
            to_update.append((same[0], capacity))
        elif clash:
            result.conflicts.append((day, f"{start}-{end}", f"{clash[0].start}-{clash[0].end}"))
        else:
            missing.append(Slot(site_id=site_id, day=day, start=start, end=end, capacity=capacity))
    # Every statement here begins with a write, so on SQLite the transaction takes the write lock at once.
    async with in_transaction() as conn:
        if missing:
            await Slot.bulk_create(missing, using_db=conn)
            result.created = len(missing)
        grown = [slot.id for slot, capacity in to_update if await _set_capacity(slot, capacity, result, conn)]
        if district is not None:
            await waitlist.offer_free_in(district, conn, grown + await _ids_of(site_id, missing, conn))
    return result


async def _ids_of(site_id: int, created: list[Slot], conn) -> list[int]:
    """The ids of the windows just created (bulk_create does not give them back on every database)."""
    if not created:
        return []
    wanted = {(s.day, s.start) for s in created}
    days = sorted({s.day for s in created})
    rows = await Slot.filter(site_id=site_id, day__gte=days[0], day__lte=days[-1]).using_db(conn).values_list(
        "id", "day", "start")
    return [slot_id for slot_id, day, start in rows if (day, start) in wanted]


async def _set_capacity(slot: Slot, capacity: int, result: OpenSlotsResult, conn) -> bool:
    """Set one slot's capacity with a conditional UPDATE, so a booking made meanwhile is never
    squeezed out; whether it gained places (the waiting list is offered them)."""
    if slot.capacity == capacity:
        result.unchanged += 1
        return False
    # booked + held <= capacity: places kept for someone checking their answers count too.
    if await Slot.filter(id=slot.id, booked__lte=capacity - F("held")).using_db(conn).update(
        capacity=capacity
    ):
        if capacity > slot.capacity:
            result.raised += 1
            return True
        result.lowered += 1
        return False
    # More places are taken than asked for: keep exactly those (no new bookings).
    await Slot.filter(id=slot.id).using_db(conn).update(capacity=F("booked") + F("held"))
    fresh = await Slot.get(id=slot.id).using_db(conn)
    result.held.append(Held(slot.day, slot.start, capacity, fresh.capacity))
    if fresh.capacity < slot.capacity:
        result.lowered += 1
    else:
        result.unchanged += 1
    return False
