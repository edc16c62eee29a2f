"""Booking, moving and cancelling a list: through the booking service a person at a time, each in
the service's own transactions (`choose` holds, `confirm` books or moves, `cancel`), channel
"group": a group racing a crowd never overbooks, and what a row says the person got is what was
written. The booking form carries a key; each person's request key is made from it and their row,
so a form posted twice books nobody twice. A list's own bookings (GroupMember.booking) are the
ones its move and cancel act on; a booking the person made themselves is left alone."""
from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field

from tortoise.expressions import F
from tortoise.transactions import in_transaction

from ...booking import service
from ...booking.service import Standing
from ...booking_codes import format_code
from ...channel import Channel
from ...db.tables import Booking, GroupList, GroupMember, Slot, StaffUser
from ...district import District
from ...rules.eligibility import Refusal, Refused
from ...staff.scope import Area
from .errors import Changed
from .pages import ListPage, list_page, move_page
from .picker import chosen_slots
from .standing import (ALREADY_BOOKED, BOOK, BOOKED, CANCEL, CANCELLED, FULL, MOVE, MOVED, NOT_ALLOWED,
                       NOT_OURS, UNCHANGED, Row, rows_of)
from .storage import find_list


@dataclass(frozen=True)
class Change:
    """A booking made, moved or cancelled by an action (for the audit trail)."""

    kind: str  # book, move or cancel
    resident_id: int
    booking: Booking
    where: str = ""  # site code, day and start of a booking made or moved

    @property
    def detail(self) -> str:
        return f"{format_code(self.booking.code)} {self.where}".strip()


@dataclass(frozen=True)
class Done:
    group: GroupList
    changes: list[Change] = field(default_factory=list)
    outside: list[GroupMember] = field(default_factory=list)  # rows refused: another sub-district


def request_key(key: str, member: GroupMember) -> str:
    """One booking form's key for one row: the same form posted again finds the same booking."""
    return f"group-{member.id}-{key}"[:64]


async def _start(group: GroupList, action: str, now: dt.datetime) -> int:
    """Number a new action on the list; its rows' outcomes carry the number."""
    async with in_transaction() as conn:
        await GroupList.filter(id=group.id).using_db(conn).update(
            runs=F("runs") + 1, last_action=action, last_at=now)
        fresh = await GroupList.get(id=group.id).using_db(conn)
    group.runs, group.last_action, group.last_at = fresh.runs, fresh.last_action, fresh.last_at
    return fresh.runs


async def _record(member: GroupMember, run: int, outcome: str, booking: Booking | None = None) -> None:
    values = {"outcome": outcome, "run": run}
    if booking is not None:
        values["booking_id"] = booking.id
    await GroupMember.filter(id=member.id).update(**values)


async def _place(district: District, standing: Standing, slots: list[Slot], full: set[int], *,
                 key: str | None) -> tuple[str, Booking | None, bool]:
    """Hold and confirm the first chosen window with room: (outcome, booking, changed)."""
    why = NOT_ALLOWED
    for slot in slots:
        if slot.id in full:
            why = FULL
            continue
        try:
            await service.choose(district, standing, slot.id)
            placed = await service.confirm(district, standing, slot.id, request_key=key,
                                           channel=Channel.GROUP, chosen=slot.id)
        except Refused as exc:
            if exc.reason == Refusal.FULL:
                full.add(slot.id)  # full for everyone after this one too
                why = FULL
                continue
            if exc.reason == Refusal.NOT_ALLOWED:
                continue
            if exc.reason == Refusal.BOOKED and exc.booking is not None:  # booked meanwhile
                same = key is not None and exc.booking.request_key == key
                return (BOOKED if same else ALREADY_BOOKED), exc.booking if same else None, False
            return exc.reason.value, None, False
        if placed.kind == "book" and not placed.changed and placed.booking.request_key != key:
            return ALREADY_BOOKED, None, False  # they booked this very window themselves meanwhile
        return (BOOKED if placed.kind == "book" else MOVED), placed.booking, placed.changed
    return why, None, False


def _where(booking: Booking) -> str:
    slot = booking.slot  # loaded with its site by the engine, for a booking made or moved
    return f"{slot.site.code} {slot.day} {slot.start}"


def _same_as_shown(page: ListPage, site_id: int | None, day: dt.date | None, shown: str) -> None:
    """Raise Changed unless the choice posted gives the page the clerk looked at: the same site
    and day (the picker falls back to others for ones it does not offer) and the same digest."""
    p = page.picker
    if not shown or shown != p.digest or (p.site.id if p.site else None) != site_id or p.day != day:
        raise Changed(page)


async def book_shown(district: District, user: StaffUser, list_id: int | None, *,
                     site_id: int | None, day: dt.date | None, slot_ids: list[int], shown: str,
                     key: str) -> Done:
    """Book the list as its page showed it (`shown`: the page's Picker.digest) for the site, day
    and windows posted; Changed (nothing booked) when that choice no longer gives that page."""
    page = await list_page(district, user, list_id, site_id=site_id, day=day, slot_ids=slot_ids)
    now = district.clock.now()
    if await _posted_again(page.rows, key, slot_ids):  # a double click, or back and post again
        return await _book(district, page.group, page.rows, await chosen_slots(slot_ids, now), now, key=key)
    _same_as_shown(page, site_id, day, shown)
    slots = await chosen_slots([w.id for w in page.picker.chosen], now)
    return await _book(district, page.group, page.rows, slots, now, key=key)


async def _posted_again(rows: list[Row], key: str, slot_ids: list[int]) -> bool:
    """The same booking form posted again: its key has booked people, in the windows posted.
    The page it showed is no more (those people are booked now), but it is the same action:
    done again, it finds the same bookings (request_key) and books nobody twice."""
    keys = [request_key(key, r.member) for r in rows]
    made = set(await Booking.filter(request_key__in=keys).values_list("slot_id", flat=True)) if keys else set()
    return bool(made) and made <= set(slot_ids)


async def move_shown(district: District, user: StaffUser, list_id: int | None, *,
                     member_id: int | None, site_id: int | None, day: dt.date | None,
                     slot_ids: list[int], shown: str) -> Done:
    """Move as the move page showed it (see book_shown())."""
    page = await move_page(district, user, list_id, member_id=member_id, site_id=site_id, day=day,
                           slot_ids=slot_ids)
    _same_as_shown(page, site_id, day, shown)
    return await move(district, user, list_id, [w.id for w in page.picker.chosen], member_id=member_id)


async def book(district: District, user: StaffUser, list_id: int | None, slot_ids: list[int], *,
               key: str) -> Done:
    """Book every eligible row into the chosen windows (earliest first, in row order, as far as
    places go); every other row gets its reason as its outcome. `key` is the booking form's."""
    group = await find_list(user, list_id)
    now = district.clock.now()
    slots = await chosen_slots(slot_ids, now)
    rows = await rows_of(district, group, Area.of(user))
    return await _book(district, group, rows, slots, now, key=key)


async def _book(district: District, group: GroupList, rows: list[Row], slots: list[Slot],
                now: dt.datetime, *, key: str) -> Done:
    run = await _start(group, BOOK, now)
    done = Done(group)
    full: set[int] = set()
    for row in rows:
        rk = request_key(key, row.member)
        booking = None
        if row.status == Refusal.BOOKED:
            same = row.booking.request_key == rk  # this very form, posted again
            outcome, booking = (BOOKED, row.booking) if same else (ALREADY_BOOKED, None)
        elif row.eligible:
            outcome, booking, changed = await _place(district, row.standing, slots, full, key=rk)
            if changed:
                done.changes.append(Change(BOOK, row.standing.resident.id, booking, _where(booking)))
        else:
            outcome = row.status
            if row.outside:
                done.outside.append(row.member)
        await _record(row.member, run, outcome, booking)
    return done


async def move(district: District, user: StaffUser, list_id: int | None, slot_ids: list[int], *,
               member_id: int | None = None) -> Done:
    """Move the list's bookings (or one person's) into the chosen windows, through the booking
    service's confirm-move: someone already in a chosen window stays where they are."""
    group = await find_list(user, list_id)
    now = district.clock.now()
    slots = await chosen_slots(slot_ids, now)
    rows = await rows_of(district, group, Area.of(user))
    rows = [r for r in rows if member_id is None or r.member.id == member_id]
    if member_id is None:
        rows = [r for r in rows if r.ours]
    run = await _start(group, MOVE, now)
    done = Done(group)
    full: set[int] = set()
    for row in rows:
        booking = None
        if not row.ours:
            outcome = NOT_OURS
        elif row.standing.restricted:
            outcome = Refusal.RESTRICTED.value
        elif row.booking.slot_id in {s.id for s in slots}:
            outcome = UNCHANGED
        else:
            outcome, booking, changed = await _place(district, row.standing, slots, full, key=None)
            if changed:
                done.changes.append(Change(MOVE, row.standing.resident.id, booking, _where(booking)))
        await _record(row.member, run, outcome, booking)
    return done


async def cancel(district: District, user: StaffUser, list_id: int | None, *,
                 member_id: int | None = None) -> Done:
    """Cancel the list's bookings (or one person's) through the booking service."""
    group = await find_list(user, list_id)
    rows = await rows_of(district, group, Area.of(user))
    rows = [r for r in rows if member_id is None or r.member.id == member_id]
    if member_id is None:
        rows = [r for r in rows if r.ours]
    run = await _start(group, CANCEL, district.clock.now())
    done = Done(group)
    for row in rows:
        outcome = NOT_OURS
        if row.ours:
            booking, cancelled = await service.cancel(district, row.standing.resident.id, row.booking.id)
            outcome = CANCELLED if cancelled else NOT_OURS
            if cancelled:
                done.changes.append(Change(CANCEL, row.standing.resident.id, booking))
        await _record(row.member, run, outcome)
    return done
