"""The booking engine's waiting list: a freed place goes straight to the next person in the list's
order, held for them by an offer, inside the very transaction that frees it.

An open offer keeps its place the way a hold does: counted in the slot's `held`, so the public
journey never sees it. Every unit of the engine that frees a place (a cancellation, a move's old
window, a hold given back or run out) ends with `pass_on()`, which offers the slot's free places
to the first people on the list whose choice the window matches, one place each, and writes
their offer SMS beside it. A crash between the two is impossible: they commit together.

The list's order (README, "The waiting list"): whose interval ends soonest, then people aged 70
or more, then the earliest to join. `next_person()` claims the first such person with a
conditional UPDATE, so two transactions that free places at once (PostgreSQL) never offer two
places to one person: the second waits for the first's row lock, finds the person claimed, and
reads the list again.

What words the SMS lives above the engine: the caller hands in an `Offerer`
(booking/waitlist.py builds one from the district) with the hold's lengths, the quiet hours and
`rows()`, which gives the offer's SMS rows. Without an Offerer (engine tests, the demo loader)
nothing is offered.
"""
from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Callable

from ..clock import TZ, as_date, as_utc
from ..db import dialect, fast, unit
from ..db.places import HAS_ROOM, free
from ..db.tables import WaitlistEntry as Entry, WaitlistOffer as Offer
from ..retry import retrying
from ..rules.interval import has_started
from ..tokens import new_link_token, token_hash

NOON = "12:00"  # a window starting before it is a morning one


@dataclass(frozen=True)
class Place:
    """The freed window, as an offer's SMS words it."""

    slot_id: int
    day: dt.date
    start: str
    end: str
    site_id: int
    site_name: str
    site_address: str
    subdistrict: str


@dataclass(frozen=True)
class Person:
    """The person an offer goes to, as read inside the transaction (their phone stays encrypted)."""

    entry_id: int
    resident_id: int
    callback: bool
    name: str
    lang: str
    phone_cipher: str
    phone_masked: str
    phone_hash: str


@dataclass(frozen=True)
class Offerer:
    """What an offer needs from the district: how long it holds a place (`minutes`; a place for
    the same day: `same_day_minutes`), the quiet hours ("21:30", "08:00": no offer SMS between;
    None: any time), and `rows(person, place, token, until, sends_at)`, the rows the offer
    writes with it: its SMS (none for a call-back person)."""

    rows: Callable[[Person, Place, str, dt.datetime, dt.datetime], list[tuple[type, dict]]]
    off_list_rows: Callable[[Person], list[tuple[type, dict]]]
    minutes: int = 120
    same_day_minutes: int = 45
    quiet: tuple[str, str] | None = ("21:30", "08:00")

    def sends_at(self, now: dt.datetime) -> dt.datetime:
        """When an offer made at `now` is sent: now, or the end of the quiet hours."""
        local = now.astimezone(TZ)
        if not self.quiet:
            return now
        begin, end = self.quiet
        clock = local.strftime("%H:%M")
        quiet = (begin <= clock or clock < end) if begin > end else (begin <= clock < end)
        if not quiet:
            return now
        hour, minute = (int(part) for part in end.split(":"))
        morning = local.replace(hour=hour, minute=minute, second=0, microsecond=0)
        return as_utc(morning if morning > local else morning + dt.timedelta(days=1))

    def until(self, place: Place, sends_at: dt.datetime) -> dt.datetime:
        """How long the offer holds the place: from when it is sent, and never past the window's
        start (nobody can book a window that has begun)."""
        local = sends_at.astimezone(TZ)
        minutes = self.same_day_minutes if place.day == local.date() else self.minutes
        hour, minute = (int(part) for part in place.start.split(":"))
        starts = dt.datetime.combine(place.day, dt.time(hour, minute), TZ)
        return as_utc(min(local + dt.timedelta(minutes=minutes), starts))


def _place_sql() -> str:
    return ('SELECT sl."day", sl."start", sl."end", sl.capacity, sl.booked, sl.held, sl.closed_reason, '
            's.active, s.id, s.name, s.address, s.subdistrict '
            'FROM "slot" sl JOIN "site" s ON s.id = sl.site_id WHERE sl.id = ?')


_NEXT_SQL = (
    'SELECT e.id, e.resident_id, e.callback, r.name, r.lang, r.phone_cipher, r.phone_masked, r.phone_hash '
    'FROM "waitlist_entry" e JOIN "resident" r ON r.id = e.resident_id '
    'WHERE e.status = ? AND e.first_day <= ? '
    "AND (e.scope = 'any' OR (e.scope = 'site' AND e.site_id = ?) "
    "OR (e.scope = 'subdistrict' AND e.subdistrict = ?)) "
    "AND e.days IN ('any', ?) AND e.part IN ('any', ?) AND r.second_dose_date IS NULL "
    'AND NOT EXISTS (SELECT 1 FROM "booking" b WHERE b.resident_id = e.resident_id AND b.status = ?) '
    'AND NOT EXISTS (SELECT 1 FROM "waitlist_offer" o WHERE o.entry_id = e.id AND o.slot_id = ?) '
    'AND NOT EXISTS (SELECT 1 FROM "risk_area" k WHERE k.subdistrict = r.subdistrict '
    'AND (k.since IS NULL OR k.since <= ?)) '
    'ORDER BY e.due_by, e.senior DESC, e.joined_at, e.id LIMIT 1')


def next_person(place: Place, today: dt.date):
    """Claim the first person on the list this window suits (their status becomes `offered`);
    None when nobody waits for it."""
    conn = fast.db()
    weekend = "weekends" if place.day.weekday() >= 5 else "weekdays"
    part = "morning" if place.start < NOON else "afternoon"
    for _ in range(50):  # each turn: someone else's transaction claimed them first (PostgreSQL)
        found = yield unit.Rows(_NEXT_SQL, [
            Entry.WAITING, dialect.day(conn, place.day), place.site_id, place.subdistrict, weekend, part,
            "active", place.slot_id, dialect.day(conn, today)])
        if not found:
            return None
        row = found[0]
        claimed = yield unit.Count('UPDATE "waitlist_entry" SET status = ? WHERE id = ? AND status = ?',
                                   [Entry.OFFERED, row[0], Entry.WAITING])
        if claimed == 1:
            return Person(row[0], row[1], bool(row[2]), *row[3:])
    return None


def pass_on(slot_id: int, now: dt.datetime, offers: Offerer | None, *, limit: int | None = None):
    """Offer the slot's free places (at most `limit`) to the list, in order: each a held place,
    an offer and its SMS. How many offers were made. Nothing for a closed, past or started
    window. The caller's unit has the slot locked (engine.lock_slots), or changes it first."""
    if offers is None:
        return 0
    found = yield unit.Rows(_place_sql(), [slot_id])
    if not found:
        return 0
    day, start, end, capacity, booked, held, closed, active, site_id, name, address, subdistrict = found[0]
    day = as_date(day)
    local = now.astimezone(TZ)
    if closed or not active or has_started(day, start, local):
        return 0
    place = Place(slot_id, day, start, end, site_id, name, address, subdistrict)
    sends_at = offers.sends_at(now)
    until = offers.until(place, sends_at)
    if until <= as_utc(max(now, sends_at)) + dt.timedelta(minutes=5):
        return 0  # the window starts too soon for anyone to answer and come
    room = free(capacity, booked, held)
    made = 0
    while made < room and (limit is None or made < limit):
        person = yield from next_person(place, local.date())
        if person is None:
            break
        taken = yield unit.Count(f'UPDATE "slot" SET held = held + 1 WHERE id = ? AND {HAS_ROOM}', [slot_id])
        if taken != 1:  # cannot happen with the slot locked; give the person their turn back
            yield unit.Count('UPDATE "waitlist_entry" SET status = ? WHERE id = ?', [Entry.WAITING, person.entry_id])
            break
        token = new_link_token()
        yield unit.insert(Offer, {
            "entry_id": person.entry_id, "resident_id": person.resident_id, "slot_id": slot_id,
            "token_hash": token_hash(token), "status": Offer.OPEN, "same_day": day == local.date(),
            "callback": person.callback, "created_at": as_utc(now), "sends_at": sends_at,
            "expires_at": until, "answered_at": None})
        if not person.callback:
            for model, row in offers.rows(person, place, token, until, sends_at):
                yield unit.insert(model, row)
        made += 1
    return made


def take(resident_id: int, slot_id: int, now: dt.datetime):
    """The person's open offer on the slot becomes their booked place (the engine's
    `_take_place_work`); False when they have none (or it ran out)."""
    taken = yield unit.Count(
        'UPDATE "waitlist_offer" SET status = ?, answered_at = ? WHERE resident_id = ? AND slot_id = ? '
        'AND status = ? AND expires_at > ?', [Offer.TAKEN, now, resident_id, slot_id, Offer.OPEN, now])
    if not taken:
        return False
    yield unit.Count('UPDATE "slot" SET held = held - 1, booked = booked + 1 WHERE id = ?', [slot_id])
    return True


def offered_slots(resident_id: int):
    """The slots the person's open offers hold (for the engine's lock order)."""
    found = yield unit.Rows('SELECT slot_id FROM "waitlist_offer" WHERE resident_id = ? AND status = ?',
                            [resident_id, Offer.OPEN])
    return [row[0] for row in found]


def _give_back(offer_id: int, slot_id: int, status: str, now: dt.datetime):
    """Close an open offer as `status` and give its place back; False when it was not open."""
    closed = yield unit.Count('UPDATE "waitlist_offer" SET status = ?, answered_at = ? WHERE id = ? AND status = ?',
                              [status, now, offer_id, Offer.OPEN])
    if closed:
        yield unit.Count('UPDATE "slot" SET held = held - 1 WHERE id = ?', [slot_id])
    return bool(closed)


def booked(resident_id: int, now: dt.datetime, offers: Offerer | None):
    """The person booked (any channel, in the booking's own transaction): off the list, and an
    open offer they did not use goes to the next person at once."""
    ended = yield unit.Count(
        'UPDATE "waitlist_entry" SET status = ?, ended_at = ? WHERE resident_id = ? AND status IN (?, ?)',
        [Entry.BOOKED, now, resident_id, Entry.WAITING, Entry.OFFERED])
    if not ended:  # not on the list (an open offer means an entry `offered`): nothing more
        return
    found = yield unit.Rows('SELECT id, slot_id FROM "waitlist_offer" WHERE resident_id = ? AND status = ?',
                            [resident_id, Offer.OPEN])
    for offer_id, slot_id in found:
        if (yield from _give_back(offer_id, slot_id, Offer.WITHDRAWN, now)):
            yield from pass_on(slot_id, now, offers)


def leave(resident_id: int, now: dt.datetime, offers: Offerer | None):
    """The person leaves the list: an open offer's place goes to the next person. False when
    they were not on it."""
    yield from _lock_offered(resident_id)
    left = yield unit.Count('UPDATE "waitlist_entry" SET status = ?, ended_at = ? WHERE resident_id = ? AND status IN (?, ?)',
                            [Entry.LEFT, now, resident_id, Entry.WAITING, Entry.OFFERED])
    found = yield unit.Rows('SELECT id, slot_id FROM "waitlist_offer" WHERE resident_id = ? AND status = ?',
                            [resident_id, Offer.OPEN])
    for offer_id, slot_id in found:
        if (yield from _give_back(offer_id, slot_id, Offer.WITHDRAWN, now)):
            yield from pass_on(slot_id, now, offers)
    return bool(left)


def _lock(slot_ids):
    """Lock these slot rows, lowest id first (PostgreSQL; SQLite's BEGIN IMMEDIATE already has
    the whole database): the engine's lock order, for the units here that start from an offer."""
    if dialect.is_sqlite(fast.db()):
        return
    for slot_id in sorted(set(slot_ids)):
        yield unit.Rows('SELECT id FROM "slot" WHERE id = ? FOR UPDATE', [slot_id])


def _lock_offered(resident_id: int):
    yield from _lock((yield from offered_slots(resident_id)))


def _close(offer_id: int, status: str, now: dt.datetime, *, due: bool = False):
    """Close an open offer as `status` (`due`: only once its time is up) and give its place
    back; its (slot id, entry id), or None when it was not open (or not due)."""
    found = yield unit.Rows('SELECT slot_id, entry_id FROM "waitlist_offer" WHERE id = ? AND status = ? '
                            'AND (? OR expires_at <= ?)', [offer_id, Offer.OPEN, not due, now])
    if not found:
        return None
    slot_id, entry_id = found[0]
    yield from _lock([slot_id])
    if not (yield from _give_back(offer_id, slot_id, status, now)):
        return None
    return slot_id, entry_id


def decline(offer_id: int, now: dt.datetime, offers: Offerer | None):
    """"Not for me": the offer closes, the person stays on the list (their turn kept), and the
    place goes to the next person. False when the offer was not open any more."""
    closed = yield from _close(offer_id, Offer.DECLINED, now)
    if closed is None:
        return False
    slot_id, entry_id = closed
    yield unit.Count('UPDATE "waitlist_entry" SET status = ? WHERE id = ? AND status = ?',
                     [Entry.WAITING, entry_id, Entry.OFFERED])
    yield from pass_on(slot_id, now, offers)
    return True


MAX_EXPIRED = 3  # offers let run out before a person is taken off the list


def expire(offer_id: int, now: dt.datetime, offers: Offerer | None):
    """An offer not answered in time: closed, its place to the next person; the person keeps
    their turn, or after their third offer let expire is taken off the list (with an SMS).
    False when it was answered meanwhile."""
    closed = yield from _close(offer_id, Offer.EXPIRED, now, due=True)
    if closed is None:
        return False
    slot_id, entry_id = closed
    yield unit.Count('UPDATE "waitlist_entry" SET expired_offers = expired_offers + 1 WHERE id = ?', [entry_id])
    gone = yield unit.Count(
        'UPDATE "waitlist_entry" SET status = ?, ended_at = ? WHERE id = ? AND status = ? AND expired_offers >= ?',
        [Entry.REMOVED, now, entry_id, Entry.OFFERED, MAX_EXPIRED])
    if gone and offers is not None:
        person = yield unit.Rows(
            'SELECT e.id, e.resident_id, e.callback, r.name, r.lang, r.phone_cipher, r.phone_masked, r.phone_hash '
            'FROM "waitlist_entry" e JOIN "resident" r ON r.id = e.resident_id WHERE e.id = ?', [entry_id])
        who = Person(person[0][0], person[0][1], bool(person[0][2]), *person[0][3:])
        if not who.callback:
            for model, row in offers.off_list_rows(who):
                yield unit.insert(model, row)
    else:
        yield unit.Count('UPDATE "waitlist_entry" SET status = ? WHERE id = ? AND status = ?',
                         [Entry.WAITING, entry_id, Entry.OFFERED])
    yield from pass_on(slot_id, now, offers)
    return True


def offer_free(slot_ids: list[int], now: dt.datetime, offers: Offerer | None):
    """Offer every free place of these slots to the list (capacity raised, a window opened, a
    same-day leftover): how many offers were made."""
    made = 0
    for slot_id in sorted(set(slot_ids)):
        yield from _lock([slot_id])
        made += yield from pass_on(slot_id, now, offers)
    return made


async def run(work):
    """Run one of the units above, again if PostgreSQL had to abort it (a deadlock)."""
    return await retrying(lambda: unit.run(work()))


async def run_in(conn, work) -> object:
    """Run a unit's statements inside the caller's own transaction (`conn`): a capacity raise
    offers its new places in the same commit."""
    return await unit.run_on(conn, work)


async def due_offers(now: dt.datetime, limit: int = 500) -> list[int]:
    """The open offers whose time is up, oldest first."""
    return await Offer.filter(status=Offer.OPEN, expires_at__lte=as_utc(now)).order_by(
        "expires_at").limit(limit).values_list("id", flat=True)
