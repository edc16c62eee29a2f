"""The booking engine: holding, booking, moving and cancelling places without ever overbooking.

Places are counted on the slot row: `booked` (active bookings) and `held` (hold rows). Every
change is a conditional UPDATE on that row inside one transaction, e.g.
`UPDATE slot SET booked = booked + 1 WHERE id = ? AND held < capacity - booked`; a row count of 0
means full. On SQLite the transaction is BEGIN IMMEDIATE (one writer at a time, across
processes); on PostgreSQL the UPDATE's row lock makes racers queue and re-check the condition.
The database itself refuses `booked + held > capacity` and a second active booking per person
(models/migrations/0002_constraints.py), so a bug here fails loudly instead of overbooking.
"""
from __future__ import annotations

import asyncio
import datetime as dt

from tortoise.exceptions import IntegrityError
from tortoise.expressions import F
from tortoise.transactions import in_transaction

from . import sms
from .availability import slot_is_allowed
from .clock import utc_now
from .codes import format_code, new_booking_code
from .pii import mask_name
from .residents import active_booking, age_on
from .rules import Window, needs_companion
from .tables import Booking, Hold, Resident, Slot

HOLD_MINUTES = 5  # as long as England's national booking service holds a place


class BookingError(Exception):
    """A booking could not be made; `reason` is full, not_allowed, already_booked or gone."""

    def __init__(self, reason: str, booking: Booking | None = None):
        super().__init__(reason)
        self.reason = reason
        self.booking = booking


async def _lock_slots(conn, *slot_ids: int | None) -> None:
    """Lock, lowest id first, every slot row the transaction will change.

    On PostgreSQL two transactions that each change two slots (a move A→B and a move B→A) would
    otherwise lock them in opposite orders and deadlock. On SQLite the whole database is already
    locked by BEGIN IMMEDIATE, and select_for_update does nothing.
    """
    ids = sorted({i for i in slot_ids if i})
    if ids:
        await Slot.filter(id__in=ids).order_by("id").select_for_update().using_db(conn)


def _is_retryable(exc: BaseException) -> bool:
    """A PostgreSQL deadlock or serialisation failure: the transaction can simply run again."""
    try:
        from asyncpg.exceptions import TransactionRollbackError
    except ImportError:  # pragma: no cover
        return False
    while exc is not None:
        if isinstance(exc, TransactionRollbackError):
            return True
        exc = exc.__cause__
    return False


async def _retrying(transaction):
    """Run an async transaction function, again (up to 3 times) if the database had to abort it."""
    for attempt in range(3):
        try:
            return await transaction()
        except Exception as exc:
            if attempt == 2 or not _is_retryable(exc):
                raise
            await asyncio.sleep(0.01 * (attempt + 1))


async def _held_slot(resident_id: int) -> int | None:
    """The slot the resident holds now (read before a transaction, to lock it in order)."""
    ids = await Hold.filter(resident_id=resident_id).values_list("slot_id", flat=True)
    return ids[0] if ids else None


def _has_room():
    """The condition of a slot row with a free place: booked + held < capacity."""
    return {"held__lt": F("capacity") - F("booked")}


async def _sweep_slot(conn, slot_id: int) -> None:
    """Give back the places of this slot's expired holds."""
    gone = await Hold.filter(slot_id=slot_id, expires_at__lte=utc_now()).using_db(conn).delete()
    if gone:
        await Slot.filter(id=slot_id).using_db(conn).update(held=F("held") - gone)


async def _release_hold(conn, resident_id: int, *, except_slot: int | None = None) -> None:
    """Drop the resident's hold (if any, and not on except_slot), giving its place back."""
    current = await Hold.get_or_none(resident_id=resident_id).using_db(conn)
    if current is None or current.slot_id == except_slot:
        return
    if await Hold.filter(id=current.id).using_db(conn).delete():
        await Slot.filter(id=current.slot_id).using_db(conn).update(held=F("held") - 1)


async def _take_place(conn, resident_id: int, slot_id: int) -> None:
    """Turn the resident's live hold on the slot into a booked place, or take a free one."""
    converted = await Hold.filter(
        resident_id=resident_id, slot_id=slot_id, expires_at__gt=utc_now()
    ).using_db(conn).delete()
    if converted:
        await Slot.filter(id=slot_id).using_db(conn).update(
            held=F("held") - 1, booked=F("booked") + 1
        )
        return
    await _release_hold(conn, resident_id)
    await _sweep_slot(conn, slot_id)
    taken = await Slot.filter(id=slot_id, **_has_room()).using_db(conn).update(
        booked=F("booked") + 1
    )
    if taken != 1:
        raise BookingError("full")


async def hold(resident: Resident, slot_id: int, *, window: Window, now: dt.datetime,
               minutes: int = HOLD_MINUTES) -> Hold:
    """Keep a place on the slot for the resident for a few minutes (one hold per person)."""
    slot = await Slot.get_or_none(id=slot_id).select_related("site")
    if slot is None or not slot.site.active or not slot_is_allowed(slot, window, now):
        raise BookingError("not_allowed")
    until = utc_now() + dt.timedelta(minutes=minutes)

    async def transaction() -> Hold:
        async with in_transaction() as conn:
            await _lock_slots(conn, slot_id, await _held_slot(resident.id))
            await _sweep_slot(conn, slot_id)
            await _release_hold(conn, resident.id, except_slot=slot_id)
            mine = await Hold.get_or_none(resident_id=resident.id).using_db(conn)
            if mine:  # already holding this slot: keep it a little longer
                await Hold.filter(id=mine.id).using_db(conn).update(expires_at=until)
                mine.expires_at = until
                return mine
            taken = await Slot.filter(id=slot_id, **_has_room()).using_db(conn).update(
                held=F("held") + 1
            )
            if taken != 1:
                raise BookingError("full")
            return await Hold.create(slot_id=slot_id, resident=resident, expires_at=until,
                                     using_db=conn)

    return await _retrying(transaction)


async def live_hold(resident_id: int) -> Hold | None:
    return await Hold.get_or_none(resident_id=resident_id, expires_at__gt=utc_now())


async def sweep_expired_holds() -> int:
    """Give back the places of every expired hold; return how many."""
    slot_ids = await Hold.filter(expires_at__lte=utc_now()).distinct().values_list("slot_id", flat=True)
    for slot_id in slot_ids:
        async with in_transaction() as conn:
            await _sweep_slot(conn, slot_id)
    return len(slot_ids)


def _confirmation_sms(kind: str, resident: Resident, booking: Booking, slot: Slot) -> str:
    return sms.confirmation_body(
        kind=kind,
        masked_name=mask_name(resident.name),
        code=format_code(booking.code),
        site_name=slot.site.name,
        day=slot.day,
        start=slot.start,
        end=slot.end,
        companion=needs_companion(age_on(resident, slot.day)),
    )


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
    async def transaction() -> Booking:
        async with in_transaction() as conn:
            await _lock_slots(conn, slot_id, await _held_slot(resident.id))
            await _take_place(conn, resident.id, slot_id)
            booking = await _create_booking(resident, slot, request_key, channel, conn)
            await sms.queue(resident, "confirm", _confirmation_sms("book", resident, booking, slot),
                            using_db=conn)
            return booking

    try:
        booking = await _retrying(transaction)
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

    async def transaction() -> None:
        async with in_transaction() as conn:
            await _lock_slots(conn, new_slot_id, old_slot_id, await _held_slot(resident.id))
            await _take_place(conn, resident.id, new_slot_id)
            moved = await Booking.filter(
                id=booking.id, status=Booking.ACTIVE, slot_id=old_slot_id
            ).using_db(conn).update(slot_id=new_slot_id)
            if moved != 1:
                raise BookingError("gone")  # cancelled or moved meanwhile: roll back the new place
            await Slot.filter(id=old_slot_id).using_db(conn).update(booked=F("booked") - 1)
            booking.slot_id = new_slot_id
            await sms.queue(resident, "move", _confirmation_sms("move", resident, booking, new_slot),
                            using_db=conn)

    await _retrying(transaction)
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
                        sms.cancellation_body(masked_name=mask_name(resident.name),
                                              code=format_code(booking.code)),
                        using_db=conn)
    return True
