"""The campaign in figures (/admin/reports): per site per day, per sub-district, the second-dose
completion rate over time, with the district's totals, and bookings by channel.

Everything is counted in the database (GROUP BY over indexes, migration 0008), never by loading
rows. Two kinds of figures:

- Per site per day (capacity, booked, checked in, no-shows, utilisation) is asked of the database
  on every request: one query over the windows of the chosen days, counting each window's
  bookings by status on the booking index (slot_id, status): about 0.1 s for 60 days of 100 sites.
- Per sub-district and the completion rate read a resident snapshot: residents counted per
  sub-district, product and first-dose day (with their second doses), active bookings counted the
  same way, and second doses per sub-district and day. On a million residents that takes about
  0.4 s, so it is kept per server process (Snapshots) and computed at most once a minute. A page
  asked for when it is older waits for a fresh one (up to WAIT_SECONDS; only a slower database
  gets the older one, and a fresh one is being taken for the next page), so the time the page
  shows ("数据截至…") is at most a minute old: before issue 22 an older snapshot was always
  answered at once, and a page opened after a quiet quarter of an hour showed that old time. Due and overdue are worked out from it on each request, with
  today's date and each product's interval rule (config/vaccines.toml), so they are never a day old.

Definitions (docs/reports.md):
- booked (per site per day): bookings for that day not cancelled (to come, checked in or no-show);
  utilisation: booked / capacity; capacity: places of the windows not closed.
- per sub-district (where people live): every resident is in exactly one of second dose given,
  booked (an active booking, no second dose yet), not yet due (before day 21), due (from day 21 to
  day 56, not booked) and overdue (past day 56 without a second dose or a booking: the people on
  /admin/overdue).
- completion rate on a day: residents whose second dose was given by the end of that day, divided
  by residents whose first dose was given by then.
- by channel: bookings still to come (active) and checked in, by how they were made
  (Booking.channel: sms, phone, callcentre, family_doctor, clinic_desk, group, handoff), counted
  in the database on every request like the per-site table.
"""
from __future__ import annotations

import asyncio
import datetime as dt
import logging
import time
from dataclasses import dataclass, field
from typing import Callable

from ..booking import waitlist
from ..channel import REPORTED
from ..clock import as_date
from ..db import tallies
from ..db.tables import Site, WaitlistEntry
from ..district import District
from ..rules.tianhe import SUBDISTRICTS, normalise_subdistrict

log = logging.getLogger("booking.reports")

SITE_DAYS = 7  # the per-site table shows the last week (to today) unless asked otherwise
COMPLETION_DAYS = 30  # the completion table: the last 30 days
MAX_SITE_DAYS = 92  # at most a quarter of per-site rows at once (6 per cent of a page's time a day)
MAX_COMPLETION_DAYS = 366
PAGE_ROWS = 200  # rows of the per-site table on one page (the CSV has them all)
FRESH_SECONDS = 60  # the resident snapshot is recomputed at most once a minute
WAIT_SECONDS = 5.0  # how long a page waits for a fresh snapshot before it is answered with the older one


class FilterError(ValueError):
    """The filters cannot be used; `errors` maps each field (from_day, to_day, site, subdistrict)
    to why: format (not a day / not a number), order (from after to), too_long (more days than
    `limit`), unknown (no such site or sub-district)."""

    def __init__(self, errors: dict[str, str], limit: int = 0):
        super().__init__(", ".join(f"{k}: {v}" for k, v in errors.items()))
        self.errors = errors
        self.limit = limit


@dataclass(frozen=True)
class Asked:
    """The filters as parsed at the edge (web/http.py): None for a field left empty, and the
    names of the fields that were typed but could not be read at all."""

    from_day: dt.date | None = None
    to_day: dt.date | None = None
    site_id: int | None = None
    subdistrict: str = ""
    unreadable: frozenset[str] = frozenset()


@dataclass(frozen=True)
class Filters:
    """Filters checked against the district: a date range (both ends, or None for all days), a
    site and a sub-district (or none)."""

    from_day: dt.date | None
    to_day: dt.date | None
    site: Site | None = None
    subdistrict: str = ""


# ---- checking the filters


async def _resolve(asked: Asked, *, default_days: int | None, max_days: int | None, today: dt.date,
                   with_site: bool) -> Filters:
    errors = {name: "format" for name in asked.unreadable if with_site or name != "site"}
    from_day, to_day = asked.from_day, asked.to_day
    if default_days is not None and "from_day" not in errors and "to_day" not in errors:
        if to_day is None:
            to_day = max(today, from_day) if from_day else today
        if from_day is None:
            from_day = to_day - dt.timedelta(days=default_days - 1)
    if from_day and to_day and "from_day" not in errors and "to_day" not in errors:
        if from_day > to_day:
            errors["to_day"] = "order"
        elif max_days and (to_day - from_day).days + 1 > max_days:
            errors["to_day"] = "too_long"
    site = None
    if with_site and asked.site_id is not None:
        site = await Site.get_or_none(id=asked.site_id)
        if site is None:
            errors["site"] = "unknown"
    subdistrict = ""
    if asked.subdistrict:
        subdistrict = normalise_subdistrict(asked.subdistrict) or ""
        if not subdistrict:
            errors["subdistrict"] = "unknown"
    if errors:
        raise FilterError(errors, max_days or 0)
    return Filters(from_day, to_day, site, subdistrict)


async def choices() -> dict:
    """What the filter form offers: every site (by code) and every sub-district."""
    sites = await Site.all().order_by("code").values("id", "code", "name")
    return {"sites": sites, "subdistricts": SUBDISTRICTS}


# ---- per site per day


@dataclass(frozen=True)
class SiteDay:
    day: dt.date
    site_code: str
    site_name: str
    subdistrict: str
    capacity: int  # places in the windows not closed
    booked: int  # bookings not cancelled: to come, checked in, no-show
    checked_in: int
    no_shows: int

    @property
    def utilisation(self) -> float | None:
        """booked / capacity, as a fraction; None without places."""
        return self.booked / self.capacity if self.capacity else None


@dataclass(frozen=True)
class SiteDayReport:
    filters: Filters
    rows: list[SiteDay]  # this page's
    total_rows: int
    page: int  # 1-based, within 1..pages
    pages: int
    totals: SiteDay  # the whole range (site_code "")
    per_day: list[SiteDay] = field(default_factory=list)  # the district's (or filter's) days


async def _site_days(filters: Filters) -> list[SiteDay]:
    sites = {s["id"]: (s["code"], s["name"], s["subdistrict"])
             for s in await Site.all().values("id", "code", "name", "subdistrict")}
    days: dict = {}  # the day as the database gives it -> a date: a few dozen, parsed once each
    rows = []
    # With a site and a sub-district: nothing unless the site is in that sub-district.
    for r in await tallies.site_days(filters.from_day, filters.to_day,
                                     site_id=filters.site.id if filters.site else None,
                                     subdistrict=filters.subdistrict or None):
        raw = r["day"]
        day = days.get(raw) or days.setdefault(raw, as_date(raw))
        rows.append(SiteDay(day, *sites[r["site_id"]], int(r["capacity"] or 0), int(r["booked"] or 0),
                            int(r["checked_in"] or 0), int(r["no_shows"] or 0)))
    rows.sort(key=lambda r: (r.day, r.site_code))
    return rows


def _sum(rows: list[SiteDay], day: dt.date | None = None) -> SiteDay:
    return SiteDay(day, "", "", "", sum(r.capacity for r in rows), sum(r.booked for r in rows),
                   sum(r.checked_in for r in rows), sum(r.no_shows for r in rows))


async def site_days(district: District, asked: Asked, page: int | None = None) -> SiteDayReport:
    """Per site per day over the range (default: the week to today), a page of PAGE_ROWS rows
    (a page past the end shows the last), the range's totals and its days' totals for the chart."""
    filters = await _resolve(asked, default_days=SITE_DAYS, max_days=MAX_SITE_DAYS,
                             today=district.clock.today(), with_site=True)
    rows = await _site_days(filters)
    pages = max(1, -(-len(rows) // PAGE_ROWS))
    page = min(max(page or 1, 1), pages)
    by_day: dict[dt.date, list[SiteDay]] = {}
    for r in rows:
        by_day.setdefault(r.day, []).append(r)
    per_day = []
    day = filters.from_day
    while day <= filters.to_day:
        per_day.append(_sum(by_day.get(day, []), day))
        day += dt.timedelta(days=1)
    return SiteDayReport(filters, rows[(page - 1) * PAGE_ROWS:page * PAGE_ROWS], len(rows), page, pages,
                         _sum(rows), per_day)


SITE_COLUMNS = ("day", "site_code", "site_name", "subdistrict", "capacity", "booked", "checked_in",
                "no_shows", "utilisation_percent")


def _percent(share: float | None) -> str:
    return "" if share is None else f"{share * 100:.1f}"


async def site_day_csv(district: District, asked: Asked):
    """The whole range as CSV values (header first), row by row; the filters are checked first
    (FilterError) so a refusal comes before anything is sent."""
    filters = await _resolve(asked, default_days=SITE_DAYS, max_days=MAX_SITE_DAYS,
                             today=district.clock.today(), with_site=True)
    rows = await _site_days(filters)

    def values():
        yield SITE_COLUMNS
        for r in rows:
            yield (r.day.isoformat(), r.site_code, r.site_name, r.subdistrict, r.capacity, r.booked,
                   r.checked_in, r.no_shows, _percent(r.utilisation))
        t = _sum(rows)
        yield ("total", "", "", "", t.capacity, t.booked, t.checked_in, t.no_shows, _percent(t.utilisation))

    return filters, values()


# ---- the resident snapshot: per sub-district, and the completion rate


@dataclass(frozen=True)
class Snapshot:
    """Residents counted in the database at `as_of`: (sub-district, product, first-dose day) ->
    [people, second doses given, active bookings without a second dose]; second doses per
    (sub-district, day)."""

    as_of: dt.datetime
    cohorts: dict[tuple[str, str, dt.date], list[int]]
    seconds: dict[tuple[str, dt.date], int]


async def take_snapshot(district: District) -> Snapshot:
    as_of = district.clock.now()
    cohorts: dict[tuple[str, str, dt.date], list[int]] = {}
    for r in await tallies.cohorts():
        cohorts[(r["subdistrict"], r["vaccine"], as_date(r["day"]))] = [int(r["people"]), int(r["given"]), 0]
    for r in await tallies.booked_cohorts():
        key = (r["subdistrict"], r["vaccine"], as_date(r["day"]))
        if key in cohorts:  # always, unless a resident moved between the two queries
            cohorts[key][2] = int(r["people"])
    seconds = {(r["subdistrict"], as_date(r["day"])): int(r["people"]) for r in await tallies.second_doses()}
    return Snapshot(as_of, cohorts, seconds)


class Snapshots:
    """The resident snapshot of one server process: taken on first use, then at most once every
    `fresh_seconds`. Older than that, a fresh one is taken and waited for, up to `wait_seconds`
    (past that the older one is answered and the fresh one lands for the next page); one taking
    at a time. Kept by the web app (app.state), one per process."""

    def __init__(self, fresh_seconds: float = FRESH_SECONDS, monotonic: Callable[[], float] = time.monotonic,
                 wait_seconds: float = WAIT_SECONDS):
        self.fresh_seconds = fresh_seconds
        self.wait_seconds = wait_seconds
        self.monotonic = monotonic
        self.value: Snapshot | None = None
        self.taken_at = 0.0
        self.task: asyncio.Task | None = None

    async def _take(self, district: District) -> Snapshot:
        started = self.monotonic()
        value = await take_snapshot(district)
        self.value, self.taken_at = value, started
        log.info("report snapshot taken in %.0f ms", (self.monotonic() - started) * 1000)
        return value

    def _start(self, district: District) -> asyncio.Task:
        if self.task is None or self.task.done():
            self.task = asyncio.get_running_loop().create_task(self._take(district))
            self.task.add_done_callback(self._done)
        return self.task

    @staticmethod
    def _done(task: asyncio.Task) -> None:
        if not task.cancelled() and task.exception() is not None:
            log.error("report snapshot failed: %r", task.exception())

    async def get(self, district: District) -> Snapshot:
        if self.value is None:
            return await asyncio.shield(self._start(district))
        if self.monotonic() - self.taken_at >= self.fresh_seconds:
            task = self._start(district)
            await asyncio.wait([task], timeout=self.wait_seconds)  # done, failed or still running
        return self.value


@dataclass(frozen=True)
class SubdistrictCounts:
    """One row of the sub-district table (or the totals: name "")."""

    name: str
    first_doses: int = 0
    second_doses: int = 0
    booked: int = 0
    not_yet_due: int = 0
    due: int = 0
    overdue: int = 0

    @property
    def completion(self) -> float | None:
        return self.second_doses / self.first_doses if self.first_doses else None

    def plus(self, other: "SubdistrictCounts") -> "SubdistrictCounts":
        return SubdistrictCounts(self.name,
                                 *(getattr(self, f) + getattr(other, f) for f in AREA_FIELDS))


AREA_FIELDS = ("first_doses", "second_doses", "booked", "not_yet_due", "due", "overdue")


@dataclass(frozen=True)
class AreaReport:
    filters: Filters
    as_of: dt.datetime
    rows: list[SubdistrictCounts]
    totals: SubdistrictCounts


def _in_range(day: dt.date, filters: Filters) -> bool:
    return ((filters.from_day is None or day >= filters.from_day)
            and (filters.to_day is None or day <= filters.to_day))


def _areas(district: District, snapshot: Snapshot, filters: Filters) -> AreaReport:
    today = district.clock.today()
    rules = district.rules
    counts: dict[str, list[int]] = {}
    for (sub, vaccine, first), (people, given, booked) in snapshot.cohorts.items():
        if filters.subdistrict and sub != filters.subdistrict or not _in_range(first, filters):
            continue
        row = counts.setdefault(sub, [0] * 6)
        waiting = people - given - booked
        window = rules.window(first, vaccine)
        row[0] += people
        row[1] += given
        row[2] += booked
        if today > window.due_by:
            row[5] += waiting
        elif today >= window.earliest:
            row[4] += waiting
        else:
            row[3] += waiting
    # Every sub-district of the district, in the notice's order; a name outside it (an import
    # that was not normalised) after them.
    names = [filters.subdistrict] if filters.subdistrict else list(SUBDISTRICTS) + sorted(set(counts) - set(SUBDISTRICTS))
    rows = [SubdistrictCounts(name or "—", *counts.get(name, [0] * 6)) for name in names]
    totals = SubdistrictCounts("")
    for row in rows:
        totals = totals.plus(row)
    return AreaReport(filters, snapshot.as_of, rows, totals)


async def by_area(district: District, snapshots: Snapshots, asked: Asked) -> AreaReport:
    """Per sub-district (where people live) and the district's totals, as of the snapshot; the
    date range, when given, picks people by their first-dose day."""
    filters = await _resolve(asked, default_days=None, max_days=None, today=district.clock.today(),
                             with_site=False)
    return _areas(district, await snapshots.get(district), filters)


AREA_COLUMNS = ("subdistrict", "first_doses", "second_doses", "booked", "not_yet_due", "due",
                "overdue", "completion_percent")


def area_values(report: AreaReport):
    yield AREA_COLUMNS
    for r in [*report.rows, report.totals]:
        yield (r.name or "total", r.first_doses, r.second_doses, r.booked, r.not_yet_due, r.due,
               r.overdue, _percent(r.completion))


@dataclass(frozen=True)
class CompletionDay:
    day: dt.date
    first_doses: int  # first doses given by the end of the day (everyone so far)
    second_doses: int  # second doses given that day
    second_doses_so_far: int  # given by the end of the day

    @property
    def rate(self) -> float | None:
        return self.second_doses_so_far / self.first_doses if self.first_doses else None


@dataclass(frozen=True)
class CompletionReport:
    filters: Filters
    as_of: dt.datetime
    days: list[CompletionDay]


def _completion(snapshot: Snapshot, filters: Filters) -> CompletionReport:
    firsts: dict[dt.date, int] = {}
    for (sub, _, day), (people, _, _) in snapshot.cohorts.items():
        if not filters.subdistrict or sub == filters.subdistrict:
            firsts[day] = firsts.get(day, 0) + people
    seconds: dict[dt.date, int] = {}
    for (sub, day), people in snapshot.seconds.items():
        if not filters.subdistrict or sub == filters.subdistrict:
            seconds[day] = seconds.get(day, 0) + people
    first_before = sum(n for d, n in firsts.items() if d < filters.from_day)
    second_before = sum(n for d, n in seconds.items() if d < filters.from_day)
    days = []
    day = filters.from_day
    while day <= filters.to_day:
        first_before += firsts.get(day, 0)
        given = seconds.get(day, 0)
        second_before += given
        days.append(CompletionDay(day, first_before, given, second_before))
        day += dt.timedelta(days=1)
    return CompletionReport(filters, snapshot.as_of, days)


async def completion(district: District, snapshots: Snapshots, asked: Asked) -> CompletionReport:
    """The second-dose completion rate per day over the range (default: the 30 days to today),
    for the district or one sub-district, as of the snapshot."""
    filters = await _resolve(asked, default_days=COMPLETION_DAYS, max_days=MAX_COMPLETION_DAYS,
                             today=district.clock.today(), with_site=False)
    return _completion(await snapshots.get(district), filters)


COMPLETION_COLUMNS = ("day", "first_doses_so_far", "second_doses", "second_doses_so_far",
                      "completion_percent")


def completion_values(report: CompletionReport):
    yield COMPLETION_COLUMNS
    for d in report.days:
        yield (d.day.isoformat(), d.first_doses, d.second_doses, d.second_doses_so_far, _percent(d.rate))


# ---- bookings by channel: how people came to book


# The table's order is models/channel.py's: the resident's own ways in, the call centre, family
# doctors and community health centres, group lists, the city platform's hand-off; a channel not
# reported there (the demo's) comes after them, by name. Every one reported has a row, even at 0.
CHANNELS = REPORTED


@dataclass(frozen=True)
class ChannelRow:
    """Bookings made through one channel (the totals: channel ""), not cancelled: still to come
    (active) and checked in (done)."""

    channel: str
    active: int = 0
    checked_in: int = 0


@dataclass(frozen=True)
class ChannelReport:
    filters: Filters
    rows: list[ChannelRow]
    totals: ChannelRow

    def share(self, row: ChannelRow) -> float | None:
        """The row's part of the active bookings."""
        return row.active / self.totals.active if self.totals.active else None


async def by_channel(district: District, asked: Asked) -> ChannelReport:
    """Active (and checked-in) bookings per channel; the date range, when given, picks bookings by
    the day of their window, the site by where it is, the sub-district by where the person lives."""
    filters = await _resolve(asked, default_days=None, max_days=None, today=district.clock.today(),
                             with_site=True)
    counts: dict[str, list[int]] = {c: [0, 0] for c in CHANNELS}
    for r in await tallies.by_channel(filters.from_day, filters.to_day,
                                      site_id=filters.site.id if filters.site else None,
                                      subdistrict=filters.subdistrict or None):
        row = counts.setdefault(r["channel"], [0, 0])
        row[0 if r["status"] == "active" else 1] += int(r["bookings"])
    names = list(CHANNELS) + sorted(set(counts) - set(CHANNELS))
    rows = [ChannelRow(name, *counts[name]) for name in names]
    totals = ChannelRow("", sum(r.active for r in rows), sum(r.checked_in for r in rows))
    return ChannelReport(filters, rows, totals)


CHANNEL_COLUMNS = ("channel", "active", "checked_in", "active_share_percent")


def channel_values(report: ChannelReport):
    yield CHANNEL_COLUMNS
    for r in [*report.rows, report.totals]:
        yield (r.channel or "total", r.active, r.checked_in, _percent(report.share(r)))


# ---- the waiting list: who waits for what, the offers per day, the time to a booking


WAITLIST_DAYS = 14  # offers per day: the last two weeks, to today
AHEAD_DAYS = 7  # "could use": today and the six days after
WAITLIST_COLUMNS = ("day", "offers_sent", "offers_taken", "offers_declined", "offers_expired",
                    "offers_withdrawn", "offers_open")


@dataclass(frozen=True)
class OffersDay:
    """The offers made on one day (Beijing time), by what has become of them."""

    day: dt.date
    sent: int = 0
    taken: int = 0
    declined: int = 0
    expired: int = 0
    withdrawn: int = 0
    open: int = 0


@dataclass(frozen=True)
class WaitlistReport:
    as_of: dt.datetime
    choices: list[dict]  # people on the list per site (of their first dose), scope, days and part
    waiting: int  # on the list, no offer open
    offered: int  # an offer holds a place for them now
    could_use: list[tuple[dt.date, int]]  # per coming day: people waiting whose interval and days allow it
    days: list[OffersDay]  # every day of the span, oldest first (zeros included: the chart's bars)
    median_minutes: float | None  # from joining to a booking made through an offer (offers of the span)

    @property
    def totals(self) -> OffersDay:
        return OffersDay(self.days[-1].day if self.days else self.as_of.date(),
                         *(sum(getattr(d, name) for d in self.days)
                           for name in ("sent", "taken", "declined", "expired", "withdrawn", "open")))


async def waitlist_report(now: dt.datetime, *, days: int = WAITLIST_DAYS) -> WaitlistReport:
    """The admin's view of the waiting list (booking/waitlist.py's figures), with every day of the
    span and the people who could use a place on each of the coming days."""
    today = now.date()
    first = today - dt.timedelta(days=days - 1)
    # figures() counts the offers made in the `days` before the moment given: the span's days
    midnight = dt.datetime.combine(today + dt.timedelta(days=1), dt.time(), now.tzinfo)
    figures = await waitlist.figures(days=days, now=midnight)
    counted = {row["day"]: row for row in figures.per_day}
    span = [first + dt.timedelta(days=n) for n in range(days)]
    per_day = [OffersDay(day, *(counted.get(day, {}).get(name, 0) for name in (
        "sent", "taken", "declined", "expired", "withdrawn", "open"))) for day in span]
    waiting = await WaitlistEntry.filter(status=WaitlistEntry.WAITING).count()
    offered = await WaitlistEntry.filter(status=WaitlistEntry.OFFERED).count()
    coming = [today + dt.timedelta(days=n) for n in range(AHEAD_DAYS)]
    return WaitlistReport(now, figures.waiting, waiting, offered,
                          [(day, await _could_use(day)) for day in coming], per_day,
                          figures.median_minutes_to_booking)


async def _could_use(day: dt.date) -> int:
    """People waiting (no offer open) who could take a place that day: their interval has begun
    by then (people past its end are still served) and their choice of days allows it."""
    days = ("any", "weekends" if day.weekday() >= 5 else "weekdays")
    return await WaitlistEntry.filter(status=WaitlistEntry.WAITING, first_day__lte=day, days__in=days).count()


def waitlist_values(report: WaitlistReport):
    """The CSV: offers per day, then the span's totals."""
    yield WAITLIST_COLUMNS
    for d in [*report.days, None]:
        row = report.totals if d is None else d
        yield ("total" if d is None else d.day.isoformat(), row.sent, row.taken, row.declined,
               row.expired, row.withdrawn, row.open)
