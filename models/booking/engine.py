"""The booking engine: holding, booking, moving and cancelling places without ever overbooking.

Places are counted on the slot row: `booked` (active bookings) and `held` (hold rows). Every
change is a conditional UPDATE on that row inside one transaction, e.g.
`UPDATE slot SET booked = booked + 1 WHERE id = ? AND held < capacity - booked`; a row count of 0
means full. On SQLite the transaction is BEGIN IMMEDIATE (one writer at a time, across
processes); on PostgreSQL the UPDATE's row lock makes racers queue and re-check the condition.
The database itself refuses `booked + held > capacity` and a second active booking per person
(models/db/migrations/0002_constraints.py), so a bug here fails loudly instead of overbooking.

The engine decides nothing about who may book (that is `booking.service`) and words no message:
a refusal is `rules.eligibility.Refused`, and the caller hands in a `Notice` that queues the SMS
inside the booking's own transaction.
"""
from __future__ import annotations

import asyncio
import datetime as dt
from functools import lru_cache
from typing import Awaitable, Callable

from tortoise.exceptions import IntegrityError
from tortoise.expressions import F
from tortoise.transactions import in_transaction

from ..clock import as_utc
from ..db import fast
from ..db.tables import Booking, Hold, Resident, Site, Slot
from ..people.residents import active_booking
from ..rules.eligibility import Refusal, Refused
from ..rules.interval import Window
from .codes import new_booking_code

# Queues the SMS for a booking made, moved or cancelled: (booking, its new slot with site, or
# None for a cancellation, the transaction's connection).
Notice = Callable[[Booking, "Slot | None", object], Awaitable[object]]


async def lock_slots(conn, *slot_ids: int | None, holder: int | None = None) -> None:
    """Lock, lowest id first, every slot row the transaction will change (with the slot the
    resident `holder` holds, if any).

    On PostgreSQL two transactions that each change two slots (a move A→B and a move B→A) would
    otherwise lock them in opposite orders and deadlock. On SQLite the whole database is already
    locked by BEGIN IMMEDIATE: nothing is asked.
    """
    if conn.capabilities.dialect == "sqlite":
        return
    if holder is not None:
        slot_ids = (*slot_ids, await _held_slot(holder))
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


async def retrying(transaction):
    """Run an async transaction function, again (up to 3 times) if the database had to abort it."""
    for attempt in range(3):
        try:
            return await transaction()
        except Exception as exc:
            if attempt == 2 or not _is_retryable(exc):
                raise
            await asyncio.sleep(0.01 * (attempt + 1))


@lru_cache(maxsize=1)
def _slot_sql() -> str:
    return (f"SELECT {fast.columns(Slot, 'sl')}, {fast.columns(Site, 's')} FROM {fast.table(Slot)} sl "
            f"JOIN {fast.table(Site)} s ON s.id = sl.site_id WHERE sl.id = ?")


async def _slot_with_site(slot_id: int) -> Slot | None:
    """The slot, its site loaded: asked on the check page, by hold and by book (models/db/fast.py)."""
    found = await fast.rows(_slot_sql(), [slot_id])
    if not found:
        return None
    slot = fast.load(Slot, found[0], "sl")
    fast.attach(slot, "site", fast.load(Site, found[0], "s"))
    return slot


async def bookable_slot(slot_id: int, window: Window, now: dt.datetime) -> Slot:
    """The slot (site loaded) when it and its site are open and the window rule allows it; else
    not_allowed."""
    slot = await _slot_with_site(slot_id) if slot_id else None
    if (slot is None or not slot.site.active or slot.closed_reason
            or not window.allows(slot.day, slot.start, now)):
        raise Refused(Refusal.NOT_ALLOWED)
    return slot


async def _held_slot(resident_id: int) -> int | None:
    """The slot the resident holds now (read outside the transaction, to lock it in order)."""
    ids = await Hold.filter(resident_id=resident_id).values_list("slot_id", flat=True)
    return ids[0] if ids else None


async def _sweep_slot(conn, slot_id: int, now: dt.datetime) -> None:
    """Give back the places of this slot's expired holds."""
    gone = await Hold.filter(slot_id=slot_id, expires_at__lte=as_utc(now)).using_db(conn).delete()
    if gone:
        await Slot.filter(id=slot_id).using_db(conn).update(held=F("held") - gone)


async def _release_hold(conn, resident_id: int, *, except_slot: int | None = None) -> Hold | None:
    """Drop the resident's hold (if any, and not on except_slot), giving its place back; return
    the hold when it is on except_slot and so kept."""
    current = await Hold.get_or_none(resident_id=resident_id).using_db(conn)
    if current is None or current.slot_id == except_slot:
        return current
    if await Hold.filter(id=current.id).using_db(conn).delete():
        await Slot.filter(id=current.slot_id).using_db(conn).update(held=F("held") - 1)
    return None


async def _take_place(conn, resident_id: int, slot_id: int, now: dt.datetime) -> None:
    """Turn the resident's live hold on the slot into a booked place, or take a free one."""
    converted = await Hold.filter(
        resident_id=resident_id, slot_id=slot_id, expires_at__gt=as_utc(now)
    ).using_db(conn).delete()
    if converted:
        await Slot.filter(id=slot_id).using_db(conn).update(
            held=F("held") - 1, booked=F("booked") + 1
        )
        return
    await _release_hold(conn, resident_id)
    await _sweep_slot(conn, slot_id, now)
    taken = await Slot.filter(Slot.has_room(), id=slot_id).using_db(conn).update(
        booked=F("booked") + 1
    )
    if taken != 1:
        raise Refused(Refusal.FULL)


async def hold(resident: Resident, slot_id: int, *, window: Window, now: dt.datetime,
               minutes: int) -> Hold:
    """Keep a place on the slot for the resident for a few minutes (one hold per person)."""
    await bookable_slot(slot_id, window, now)
    until = as_utc(now) + dt.timedelta(minutes=minutes)

    async def transaction() -> Hold:
        async with in_transaction() as conn:
            await lock_slots(conn, slot_id, holder=resident.id)
            await _sweep_slot(conn, slot_id, now)
            mine = await _release_hold(conn, resident.id, except_slot=slot_id)
            if mine:  # already holding this slot: keep it a little longer
                await Hold.filter(id=mine.id).using_db(conn).update(expires_at=until)
                mine.expires_at = until
                return mine
            taken = await Slot.filter(Slot.has_room(), id=slot_id).using_db(conn).update(
                held=F("held") + 1
            )
            if taken != 1:
                raise Refused(Refusal.FULL)
            return await Hold.create(slot_id=slot_id, resident=resident, expires_at=until,
                                     using_db=conn)

    return await retrying(transaction)


async def live_hold(resident_id: int, now: dt.datetime) -> Hold | None:
    """Their hold, if it has not run out (the time compared here, not in SQL)."""
    held = await fast.one(Hold, "t.resident_id = ?", [resident_id])
    return held if held and held.expires_at > as_utc(now) else None


async def sweep_expired_holds(now: dt.datetime) -> int:
    """Give back the places of every expired hold; return how many slots had some."""
    slot_ids = await Hold.filter(expires_at__lte=as_utc(now)).distinct().values_list(
        "slot_id", flat=True)
    for slot_id in slot_ids:
        async with in_transaction() as conn:
            await _sweep_slot(conn, slot_id, now)
    return len(slot_ids)


async def book(
    resident: Resident, slot_id: int, *, window: Window, now: dt.datetime, notice: Notice,
    request_key: str | None = None, channel: str = "sms",
) -> tuple[Booking, bool]:
    """Book the slot for the resident; return (booking, created). Repeats return the same booking."""
    if request_key:
        again = await fast.one(Booking, "t.request_key = ? AND t.resident_id = ?",
                               [request_key, resident.id])
        if again and again.status == Booking.ACTIVE:
            return again, False
    current = await active_booking(resident.id)
    if current:
        if current.slot_id == slot_id:
            return current, False
        raise Refused(Refusal.BOOKED, current)
    slot = await bookable_slot(slot_id, window, now)

    async def transaction() -> Booking:
        async with in_transaction() as conn:
            await lock_slots(conn, slot_id, holder=resident.id)
            await _take_place(conn, resident.id, slot_id, now)
            booking = await _create_booking(resident, slot, request_key, channel, conn)
            await notice(booking, slot, conn)
            return booking

    try:
        booking = await retrying(transaction)
    except IntegrityError:
        # A twin request won the race (double tap): answer with the booking it made.
        current = await active_booking(resident.id)
        if current and current.slot_id == slot_id:
            return current, False
        raise Refused(Refusal.BOOKED, current) from None
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


async def move(booking: Booking, new_slot_id: int, *, window: Window, now: dt.datetime,
               notice: Notice) -> Booking:
    """Move an active booking to another slot: the new place is taken and the old freed together."""
    if booking.slot_id == new_slot_id:
        return booking
    new_slot = await bookable_slot(new_slot_id, window, now)
    old_slot_id = booking.slot_id
    resident_id = booking.resident_id

    async def transaction() -> None:
        async with in_transaction() as conn:
            await lock_slots(conn, new_slot_id, old_slot_id, holder=resident_id)
            await _take_place(conn, resident_id, new_slot_id, now)
            moved = await Booking.filter(
                id=booking.id, status=Booking.ACTIVE, slot_id=old_slot_id
            ).using_db(conn).update(slot_id=new_slot_id)
            if moved != 1:
                raise Refused(Refusal.GONE)  # cancelled or moved meanwhile: roll back
            await Slot.filter(id=old_slot_id).using_db(conn).update(booked=F("booked") - 1)
            booking.slot_id = new_slot_id
            await notice(booking, new_slot, conn)

    await retrying(transaction)
    return await Booking.get(id=booking.id).select_related("slot__site")


async def cancel(booking: Booking, *, notice: Notice) -> bool:
    """Cancel an active booking and give its place back; False when it was not active any more."""
    async with in_transaction() as conn:
        done = await Booking.filter(id=booking.id, status=Booking.ACTIVE).using_db(conn).update(
            status=Booking.CANCELLED, request_key=None
        )
        if done != 1:
            return False
        await Slot.filter(id=booking.slot_id).using_db(conn).update(booked=F("booked") - 1)
        await notice(booking, None, conn)
    return True
