"""The booking engine: holding, booking, moving and cancelling places, and marking no-shows,
without ever overbooking: the one place that writes them.

Places are counted on the slot row: `booked` (active bookings) and `held` (hold rows). Every
change is a conditional UPDATE on that row inside one transaction, e.g.
`UPDATE slot SET booked = booked + 1 WHERE id = ? AND held < capacity - booked`; a row count of 0
means full. On SQLite the transaction is BEGIN IMMEDIATE (one writer at a time, across
processes); on PostgreSQL the UPDATE's row lock makes racers queue and re-check the condition.
The database itself refuses `booked + held > capacity` and a second active booking per person
(models/db/migrations/0002_constraints.py), so a bug here fails loudly instead of overbooking.

Each change is a unit (models/db/unit.py): a transaction written once as SQL statements, run in
one go on SQLite and step by step on PostgreSQL. Its SQL lives here, the rules it tests (a slot
has room, a window has started) in models/db/places.py.

The engine decides nothing about who may book (that is `booking.service`) and words no message:
a refusal is `rules.eligibility.Refused`, and the caller hands in a `Notice`, the rows (SMS, a
new link) written inside the booking's own transaction.
"""
from __future__ import annotations

import datetime as dt
from functools import lru_cache
from typing import Callable

from tortoise import timezone
from tortoise.exceptions import IntegrityError

from ..booking_codes import new_booking_code
from ..channel import Channel
from ..clock import as_utc
from ..db import dialect, fast, unit
from ..db.places import HAS_ROOM
from ..db.tables import Booking, Hold, Resident, Site, Slot, WaitlistOffer
from ..people.residents import active_booking
from ..retry import retrying
from ..rules.eligibility import Refusal, Refused
from ..rules.interval import Window
from . import offers as waitlist
from .offers import Offerer

class Notice:
    """What a booking made, moved or cancelled tells the person: `rows(booking, slot)` (slot: the
    new one with its site, None for a cancellation) gives the rows the change writes with it
    ((table, {column: value}): the SMS, a new link), worked out before the transaction, so the
    unit only inserts them."""

    def __init__(self, rows: Callable[[Booking, "Slot | None"], list[tuple[type, dict]]]):
        self.rows = rows


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


async def hold(resident: Resident, slot_id: int, *, window: Window, now: dt.datetime,
               minutes: int, offers: Offerer | None = None) -> Hold:
    """Keep a place on the slot for the resident for a few minutes (one hold per person). A
    place given back on the way (their hold elsewhere, holds run out) goes to the waiting list
    (`offers`)."""
    await bookable_slot(slot_id, window, now)
    until = as_utc(now) + dt.timedelta(minutes=minutes)
    hold_id = await retrying(lambda: unit.run(_hold_work(resident.id, slot_id, as_utc(now), until, offers)))
    held = Hold(id=hold_id, slot_id=slot_id, resident_id=resident.id, expires_at=until)
    held._saved_in_db = True
    return held


def _hold_work(resident_id: int, slot_id: int, now: dt.datetime, until: dt.datetime,
               offers: Offerer | None):
    """hold()'s transaction (models/db/unit.py): the id of the resident's hold on the slot."""
    yield from lock_slots(slot_id, holder=resident_id)
    yield from _sweep_work(slot_id, now, offers)
    mine = yield from _release_work(resident_id, now, offers, except_slot=slot_id)
    if mine:  # already holding this slot: keep it a little longer
        yield unit.Count('UPDATE "hold" SET expires_at = ? WHERE id = ?', [until, mine])
        return mine
    taken = yield unit.Count(f'UPDATE "slot" SET held = held + 1 WHERE id = ? AND {HAS_ROOM}', [slot_id])
    if taken != 1:
        raise Refused(Refusal.FULL)
    created = yield unit.insert(Hold, {"slot_id": slot_id, "resident_id": resident_id, "expires_at": until})
    return created[0][0]


def lock_slots(*slot_ids: int | None, holder: int | None = None):
    """Lock, lowest id first, every slot row the unit will change, with the slot the resident
    `holder` holds. On PostgreSQL two transactions that each change two slots would otherwise lock
    them in opposite orders and deadlock. On SQLite the whole database is already locked by BEGIN
    IMMEDIATE: nothing is asked."""
    if dialect.is_sqlite(fast.db()):
        return
    if holder is not None:  # their hold and their waiting-list offers: given back or taken
        held = yield unit.Rows('SELECT slot_id FROM "hold" WHERE resident_id = ? UNION ALL '
                               'SELECT slot_id FROM "waitlist_offer" WHERE resident_id = ? AND status = ?',
                               [holder, holder, WaitlistOffer.OPEN])
        slot_ids = (*slot_ids, *(row[0] for row in held))
    for slot_id in sorted({i for i in slot_ids if i}):
        yield unit.Rows('SELECT id FROM "slot" WHERE id = ? FOR UPDATE', [slot_id])


def _sweep_work(slot_id: int, now: dt.datetime, offers: Offerer | None):
    """Give back the places of this slot's expired holds: to the waiting list first."""
    gone = yield unit.Count('DELETE FROM "hold" WHERE slot_id = ? AND expires_at <= ?', [slot_id, now])
    if gone:
        yield unit.Count('UPDATE "slot" SET held = held - ? WHERE id = ?', [gone, slot_id])
        yield from waitlist.pass_on(slot_id, now, offers)


def _release_work(resident_id: int, now: dt.datetime, offers: Offerer | None, *,
                  except_slot: int | None = None):
    """Drop the resident's hold (if any, and not on except_slot), giving its place back (to the
    waiting list first); the id of the hold when it is on except_slot and so kept."""
    found = yield unit.Rows('SELECT id, slot_id FROM "hold" WHERE resident_id = ?', [resident_id])
    if not found:
        return None
    hold_id, held_slot = found[0]
    if held_slot == except_slot:
        return hold_id
    if (yield unit.Count('DELETE FROM "hold" WHERE id = ?', [hold_id])):
        yield unit.Count('UPDATE "slot" SET held = held - 1 WHERE id = ?', [held_slot])
        yield from waitlist.pass_on(held_slot, now, offers)
    return None


def _take_place_work(resident_id: int, slot_id: int, now: dt.datetime, offers: Offerer | None):
    """The resident's live waiting-list offer or hold on the slot becomes a booked place, or a
    free place is taken (Refused FULL when there is none)."""
    converted = yield unit.Count('DELETE FROM "hold" WHERE resident_id = ? AND slot_id = ? AND expires_at > ?',
                                 [resident_id, slot_id, now])
    if converted:
        yield unit.Count('UPDATE "slot" SET held = held - 1, booked = booked + 1 WHERE id = ?', [slot_id])
        return
    if (yield from waitlist.take(resident_id, slot_id, now)):
        yield from _release_work(resident_id, now, offers)
        return
    yield from _release_work(resident_id, now, offers)
    yield from _sweep_work(slot_id, now, offers)
    taken = yield unit.Count(f'UPDATE "slot" SET booked = booked + 1 WHERE id = ? AND {HAS_ROOM}', [slot_id])
    if taken != 1:
        raise Refused(Refusal.FULL)


async def live_hold(resident_id: int, now: dt.datetime) -> Hold | None:
    """Their hold, if it has not run out (the time compared here, not in SQL)."""
    held = await fast.one(Hold, resident_id=resident_id)
    return held if held and held.expires_at > as_utc(now) else None


async def sweep_expired_holds(now: dt.datetime, offers: Offerer | None = None) -> int:
    """Give back the places of every expired hold (to the waiting list first); return how many
    slots had some."""
    slot_ids = await Hold.filter(expires_at__lte=as_utc(now)).distinct().values_list(
        "slot_id", flat=True)
    for slot_id in slot_ids:
        await retrying(lambda: unit.run(_sweep_work(slot_id, as_utc(now), offers)))
    return len(slot_ids)


async def book(
    resident: Resident, slot_id: int, *, window: Window, now: dt.datetime, notice: Notice,
    request_key: str | None = None, channel: str = Channel.SMS, offers: Offerer | None = None,
) -> tuple[Booking, bool]:
    """Book the slot for the resident; return (booking, created). Repeats return the same booking.
    The booking ends their place on the waiting list; an offer they leave unused goes on."""
    if request_key:
        again = await fast.one(Booking, request_key=request_key, resident_id=resident.id)
        if again and again.status == Booking.ACTIVE:
            return again, False
    current = await active_booking(resident.id)
    if current:
        if current.slot_id == slot_id:
            return current, False
        raise Refused(Refusal.BOOKED, current)
    slot = await bookable_slot(slot_id, window, now)

    def transaction():
        booking = Booking(code=new_booking_code(), resident_id=resident.id, slot_id=slot_id,
                          status=Booking.ACTIVE, request_key=request_key, channel=channel)
        booking.slot = slot
        # The SMS and link rows (encryption included) worked out here, before the write lock.
        return unit.run(_book_work(booking, as_utc(now), notice, notice.rows(booking, slot), offers))

    try:
        booking = await retrying(transaction)
    except IntegrityError:
        # A twin request won the race (double tap): answer with the booking it made.
        current = await active_booking(resident.id)
        if current and current.slot_id == slot_id:
            return current, False
        raise Refused(Refusal.BOOKED, current) from None
    return booking, True


def _book_work(booking: Booking, now: dt.datetime, notice: Notice,
               notice_rows: list[tuple[type, dict]], offers: Offerer | None):
    """book()'s transaction (models/db/unit.py): the place taken, the booking written (a new code
    if its random one is taken: 5 tries), and the notice's rows (SMS, link) with it."""
    yield from lock_slots(booking.slot_id, holder=booking.resident_id)
    yield from _take_place_work(booking.resident_id, booking.slot_id, now, offers)
    yield from waitlist.booked(booking.resident_id, now, offers)
    for _ in range(4):
        if not (yield unit.Rows('SELECT 1 FROM "booking" WHERE code = ?', [booking.code])):
            break
        booking.code = new_booking_code()
        notice_rows = notice.rows(booking, booking.slot)  # (seldom) the SMS names the code
    booking.created_at = booking.updated_at = timezone.now()
    created = yield unit.insert(Booking, {
        "code": booking.code, "resident_id": booking.resident_id, "slot_id": booking.slot_id,
        "status": booking.status, "request_key": booking.request_key, "channel": booking.channel,
        "created_at": booking.created_at, "updated_at": booking.updated_at})
    booking.id = created[0][0]
    booking._saved_in_db = True
    for model, row in notice_rows:
        yield unit.insert(model, row)
    return booking


async def move(booking: Booking, new_slot_id: int, *, window: Window, now: dt.datetime,
               notice: Notice, offers: Offerer | None = None) -> Booking:
    """Move an active booking to another slot: the new place is taken and the old freed together
    (offered to the waiting list in the same transaction)."""
    if booking.slot_id == new_slot_id:
        return booking
    new_slot = await bookable_slot(new_slot_id, window, now)
    notice_rows = notice.rows(booking, new_slot)  # before the write lock, as book() does
    await retrying(lambda: unit.run(_move_work(booking, new_slot_id, as_utc(now), notice_rows, offers)))
    booking.slot_id = new_slot_id
    return await Booking.get(id=booking.id).select_related("slot__site")


def _move_work(booking: Booking, new_slot_id: int, now: dt.datetime,
               notice_rows: list[tuple[type, dict]], offers: Offerer | None):
    """move()'s transaction (models/db/unit.py)."""
    old_slot_id = booking.slot_id
    yield from lock_slots(new_slot_id, old_slot_id, holder=booking.resident_id)
    yield from _take_place_work(booking.resident_id, new_slot_id, now, offers)
    moved = yield unit.Count('UPDATE "booking" SET slot_id = ? WHERE id = ? AND status = ? AND slot_id = ?',
                             [new_slot_id, booking.id, Booking.ACTIVE, old_slot_id])
    if moved != 1:
        raise Refused(Refusal.GONE)  # cancelled or moved meanwhile: roll back
    yield unit.Count('UPDATE "slot" SET booked = booked - 1 WHERE id = ?', [old_slot_id])
    for model, row in notice_rows:
        yield unit.insert(model, row)
    yield from waitlist.pass_on(old_slot_id, now, offers)


async def cancel(booking: Booking, *, notice: Notice, only_on_its_slot: bool = False,
                 now: dt.datetime | None = None, offers: Offerer | None = None) -> bool:
    """Cancel an active booking and give its place back (offered to the waiting list in the same
    transaction); False when it was not active any more (or, `only_on_its_slot`, when it was
    moved off `booking.slot_id` meanwhile)."""
    notice_rows = notice.rows(booking, None)  # before the write lock, as book() does
    when = as_utc(now or timezone.now())
    return await retrying(lambda: unit.run(_cancel_work(booking.id, booking.slot_id, notice_rows,
                                                        only_on_its_slot, when, offers)))


def _cancel_work(booking_id: int, slot_id: int, notice_rows: list[tuple[type, dict]],
                 only_there: bool, now: dt.datetime, offers: Offerer | None):
    """cancel()'s transaction (models/db/unit.py): the booking cancelled on the slot it is on (its
    row locked first, as every unit locks the slots it changes), the place given back."""
    for _ in range(3):  # moved meanwhile (PostgreSQL): lock the slot it is on now, and again
        yield from lock_slots(slot_id)
        done = yield unit.Count(
            'UPDATE "booking" SET status = ?, request_key = NULL WHERE id = ? AND status = ? AND slot_id = ?',
            [Booking.CANCELLED, booking_id, Booking.ACTIVE, slot_id])
        if done == 1:
            yield unit.Count('UPDATE "slot" SET booked = booked - 1 WHERE id = ?', [slot_id])
            for model, row in notice_rows:
                yield unit.insert(model, row)
            yield from waitlist.pass_on(slot_id, now, offers)
            return True
        if only_there:
            return False
        found = yield unit.Rows('SELECT slot_id FROM "booking" WHERE id = ? AND status = ?',
                                [booking_id, Booking.ACTIVE])
        if not found:
            return False
        slot_id = found[0][0]
    return False


async def mark_no_shows(site_id: int, day: dt.date) -> int:
    """Mark every booking still active at the site that day as a no-show and give its place back,
    in one transaction; how many."""
    return await retrying(lambda: unit.run(_no_shows_work(site_id, day)))


def _no_shows_work(site_id: int, day: dt.date):
    """mark_no_shows()'s transaction (models/db/unit.py): per slot of the day, its active bookings
    become no-shows and their places are given back."""
    found = yield unit.Rows('SELECT id FROM "slot" WHERE site_id = ? AND "day" = ? ORDER BY id',
                            [site_id, dialect.day(fast.db(), day)])
    slot_ids = [row[0] for row in found]
    yield from lock_slots(*slot_ids)
    total = 0
    for slot_id in slot_ids:
        gone = yield unit.Count(
            'UPDATE "booking" SET status = ?, request_key = NULL WHERE slot_id = ? AND status = ?',
            [Booking.NO_SHOW, slot_id, Booking.ACTIVE])
        if gone:
            yield unit.Count('UPDATE "slot" SET booked = booked - ? WHERE id = ?', [gone, slot_id])
            total += gone
    return total
