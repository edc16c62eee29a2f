"""The booking service: one function per thing a person does, called by every channel.

Where a person stands (`stand`), choosing a window (`choose`, which holds it), keeping that
hold on the check page (`keep_hold`), confirming (`confirm`: book or move, idempotent) and
cancelling (`cancel`). The resident's link, the call centre and every later channel call these
and only word the outcome; none of them talks to the engine or the tables itself.
"""
from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from functools import cached_property
from typing import Callable

from .. import metrics
from ..channel import LINKLESS, Channel
from ..db.tables import Booking, Hold, Link, Resident, Slot, SmsMessage
from ..district import District
from ..messaging import wording
from ..messaging.outbox import message_values
from ..messaging.sms import Sms
from ..people.links import link_url, new_link
from ..people.pii import Vault, mask_name
from ..people.residents import active_booking, birth_date_of, is_restricted
from ..rules.eligibility import Refusal, Refused, needs_companion, refusal
from ..rules.interval import Window
from . import availability, engine, waitlist


@dataclass(frozen=True)
class Standing:
    """Where a person stands at a moment: their window, their booking, why they cannot book (if so)."""

    resident: Resident
    now: dt.datetime
    window: Window
    booking: Booking | None  # the active one, slot and site loaded
    refusal: Refusal | None
    vault: Vault = field(repr=False)  # reads the birth date from the encrypted ID number (rule 8)
    restricted: bool = False

    @cached_property
    def born(self) -> dt.date:
        """Read from the encrypted ID number (only the year is stored), on the pages that need it
        (rule 8's note): not on every page a Standing serves (issue 25)."""
        return birth_date_of(self.vault, self.resident)

    @property
    def today(self) -> dt.date:
        return self.now.date()

    @property
    def can_choose(self) -> bool:
        """May go through site and time choice: to book, or to move an existing booking."""
        return self.refusal is None or (self.refusal == Refusal.BOOKED and not self.restricted)

    @property
    def name(self) -> str:
        return mask_name(self.resident.name)

    @property
    def late(self) -> bool:
        """Today is past the recommended date (rule 3)."""
        return self.window.is_late(self.today)

    @property
    def companion(self) -> bool:
        """They are 70 or more today (rule 8)."""
        return self.needs_companion(self.today)

    def is_late(self, day: dt.date) -> bool:
        """A second dose on `day` is past the recommended date (rule 3)."""
        return self.window.is_late(day)

    def needs_companion(self, day: dt.date) -> bool:
        """They must come with a family member on `day` (rule 8)."""
        return needs_companion(self.born, day)


@dataclass(frozen=True)
class Placed:
    """What a confirmation did. When `changed`, the booking comes with its window and site loaded
    (booking.slot.site), so the channel words its answer and its audit line without a query."""

    booking: Booking
    kind: str  # "book" or "move"
    changed: bool  # False for a repeated submission: nothing new happened


async def stand(district: District, resident: Resident, now: dt.datetime | None = None) -> Standing:
    """Apply rules 1-4 (and 'no room anywhere') to the resident as of now."""
    now = now or district.clock.now()
    window = district.rules.window(resident.first_dose_date, resident.vaccine)
    booking = await active_booking(resident.id)
    restricted = await is_restricted(resident, now.date())
    why = refusal(
        second_dose_given=resident.second_dose_date is not None,
        restricted=restricted,
        has_active_booking=booking is not None,
        window=window,
        today=now.date(),
    )
    if (why is None and not await availability.any_free(window, now)
            and await engine.live_hold(resident.id, now) is None  # their own held place counts
            and not await waitlist.has_open_offer(resident.id, now)):  # and one offered them
        why = Refusal.NO_ROOM
    return Standing(resident, now, window, booking, why, district.vault, restricted)


def _may_choose(standing: Standing) -> None:
    if not standing.can_choose:
        raise Refused(standing.refusal, standing.booking)


async def chosen_slot(standing: Standing, slot_id: int | None) -> Slot | None:
    """The slot (site loaded) if it may still be booked by this person now; else None."""
    try:
        return await engine.bookable_slot(slot_id or 0, standing.window, standing.now)
    except Refused:
        return None


async def choose(district: District, standing: Standing, slot_id: int) -> Hold:
    """Hold the chosen window for a few minutes while the person checks their answers."""
    _may_choose(standing)
    return await engine.hold(standing.resident, slot_id, window=standing.window, now=standing.now,
                             minutes=district.hold_minutes, offers=waitlist.offerer(district))


async def current_hold(standing: Standing, slot_id: int) -> Hold | None:
    """Their live hold, if it is on this slot."""
    held = await engine.live_hold(standing.resident.id, standing.now)
    return held if held and held.slot_id == slot_id else None


async def keep_hold(district: District, standing: Standing, slot_id: int) -> Hold:
    """Their hold on the slot, taken again if it ran out while they were away (Refused if full)."""
    return await current_hold(standing, slot_id) or await choose(district, standing, slot_id)



def _notice(district: District, resident: Resident, kind: str, channel: str = Channel.SMS) -> engine.Notice:
    """The SMS the engine queues inside the booking's transaction, worded by messaging.

    Booked or moved by the call centre, from a group list, or after the public phone-code way in:
    the person may never have had a link, so the SMS carries a new one (issued in the same
    transaction) to see, move or cancel the booking."""

    # Worked out here, before the engine's write lock: the birth date the SMS's rule 8 note needs.
    born = birth_date_of(district.vault, resident) if kind != "cancel" else None

    def rows(booking: Booking, slot: Slot | None) -> list[tuple[type, dict]]:
        written: list[tuple[type, dict]] = []
        if kind != "cancel" and channel in LINKLESS:
            token, link = new_link(now=district.clock.now(), days_valid=district.link_days_valid)
            written.append((Link, {**link, "resident_id": resident.id}))
            sms = wording.callcentre_booking_sms(resident, booking, slot, link_url(district.base_url, token),
                                                 born=born, moved=kind == "move")
        else:
            sms = (wording.cancel_sms(resident, booking) if kind == "cancel"
                   else wording.booking_sms(resident, booking, slot, born=born, moved=kind == "move"))
        written.append((SmsMessage, {**message_values(district.vault, resident, sms, kind=kind),
                                     "resident_id": resident.id}))
        return written

    notify = engine.Notice(rows)
    return notify


async def confirm(district: District, standing: Standing, slot_id: int, *,
                  request_key: str | None, channel: Channel, chosen: int | None) -> Placed:
    """Book the slot, or move the person's booking there: one booking per confirm form (rule 6).

    `chosen` is the window the channel recorded the person choosing and holding (the resident's
    journey; the window the agent's check page read back). A confirmation for any other window
    is refused, unless it repeats one already made.
    """
    _may_choose(standing)
    resident, current = standing.resident, standing.booking
    repeat = current is not None and request_key and current.request_key == request_key
    if slot_id != chosen and not repeat:
        raise Refused(Refusal.NOT_CHOSEN, current)
    if current is None or repeat:
        booking, created = await engine.book(
            resident, slot_id, window=standing.window, now=standing.now, request_key=request_key,
            channel=channel, notice=_notice(district, resident, "confirm", channel),
            offers=waitlist.offerer(district))
        if created:
            metrics.booked(channel)
        return Placed(booking, "book", created)
    if current.slot_id == slot_id:
        return Placed(current, "move", False)
    moved = await engine.move(current, slot_id, window=standing.window, now=standing.now,
                              notice=_notice(district, resident, "move", channel),
                              offers=waitlist.offerer(district))
    metrics.moved(channel)
    return Placed(moved, "move", True)


async def cancel(district: District, resident_id: int, booking_id: int, *,
                 channel: str | None = None) -> tuple[Booking | None, bool]:
    """Cancel the person's booking and give the place back; (booking, True) when it was active.
    `channel`: who cancelled, for the metrics (default: the channel the booking was made by)."""
    found = await Booking.get_or_none(id=booking_id, resident_id=resident_id).select_related("resident")
    if found is None:
        return None, False
    done = await engine.cancel(found, notice=_notice(district, found.resident, "cancel"),
                               now=district.clock.now(), offers=waitlist.offerer(district))
    if done:
        metrics.cancelled(channel or found.channel)
    return found, done


async def cancel_because(district: District, resident_id: int, booking_id: int, *, kind: str,
                         sms: Callable[[Resident, Booking], Sms]) -> tuple[Booking | None, bool]:
    """Cancel like `cancel`, for a reason of the district's (a risk area): the SMS queued with it
    is `sms(resident, booking)` (worded in messaging) and recorded as `kind`."""
    found = await Booking.get_or_none(id=booking_id, resident_id=resident_id).select_related("resident")
    if found is None:
        return None, False

    def rows(booking: Booking, slot: Slot | None) -> list[tuple[type, dict]]:
        return [(SmsMessage, {**message_values(district.vault, found.resident, sms(found.resident, booking),
                                               kind=kind), "resident_id": found.resident_id})]

    done = await engine.cancel(found, notice=engine.Notice(rows), now=district.clock.now(),
                               offers=waitlist.offerer(district))
    if done:
        metrics.cancelled("district")
    return found, done


async def move_off_closed(district: District, booking: Booking, slot_id: int) -> Booking:
    """The district moves a booking off a closed window into `slot_id`, through the engine like
    any move (the person's interval rules apply; Refused FULL, NOT_ALLOWED or GONE); the SMS,
    queued in the same transaction, says it was moved because of the closure.
    `booking` has its resident loaded."""
    resident = booking.resident
    window = district.rules.window(resident.first_dose_date, resident.vaccine)
    born = birth_date_of(district.vault, resident)

    def rows(moved: Booking, slot: Slot | None) -> list[tuple[type, dict]]:
        sms = wording.closure_move_sms(resident, moved, slot, born=born)
        return [(SmsMessage, {**message_values(district.vault, resident, sms, kind="closure_move"),
                              "resident_id": resident.id})]

    notify = engine.Notice(rows)
    moved = await engine.move(booking, slot_id, window=window, now=district.clock.now(), notice=notify,
                              offers=waitlist.offerer(district))
    metrics.moved("district")
    return moved


async def cancel_off_closed(district: District, booking: Booking, closed_day: dt.date) -> bool:
    """The district cancels a booking on a closed window, through the engine; the SMS, queued in
    the same transaction, carries a new personal link to book again. False (nothing written) when
    the booking is no longer active on that window: cancelled or moved meanwhile.
    `booking` has its resident loaded."""
    resident = booking.resident
    now = district.clock.now()

    def rows(cancelled: Booking, slot: Slot | None) -> list[tuple[type, dict]]:
        token, link = new_link(now=now, days_valid=district.link_days_valid)
        sms = wording.closure_cancel(resident, closed_day, link_url(district.base_url, token))
        return [(Link, {**link, "resident_id": resident.id}),
                (SmsMessage, {**message_values(district.vault, resident, sms, kind="closure_cancel"),
                              "resident_id": resident.id})]

    # Moved by another run meanwhile (active, but not on this window): nothing written.
    done = await engine.cancel(booking, notice=engine.Notice(rows), only_on_its_slot=True,
                               now=now, offers=waitlist.offerer(district))
    if done:
        metrics.cancelled("district")
    return done


async def confirm_offer(district: District, offer_id: int, *, request_key: str | None) -> Placed:
    """Take a waiting-list offer: the offered window booked like any confirmation (the engine
    turns the offer's held place into the booking). Refused GONE when the offer is not open any
    more (taken, declined, run out); the journey's own reasons otherwise."""
    offer = await waitlist.offer_by_id(offer_id)
    if offer is None:
        raise Refused(Refusal.GONE)
    standing = await stand(district, offer.resident)
    repeat = standing.booking is not None and request_key and standing.booking.request_key == request_key
    if not repeat and not waitlist.is_open(offer, standing.now):
        raise Refused(Refusal.GONE, standing.booking)
    return await confirm(district, standing, offer.slot_id, request_key=request_key,
                         channel=Channel.WAITLIST, chosen=offer.slot_id)
