"""The booking engine: what is free, and booking, moving and cancelling without ever overbooking.

Every change of places is a conditional UPDATE done first in its transaction
(`UPDATE slot SET booked = booked + 1 WHERE id = ? AND booked < capacity`), so on SQLite the
transaction takes the write lock at once, and on PostgreSQL the row lock serialises racers.
The database itself refuses a second active booking (partial unique index) and a slot over
capacity (CHECK / trigger): see models/db.py.
"""
from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

from tortoise.exceptions import IntegrityError
from tortoise.expressions import F, Q
from tortoise.functions import Min, Sum
from tortoise.transactions import in_transaction

from . import sms
from .codes import format_code, new_booking_code
from .residents import active_booking, age_on
from .rules import Window, needs_companion
from .tables import Booking, Resident, Site, Slot


class BookingError(Exception):
    """A booking could not be made; `reason` is full, not_allowed, already_booked or gone."""

    def __init__(self, reason: str, booking: Booking | None = None):
        super().__init__(reason)
        self.reason = reason
        self.booking = booking


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
    query = Slot.filter(day__gte=from_day, booked__lt=F("capacity"), site__active=True)
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
        .annotate(taken=Sum("booked"), cap=Sum("capacity"))
        .values("taken", "cap")
    )
    return sum((r["cap"] or 0) - (r["taken"] or 0) for r in rows)


def slot_is_allowed(slot: Slot, window: Window, now: dt.datetime) -> bool:
    if not window.allows(slot.day, now.date()):
        return False
    return not (slot.day == now.date() and slot.start <= now.strftime("%H:%M"))


def _confirmation_sms(kind: str, resident: Resident, booking: Booking, slot: Slot, site: Site) -> str:
    return sms.confirmation_body(
        kind=kind,
        masked_name=_mask(resident.name),
        code=format_code(booking.code),
        site_name=site.name,
        day=slot.day,
        start=slot.start,
        end=slot.end,
        companion=needs_companion(age_on(resident, slot.day)),
    )


def _mask(name: str) -> str:
    from .pii import mask_name

    return mask_name(name)


async def book(
    resident: Resident, slot_id: int, *, window: Window, now: dt.datetime,
    request_key: str | None = None, channel: str = "sms",
) -> tuple[Booking, bool]:
    """Book the slot for the resident; return (booking, created). Repeats return the same booking."""
    if request_key:
        again = await Booking.get_or_none(request_key=request_key, resident_id=resident.id)
        if again and again.status == Booking.ACTIVE:
            return again, False
    current = await active_booking(resident.id)
    if current:
        if current.slot_id == slot_id:
            return current, False
        raise BookingError("already_booked", current)
    slot = await Slot.get_or_none(id=slot_id).select_related("site")
    if slot is None or not slot.site.active or not slot_is_allowed(slot, window, now):
        raise BookingError("not_allowed")
    try:
        async with in_transaction() as conn:
            taken = await Slot.filter(id=slot_id, booked__lt=F("capacity")).using_db(conn).update(
                booked=F("booked") + 1
            )
            if taken != 1:
                raise BookingError("full")
            booking = await _create_booking(resident, slot, request_key, channel, conn)
            await sms.queue(resident, "confirm",
                            _confirmation_sms("book", resident, booking, slot, slot.site),
                            using_db=conn)
    except IntegrityError:
        # A twin request won the race (double tap): answer with the booking it made.
        current = await active_booking(resident.id)
        if current and current.slot_id == slot_id:
            return current, False
        raise BookingError("already_booked", current) from None
    return booking, True


async def _create_booking(resident, slot, request_key, channel, conn) -> Booking:
    for _ in range(5):
        code = new_booking_code()
        if not await Booking.filter(code=code).using_db(conn).exists():
            break
    return await Booking.create(
        code=code, resident=resident, slot=slot, request_key=request_key,
        channel=channel, using_db=conn,
    )


async def move(
    booking: Booking, new_slot_id: int, *, window: Window, now: dt.datetime
) -> Booking:
    """Move an active booking to another slot: the new place is taken and the old freed together."""
    if booking.slot_id == new_slot_id:
        return booking
    new_slot = await Slot.get_or_none(id=new_slot_id).select_related("site")
    if new_slot is None or not new_slot.site.active or not slot_is_allowed(new_slot, window, now):
        raise BookingError("not_allowed")
    old_slot_id = booking.slot_id
    resident = await Resident.get(id=booking.resident_id)
    async with in_transaction() as conn:
        taken = await Slot.filter(id=new_slot_id, booked__lt=F("capacity")).using_db(conn).update(
            booked=F("booked") + 1
        )
        if taken != 1:
            raise BookingError("full")
        moved = await Booking.filter(
            id=booking.id, status=Booking.ACTIVE, slot_id=old_slot_id
        ).using_db(conn).update(slot_id=new_slot_id)
        if moved != 1:
            raise BookingError("gone")  # cancelled or moved meanwhile: roll back the new place
        await Slot.filter(id=old_slot_id).using_db(conn).update(booked=F("booked") - 1)
        booking.slot_id = new_slot_id
        await sms.queue(resident, "move",
                        _confirmation_sms("move", resident, booking, new_slot, new_slot.site),
                        using_db=conn)
    return await Booking.get(id=booking.id).select_related("slot__site")


async def cancel(booking: Booking) -> bool:
    """Cancel an active booking and give its place back; False when it was not active any more."""
    resident = await Resident.get(id=booking.resident_id)
    async with in_transaction() as conn:
        done = await Booking.filter(id=booking.id, status=Booking.ACTIVE).using_db(conn).update(
            status=Booking.CANCELLED, request_key=None
        )
        if done != 1:
            return False
        await Slot.filter(id=booking.slot_id).using_db(conn).update(booked=F("booked") - 1)
        await sms.queue(resident, "cancel",
                        sms.cancellation_body(masked_name=_mask(resident.name),
                                              code=format_code(booking.code)),
                        using_db=conn)
    return True
