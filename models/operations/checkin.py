"""Site check-in: find a booking at the door, record the second dose given, close the day.

Rule 10: a site accepts only a booking for that site and that day. Everything else is refused
with one of the reasons below, which the page turns into what to do instead.

A site account sees its own site's bookings for today, and nothing else (issue 21, finding 6):
what is typed at the door (a booking code or an ID number) that is not a booking for this site
today — booked at another site or on another day, whatever its status, or not booked at all —
gets one answer, ELSEWHERE, with no site, day, time, name or ID number, and the same words
whatever it is; so the console cannot be used to look up the district's bookings, nor to test
which codes or ID numbers are real. The person at the door has their own SMS (where and when),
and the answer says so. An admin, who sees the whole district, still gets the detailed reasons.
A booking asked for by its row id (the check-in form) must be in the account's area (a site
account: its own site), else OutsideArea: nobody reads other sites' bookings by counting ids.
"""
from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

from tortoise.transactions import in_transaction

from ..booking import engine
from ..booking_codes import CODE_ALPHABET, CODE_LENGTH, format_code, normalise_code
from ..db.tables import Booking, Resident, Site, Slot
from ..people import pii
from ..people.residents import is_restricted
from ..staff import audit
from ..staff.scope import Area

# Why a person cannot be checked in.
NO_BOOKING = "no_booking"
OTHER_SITE = "other_site"
OTHER_DAY = "other_day"
CANCELLED = "cancelled"
CHECKED_IN = "checked_in"
VACCINATED = "vaccinated"
NO_SHOW = "no_show"
RESTRICTED = "restricted"  # their sub-district is marked medium or high risk today
# A site account's one answer for all that is not its own site's today (no booking, another
# site, another day, whatever the status): see the module's docstring.
ELSEWHERE = "elsewhere"

SHOWN = (Booking.ACTIVE, Booking.DONE, Booking.NO_SHOW)  # today's list leaves out cancellations


class BadDoorQuery(ValueError):
    """What was typed is neither a booking code nor a valid ID number; `reason` says which."""

    def __init__(self, reason: str):
        super().__init__(reason)
        self.reason = reason  # empty, format, code or id


@dataclass(frozen=True)
class Finding:
    """The answer at the door: the booking (if any) and why it cannot be checked in (if so)."""

    booking: Booking | None  # slot__site and resident loaded
    resident: Resident | None
    refusal: str | None
    shown_as: str = ""  # what was looked up, safe to show and audit: a code or a masked ID
    resident_id: int | None = None  # whom it was about, for the audit trail only (never shown)


@dataclass(frozen=True)
class Counts:
    booked: int  # everyone who had a place today: expected, checked in or no-show
    checked_in: int
    expected: int
    no_show: int


def parse_query(text: str) -> tuple[str, str]:
    """Return ("code", ACEF7HJK) or ("id", the normalised ID number); raise BadDoorQuery."""
    folded = pii.normalise_id(text)  # full-width to half-width, no spaces or dashes, upper case
    if not folded:
        raise BadDoorQuery("empty")
    code = normalise_code(folded)
    if len(code) == CODE_LENGTH:
        if any(ch not in CODE_ALPHABET for ch in code):
            raise BadDoorQuery("code")
        return "code", code
    if len(folded) >= 15 and folded[:6].isdigit():
        try:
            return "id", pii.validate_id(folded)
        except pii.InvalidIdNumber:
            raise BadDoorQuery("id") from None
    raise BadDoorQuery("format")


def refusal(booking: Booking, site_id: int, day: dt.date, *, restricted: bool = False) -> str | None:
    """Why this booking (slot and resident loaded) cannot be checked in here today, or None.

    `restricted`: the person's sub-district is a marked risk area today."""
    if booking.status == Booking.DONE:
        return CHECKED_IN
    if booking.status == Booking.CANCELLED:
        return CANCELLED
    if booking.status == Booking.NO_SHOW:
        return NO_SHOW
    if booking.resident.second_dose_date is not None:
        return VACCINATED
    if restricted:
        return RESTRICTED
    if booking.slot.site_id != site_id:
        return OTHER_SITE
    if booking.slot.day != day:
        return OTHER_DAY
    return None


def _bookings():
    return Booking.all().select_related("slot__site", "resident__second_dose_site")


async def _finding(booking: Booking | None, site_id: int, day: dt.date, shown_as: str) -> Finding:
    if booking is None:
        return Finding(None, None, NO_BOOKING, shown_as)
    restricted = await is_restricted(booking.resident, day)
    return Finding(booking, booking.resident, refusal(booking, site_id, day, restricted=restricted),
                   shown_as, booking.resident_id)


def _seen_from(area: Area, found: Finding, site_id: int, day: dt.date) -> Finding:
    """What the account may see of a finding: all of it for the whole district (an admin); for
    a site account, only its own site's booking today (or a second dose given at its site),
    else ELSEWHERE, carrying nothing but what was typed."""
    if area.everyone:
        return found
    b, r = found.booking, found.resident
    if b is not None and b.slot.site_id == site_id and b.slot.day == day:
        return found
    if b is None and r is not None and found.refusal == VACCINATED and r.second_dose_site_id == site_id:
        return found
    return Finding(None, None, ELSEWHERE, found.shown_as, found.resident_id)


async def find(vault: pii.Vault, text: str, site_id: int, day: dt.date, *,
               area: Area | None = None) -> Finding:
    """Look up what was typed at the door (a booking code or an ID number); raise BadDoorQuery.

    `area`: the asking account's (a site account: only its own site's bookings today are shown,
    the rest is ELSEWHERE); None: the whole district."""
    found = await _lookup(vault, text, site_id, day)
    return _seen_from(area or Area(everyone=True), found, site_id, day)


async def _lookup(vault: pii.Vault, text: str, site_id: int, day: dt.date) -> Finding:
    kind, value = parse_query(text)
    if kind == "code":
        booking = await _bookings().get_or_none(code=value)
        return await _finding(booking, site_id, day, format_code(value))
    shown = pii.mask_id(value)
    resident = await Resident.get_or_none(id_hash=vault.keyed_hash(value))
    if resident is None:  # nobody on record answers exactly like nobody booked
        return Finding(None, None, NO_BOOKING, shown)
    mine = await _bookings().filter(resident_id=resident.id).order_by("-id")
    by_status = {}
    for b in mine:
        by_status.setdefault(b.status, b)  # the newest of each status
    booking = by_status.get(Booking.ACTIVE) or by_status.get(Booking.DONE)
    if booking is None and resident.second_dose_date is not None:
        await resident.fetch_related("second_dose_site")
        return Finding(None, resident, VACCINATED, shown, resident.id)
    found = await _finding(booking or (mine[0] if mine else None), site_id, day, shown)
    return found if found.resident_id else Finding(None, None, NO_BOOKING, shown, resident.id)


class _Changed(Exception):
    """The booking or the resident changed since it was read: roll back and look again."""


async def check_in(booking_id: int | None, site_id: int, day: dt.date, *, area: Area) -> Finding:
    """Check the person in and record their second dose, all in one transaction.

    The place stays taken (slot.booked unchanged): it was used. Refused, with a reason, unless
    the booking is active, for this site and this day, and no second dose is recorded yet.
    OutsideArea, before anything is read out, when the booking is outside `area` (a site
    account's area is its own site; an admin's the whole district).
    """
    for _ in range(3):
        booking = await _bookings().get_or_none(id=booking_id) if booking_id else None
        if booking is not None:
            await area.check_booking(booking)
        found = _seen_from(area, await _finding(
            booking, site_id, day, format_code(booking.code) if booking else ""), site_id, day)
        if found.refusal:
            return found
        try:
            async with in_transaction() as conn:
                done = await Booking.filter(
                    id=booking.id, status=Booking.ACTIVE, slot_id=booking.slot_id
                ).using_db(conn).update(status=Booking.DONE)
                if done != 1:
                    raise _Changed
                given = await Resident.filter(
                    id=booking.resident_id, second_dose_date__isnull=True
                ).using_db(conn).update(second_dose_date=day, second_dose_site_id=site_id)
                if given != 1:
                    raise _Changed
        except _Changed:
            continue  # cancelled, moved or checked in meanwhile: the next round says which
        booking = await _bookings().get(id=booking.id)
        return Finding(booking, booking.resident, None, format_code(booking.code), booking.resident_id)
    raise RuntimeError(f"booking {booking_id} kept changing during check-in")


async def mark_no_shows(site_id: int, day: dt.date) -> int:
    """Mark every booking still active at the site that day as a no-show and give its place back.

    One transaction, through the engine (which alone writes places); returns how many. The people
    concerned have no active booking any more, so their link lets them book again.
    """
    return await engine.mark_no_shows(site_id, day)


async def close_day(day: dt.date, *, by: str = "scheduler") -> dict[str, int]:
    """End of day for every site (for a CLI or a scheduler): no-shows per site code, audited."""
    codes = await Booking.filter(status=Booking.ACTIVE, slot__day=day).distinct().values_list(
        "slot__site_id", "slot__site__code")
    result = {}
    for site_id, code in sorted(codes, key=lambda row: row[1]):
        result[code] = await mark_no_shows(site_id, day)
        await audit.record(action="no_shows", username=by, address="",
                           detail=f"{result[code]} site={code} day={day.isoformat()}")
    return result


async def todays_bookings(site_id: int, day: dt.date) -> list[Booking]:
    """The site's bookings that day (not the cancelled ones), by time window."""
    return await Booking.filter(
        slot__site_id=site_id, slot__day=day, status__in=SHOWN
    ).select_related("slot", "resident").order_by("slot__start", "id")


def count(bookings: list[Booking]) -> Counts:
    """Today's figures for the top of the page."""
    statuses = [b.status for b in bookings]
    return Counts(booked=len(statuses), checked_in=statuses.count(Booking.DONE),
                  expected=statuses.count(Booking.ACTIVE), no_show=statuses.count(Booking.NO_SHOW))


async def last_window_end(site_id: int, day: dt.date) -> str | None:
    """When the site's last window that day ends ("17:00"), or None without slots."""
    ends = await Slot.filter(site_id=site_id, day=day).order_by("-end").limit(1).values_list(
        "end", flat=True)
    return ends[0] if ends else None


async def booking_with_resident(booking_id: int) -> Booking | None:
    """A booking and its person, for the note after a check-in."""
    return await Booking.get_or_none(id=booking_id).select_related("resident")


async def site_by_code(code: str) -> Site | None:
    code = (code or "").strip()
    return await Site.get_or_none(code=code) if code else None


async def open_sites() -> list[Site]:
    return await Site.filter(active=True).order_by("code")
