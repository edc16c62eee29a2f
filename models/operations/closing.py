"""Closing a day or a window at a site (weather, no vaccine delivered), and what happens to its bookings.

First the windows are marked closed (`Slot.closed_reason`): from then on nobody can book them
(the engine and availability skip closed windows). Then each active booking on them, in booking
order, is moved into the windows of another day or site, in window order, while they have room
(and the person's interval rules allow the day), or else cancelled; or every one is cancelled.
Each booking is moved or cancelled in its own transaction through the booking service, its one
SMS queued in that same transaction: a crash leaves every booking either moved or cancelled with
its SMS, or untouched on its closed window. Running the same closure again finds only the
untouched ones, so nobody is moved or messaged twice.
"""
from __future__ import annotations

import datetime as dt
import hashlib
import json
from collections import Counter
from dataclasses import dataclass
from typing import Callable

from ..booking import service, waitlist
from ..clock import as_utc
from ..db import places as place_rules
from ..db.tables import Booking, Hold, Site, Slot
from ..district import District
from ..messaging import wording
from ..people.links import link_url
from ..rules.eligibility import Refusal, Refused
from ..rules.interval import has_started
from .invitations import SAMPLE_TOKEN
from .slots import HHMM

MAX_REASON = 100  # Slot.closed_reason
PAGE = 200
CLOSURE = "closure"  # how a person the closure put on the waiting list joined it (WaitlistEntry.channel)

# What each ClosingError code means, for the command line (the console words them in Chinese).
REASONS = {
    "site": "unknown site code",
    "day": "no day given",
    "day_past": "the day is in the past",
    "start_format": "--start must be HH:MM (24-hour clock)",
    "reason": "--reason is empty",
    "reason_long": f"--reason is longer than {MAX_REASON} characters",
    "no_windows": "the site has no time windows that day: nothing to close",
    "no_window": "the site has no time window starting then on that day",
    "to_site": "unknown --move-to-site code",
    "to_site_closed": "the --move-to-site site is closed",
    "to_day": "--move-to-site needs --move-to-day",
    "to_day_past": "--move-to-day is in the past",
    "to_same": "cannot move bookings into the day being closed",
    "to_no_windows": "the --move-to-site site has no open window not yet begun on --move-to-day",
    "mode": "choose --move-to-site with --move-to-day, or --cancel",
    "to_none": "nobody could be moved there (no free place, or nobody's interval allows that day)",
    "changed": "the numbers changed since the preview: check again",
    "base_url": "BASE_URL is too long for the cancellation SMS with its link",
}


class ClosingError(ValueError):
    """The closure cannot be done as asked; `code` says why (the console words it), `field` where."""

    def __init__(self, code: str, field: str = ""):
        super().__init__(code)
        self.code, self.field = code, field


@dataclass(frozen=True)
class Closure:
    """What to close: a whole day at a site (start "") or one window of it, and why."""

    site: Site
    day: dt.date
    start: str
    reason: str

    def slots(self):
        query = Slot.filter(site_id=self.site.id, day=self.day)
        return query.filter(start=self.start) if self.start else query

    def __str__(self) -> str:
        return f"{self.site.code} {self.day} {self.start or 'all day'}"


@dataclass(frozen=True)
class Preview:
    closure: Closure
    windows: list[Slot]
    bookings: int  # active bookings on those windows
    people: int
    already_closed: int  # windows already closed (a closure run before)


@dataclass(frozen=True)
class Target:
    """Where bookings are moved: the open windows of a site on a day, in order."""

    site: Site
    day: dt.date
    windows: list[Slot]

    @property
    def free(self) -> int:
        return sum(w.free for w in self.windows)


@dataclass
class ClosureResult:
    moved: int = 0
    cancelled: int = 0
    gone: int = 0  # cancelled or moved by someone else while the closure ran: left alone
    closed: int = 0  # windows this run closed (0 when run again)

    @property
    def handled(self) -> int:
        return self.moved + self.cancelled + self.gone


async def site_by_id(site_id: int | None) -> Site | None:
    return await Site.get_or_none(id=site_id) if site_id else None


async def site_by_code(code: str) -> Site | None:
    return await Site.get_or_none(code=code) if code else None


async def sites() -> list[Site]:
    return await Site.all().order_by("subdistrict", "code")


async def closure(site: Site | None, day: dt.date | None, start: str, reason: str, *,
                  today: dt.date) -> Closure:
    """Check what is asked; ClosingError when it cannot be closed."""
    if site is None:
        raise ClosingError("site", "site")
    if day is None:
        raise ClosingError("day", "day")
    if day < today:
        raise ClosingError("day_past", "day")
    start = (start or "").strip()
    if start and not HHMM.match(start):
        raise ClosingError("start_format", "start")
    reason = " ".join((reason or "").split())
    if not reason:
        raise ClosingError("reason", "reason")
    if len(reason) > MAX_REASON:
        raise ClosingError("reason_long", "reason")
    c = Closure(site, day, start, reason)
    if not await c.slots().exists():
        raise ClosingError("no_window" if start else "no_windows", "start" if start else "day")
    return c


async def preview(c: Closure) -> Preview:
    """The windows the closure covers and the active bookings on them."""
    windows = await c.slots().order_by("start")
    ids = [w.id for w in windows]
    people = await Booking.filter(status=Booking.ACTIVE, slot_id__in=ids).values_list(
        "resident_id", flat=True)
    return Preview(c, windows, len(people), len(set(people)),
                   sum(1 for w in windows if w.closed_reason))


async def target(c: Closure, site: Site | None, day: dt.date | None, *, now: dt.datetime) -> Target:
    """The windows bookings may be moved into; ClosingError when there are none."""
    if site is None:
        raise ClosingError("to_site", "to_site")
    if not site.active:
        raise ClosingError("to_site_closed", "to_site")
    if day is None:
        raise ClosingError("to_day", "to_day")
    if day < now.date():
        raise ClosingError("to_day_past", "to_day")
    closing = set(await c.slots().values_list("id", flat=True))
    windows = [w for w in await Slot.filter(site_id=site.id, day=day, closed_reason="").order_by("start")
               .select_related("site")
               if w.id not in closing and not has_started(w.day, w.start, now)]
    if not windows:
        same = site.id == c.site.id and day == c.day
        raise ClosingError("to_same" if same and not c.start else "to_no_windows", "to_day")
    return Target(site, day, windows)


@dataclass(frozen=True)
class Choice:
    """A site and day the bookings could be moved to, with its free places (open windows not yet
    begun, live holds counted as taken)."""

    site: Site
    day: dt.date
    free: int
    windows: int

    @property
    def key(self) -> str:
        return f"{self.site.id}:{self.day.isoformat()}"


DAYS_BEFORE, DAYS_AFTER = 7, 14  # the days offered as targets around the closed day


async def _live_holds(slots: list[Slot], now: dt.datetime) -> Counter:
    ids = [s.id for s in slots]
    if not ids:
        return Counter()
    return Counter(await Hold.filter(slot_id__in=ids, expires_at__gt=as_utc(now)).values_list("slot_id", flat=True))


def _free(slot: Slot, holds: Counter) -> int:
    """Free places as the engine sees them when it takes one: expired holds are swept first."""
    return place_rules.free(slot.capacity, slot.booked, holds[slot.id])


async def choices(c: Closure, *, now: dt.datetime) -> list[Choice]:
    """Every site and day with a free place that the bookings could go to, by day then site:
    never a window being closed (the same day's other windows when only one window closes)."""
    first, last = max(now.date(), c.day - dt.timedelta(days=DAYS_BEFORE)), c.day + dt.timedelta(days=DAYS_AFTER)
    closing = set(await c.slots().values_list("id", flat=True))
    slots = [s for s in await Slot.filter(day__gte=first, day__lte=last, closed_reason="", site__active=True)
             .order_by("day", "start").select_related("site")
             if s.id not in closing and not has_started(s.day, s.start, now)]
    holds = Counter(await Hold.filter(slot__day__gte=first, slot__day__lte=last, expires_at__gt=as_utc(now))
                    .values_list("slot_id", flat=True))
    free: dict[tuple[int, dt.date], list] = {}
    for s in slots:
        entry = free.setdefault((s.site_id, s.day), [s.site, 0, 0])
        entry[1] += _free(s, holds)
        entry[2] += 1
    found = [Choice(site, day, places, windows) for (_, day), (site, places, windows) in free.items() if places]
    return sorted(found, key=lambda ch: (ch.day, ch.site.subdistrict, ch.site.code))


@dataclass(frozen=True)
class Plan:
    """What confirming would do, as its button says: `moved` bookings into `target` (none: cancel
    all), `cancelled` cancelled. `digest` ties a confirm form to the numbers it showed."""

    closure: Closure
    windows: tuple[int, ...]  # the windows being closed
    target: Target | None
    moved: int
    cancelled: int
    free: int = 0  # the target's free places now

    @property
    def bookings(self) -> int:
        return self.moved + self.cancelled

    @property
    def digest(self) -> str:
        c, t = self.closure, self.target
        seen = [c.site.id, c.day.isoformat(), c.start, c.reason, list(self.windows),
                [t.site.id, t.day.isoformat(), [w.id for w in t.windows]] if t else "cancel",
                self.moved, self.cancelled]
        return hashlib.sha256(json.dumps(seen, ensure_ascii=False).encode()).hexdigest()[:24]


async def plan(c: Closure, move_to: Target | None, *, rules, now: dt.datetime) -> Plan:
    """Count what close() would do now: each booking in booking order into the first target window
    with a free place that the person's interval allows (the engine's own rule), else cancelled."""
    windows = tuple(await c.slots().order_by("start").values_list("id", flat=True))
    people = await Booking.filter(status=Booking.ACTIVE, slot_id__in=windows).order_by("id").values_list(
        "resident__first_dose_date", "resident__vaccine")
    if move_to is None:
        return Plan(c, windows, None, 0, len(people))
    holds = await _live_holds(move_to.windows, now)
    free = {w.id: _free(w, holds) for w in move_to.windows}
    places, moved = sum(free.values()), 0
    for first_dose, vaccine in people:
        allowed = rules.window(first_dose, vaccine or "")
        for w in move_to.windows:
            if free[w.id] and allowed.allows(w.day, w.start, now):
                free[w.id] -= 1
                moved += 1
                break
    return Plan(c, windows, move_to, moved, len(people) - moved, places)


def check_link_fits(base_url: str) -> None:
    """ClosingError("base_url") when a message carrying a link (the cancellation's among them)
    cannot fit with this BASE_URL (invitations.check_base_url: the same limit)."""
    if not wording.fits(wording.longest_with(link_url(base_url, SAMPLE_TOKEN))):
        raise ClosingError("base_url")


async def close(district: District, c: Closure, *, move_to: Target | None,
                progress: Callable[[ClosureResult], None] | None = None) -> ClosureResult:
    """Close the windows, then move (as many as `move_to` has room for) or cancel each booking on
    them, one transaction each. Safe to run again after a crash or on purpose."""
    check_link_fits(district.base_url)
    result = ClosureResult()
    result.closed = await c.slots().filter(closed_reason="").update(closed_reason=c.reason)
    closed = await c.slots().exclude(closed_reason="").values_list("id", flat=True)
    full: set[int] = set()  # target windows found full: not tried again
    last_id = 0
    while True:
        page = await (Booking.filter(status=Booking.ACTIVE, slot_id__in=closed, id__gt=last_id)
                      .order_by("id").limit(PAGE).select_related("resident"))
        for booking in page:
            outcome = await _move_one(district, booking, move_to, full) if move_to else None
            if outcome is None:
                outcome = "cancelled" if await service.cancel_off_closed(district, booking, c.day) \
                    else "gone"
                if outcome == "cancelled":
                    await _wait_for_a_place(district, booking.resident)
            setattr(result, outcome, getattr(result, outcome) + 1)
            if progress:
                progress(result)
        if len(page) < PAGE:
            return result
        last_id = page[-1].id


async def _wait_for_a_place(district: District, resident) -> None:
    """A booking the closure could not move: its person goes on the waiting list (any site in
    their first-dose site's sub-district), in the list's order like everyone on it, so the people
    a closure displaced and the people already waiting share the places that open next by one
    rule. Nothing when they may not book (a risk area since)."""
    standing = await service.stand(district, resident)
    if standing.refusal in waitlist.JOINABLE:
        await waitlist.join(district, standing, waitlist.Choice(scope="subdistrict"), channel=CLOSURE)


async def _move_one(district: District, booking: Booking, move_to: Target, full: set[int]) -> str | None:
    """'moved', 'gone', or None when no window of the target can take this person."""
    for window in move_to.windows:
        if window.id in full:
            continue
        try:
            await service.move_off_closed(district, booking, window.id)
            return "moved"
        except Refused as exc:
            if exc.reason == Refusal.GONE:
                return "gone"
            if exc.reason == Refusal.FULL:
                full.add(window.id)
            # NOT_ALLOWED: the person's rules do not allow that day, or the window began: try the next
    return None
