"""The booking engine called directly: rules 2-7 of product.md."""
from __future__ import annotations

import datetime as dt

import pytest
from tortoise.exceptions import IntegrityError, OperationalError

from models.booking import availability, engine, service
from models.db.tables import Booking, Hold, SmsMessage, Slot
from models.rules.eligibility import Refusal, Refused
from tests.conftest import NOW
from tests.factories import make_resident, make_site, make_slot

FIRST = dt.date(2021, 6, 5)  # day 21 is 6-26, day 56 is 7-31


# The engine as the booking service calls it: with the notice that queues the resident's SMS.
async def book(district, resident, slot_id, *, window, now=NOW, request_key=None):
    return await engine.book(resident, slot_id, window=window, now=now, request_key=request_key,
                             notice=service._notice(district, resident, "confirm"))


async def move(district, booking, slot_id, *, window, now=NOW):
    resident = await booking.resident
    return await engine.move(booking, slot_id, window=window, now=now,
                             notice=service._notice(district, resident, "move"))


async def cancel(district, booking):
    resident = await booking.resident
    return await engine.cancel(booking, notice=service._notice(district, resident, "cancel"))


async def hold(district, resident, slot_id, *, window, now=NOW):
    return await engine.hold(resident, slot_id, window=window, now=now, minutes=district.hold_minutes)


async def _setup(district, capacity=2):
    site = await make_site()
    resident, _ = await make_resident(site, first_dose=FIRST)
    slot = await make_slot(site, dt.date(2021, 7, 2), capacity=capacity)
    return site, resident, slot, district.rules.window(FIRST)


async def test_booking_takes_a_place_and_queues_a_confirmation_sms(db, district):
    site, resident, slot, window = await _setup(district)
    booking, created = await book(district, resident, slot.id, window=window)
    assert created and booking.status == Booking.ACTIVE
    assert (await Slot.get(id=slot.id)).booked == 1
    assert await SmsMessage.filter(resident=resident, kind="confirm").count() == 1


async def test_same_submission_twice_gives_the_same_booking(db, district):
    site, resident, slot, window = await _setup(district)
    first, _ = await book(district, resident, slot.id, window=window, request_key="k1")
    again, created = await book(district, resident, slot.id, window=window, request_key="k1")
    assert again.id == first.id and not created
    assert (await Slot.get(id=slot.id)).booked == 1


async def test_second_booking_for_another_slot_is_refused_as_already_booked(db, district):
    site, resident, slot, window = await _setup(district)
    other = await make_slot(site, dt.date(2021, 7, 3))
    await book(district, resident, slot.id, window=window)
    with pytest.raises(Refused) as err:
        await book(district, resident, other.id, window=window)
    assert err.value.reason == Refusal.BOOKED


async def test_full_slot_refuses_and_takes_nothing(db, district):
    site, resident, slot, window = await _setup(district, capacity=1)
    other, _ = await make_resident(site, first_dose=FIRST, phone="13900001111")
    await book(district, other, slot.id, window=window)
    with pytest.raises(Refused) as err:
        await book(district, resident, slot.id, window=window)
    assert err.value.reason == Refusal.FULL
    assert (await Slot.get(id=slot.id)).booked == 1
    assert not await Booking.filter(resident=resident).exists()


async def test_second_dose_cannot_be_booked_before_day_21(db, district):
    site, resident, _, window = await _setup(district)
    day20 = await make_slot(site, FIRST + dt.timedelta(days=20))
    day21 = await make_slot(site, FIRST + dt.timedelta(days=21))
    early = NOW.replace(month=6, day=20)
    with pytest.raises(Refused) as err:
        await book(district, resident, day20.id, window=window, now=early)
    assert err.value.reason == Refusal.NOT_ALLOWED
    booking, _ = await book(district, resident, day21.id, window=window, now=early)
    assert booking.slot_id == day21.id


async def test_move_takes_new_place_and_frees_old(db, district):
    site, resident, slot, window = await _setup(district)
    other = await make_slot(site, dt.date(2021, 7, 3))
    booking, _ = await book(district, resident, slot.id, window=window)
    moved = await move(district, booking, other.id, window=window)
    assert moved.slot_id == other.id and moved.code == booking.code
    assert (await Slot.get(id=slot.id)).booked == 0
    assert (await Slot.get(id=other.id)).booked == 1


async def test_move_to_full_slot_keeps_the_old_booking(db, district):
    site, resident, slot, window = await _setup(district)
    full = await make_slot(site, dt.date(2021, 7, 3), capacity=1, booked=1)
    booking, _ = await book(district, resident, slot.id, window=window)
    with pytest.raises(Refused):
        await move(district, booking, full.id, window=window)
    assert (await Booking.get(id=booking.id)).slot_id == slot.id
    assert (await Slot.get(id=slot.id)).booked == 1


async def test_cancel_gives_the_place_back_and_allows_booking_again(db, district):
    site, resident, slot, window = await _setup(district, capacity=1)
    booking, _ = await book(district, resident, slot.id, window=window)
    assert await cancel(district, booking)
    assert not await cancel(district, booking)
    assert (await Slot.get(id=slot.id)).booked == 0
    again, created = await book(district, resident, slot.id, window=window)
    assert created and again.id != booking.id


async def test_cancel_of_a_booking_read_before_it_moved_gives_back_the_place_it_is_on(db, district):
    # Another tab moved it meanwhile: the place freed is the new window's, never the old one's.
    site, resident, slot, window = await _setup(district)
    other = await make_slot(site, dt.date(2021, 7, 3))
    booking, _ = await book(district, resident, slot.id, window=window)
    read_before = await Booking.get(id=booking.id)
    await move(district, booking, other.id, window=window)
    assert await cancel(district, read_before)
    assert (await Booking.get(id=booking.id)).status == Booking.CANCELLED
    assert [(await Slot.get(id=s.id)).booked for s in (slot, other)] == [0, 0]
    assert await SmsMessage.filter(resident=resident, kind="cancel").count() == 1


async def test_closure_cancel_of_a_booking_moved_meanwhile_writes_nothing(db, district):
    site, resident, slot, window = await _setup(district)
    other = await make_slot(site, dt.date(2021, 7, 3))
    booking, _ = await book(district, resident, slot.id, window=window)
    read_before = await Booking.get(id=booking.id).select_related("resident")
    await move(district, booking, other.id, window=window)
    assert not await service.cancel_off_closed(district, read_before, slot.day)
    assert (await Booking.get(id=booking.id)).status == Booking.ACTIVE
    assert (await Slot.get(id=other.id)).booked == 1
    assert not await SmsMessage.filter(resident=resident, kind="closure_cancel").exists()


async def test_database_refuses_a_second_active_booking(db, district):
    site, resident, slot, window = await _setup(district)
    await book(district, resident, slot.id, window=window)
    with pytest.raises(IntegrityError):
        await Booking.create(code="XXXXXXXX", resident=resident, slot=slot)


async def test_database_refuses_booked_over_capacity(db, district):
    site, resident, slot, window = await _setup(district, capacity=1)
    with pytest.raises((IntegrityError, OperationalError)):
        await Slot.filter(id=slot.id).update(booked=2)


async def test_first_dose_site_comes_first_then_same_subdistrict(db, district):
    far = await make_site("S09", "龙洞街")
    await make_site("S05", "五山街", name="五山二号点")
    site, resident, slot, window = await _setup(district)
    await make_slot(far, dt.date(2021, 7, 5))
    choices = await availability.site_choices(resident, window, NOW)
    assert [c.site.code for c in choices] == ["S01", "S05", "S09"]
    assert choices[0].is_first_site and choices[0].first_free_day == dt.date(2021, 7, 2)
    assert choices[1].first_free_day is None
    assert choices[2].first_free_day == dt.date(2021, 7, 5)


async def test_windows_of_today_that_have_started_are_not_offered(db, district):
    site, resident, _, window = await _setup(district)
    today = NOW.date()
    await make_slot(site, today, "07:00", "08:00")
    later = await make_slot(site, today, "10:00", "11:00")
    assert [s.id for s in await availability.windows_for_day(site.id, today, NOW)] == [later.id]


async def test_tomorrows_morning_counts_as_free_in_the_afternoon(db, district):
    site, resident, slot, window = await _setup(district)
    afternoon = NOW.replace(hour=15, minute=30)  # slot is 7-2 09:00
    assert await availability.total_free(window, afternoon) == 2
    choices = await availability.site_choices(resident, window, afternoon)
    assert choices[0].first_free_day == dt.date(2021, 7, 2)
    started = await make_slot(site, dt.date(2021, 7, 1), "15:00", "16:00", capacity=3)
    assert await availability.total_free(window, afternoon) == 2
    assert started.id not in [s.id for s in await availability.windows_for_day(site.id, started.day, afternoon)]


async def test_a_hold_keeps_the_place_and_becomes_the_booking(db, district):
    site, resident, slot, window = await _setup(district, capacity=1)
    other, _ = await make_resident(site, first_dose=FIRST, phone="13900001111")
    await hold(district, resident, slot.id, window=window)
    assert (await Slot.get(id=slot.id)).held == 1
    with pytest.raises(Refused) as err:
        await hold(district, other, slot.id, window=window)
    assert err.value.reason == Refusal.FULL
    with pytest.raises(Refused):
        await book(district, other, slot.id, window=window)
    await book(district, resident, slot.id, window=window)
    row = await Slot.get(id=slot.id)
    assert (row.booked, row.held) == (1, 0), "the hold turned into the booking, not added to it"
    assert not await Hold.exists()


async def test_an_expired_hold_counts_for_nothing(db, district):
    site, resident, slot, window = await _setup(district, capacity=1)
    other, _ = await make_resident(site, first_dose=FIRST, phone="13900001111")
    await hold(district, resident, slot.id, window=window)
    later = NOW + dt.timedelta(minutes=district.hold_minutes + 1)
    booking, _ = await book(district, other, slot.id, window=window, now=later)
    row = await Slot.get(id=slot.id)
    assert (row.booked, row.held) == (1, 0)
    with pytest.raises(Refused):  # the first resident's hold is gone with its place
        await book(district, resident, slot.id, window=window, now=later)


async def test_holding_another_slot_gives_the_first_back(db, district):
    site, resident, slot, window = await _setup(district)
    other = await make_slot(site, dt.date(2021, 7, 3))
    await hold(district, resident, slot.id, window=window)
    await hold(district, resident, other.id, window=window)
    await hold(district, resident, other.id, window=window)  # twice: still one hold
    assert [(s.id, s.held) for s in await Slot.all().order_by("id")] == [(slot.id, 0), (other.id, 1)]


async def test_sweeping_gives_back_expired_holds(db, district):
    site, resident, slot, window = await _setup(district)
    await hold(district, resident, slot.id, window=window)
    assert await engine.sweep_expired_holds(NOW) == 0
    later = NOW + dt.timedelta(minutes=district.hold_minutes + 1)
    assert await engine.sweep_expired_holds(later) == 1
    assert (await Slot.get(id=slot.id)).held == 0


async def test_moving_with_a_hold_converts_it(db, district):
    site, resident, slot, window = await _setup(district)
    other = await make_slot(site, dt.date(2021, 7, 3), capacity=1)
    booking, _ = await book(district, resident, slot.id, window=window)
    await hold(district, resident, other.id, window=window)
    await move(district, booking, other.id, window=window)
    rows = {s.id: (s.booked, s.held) for s in await Slot.all()}
    assert rows == {slot.id: (0, 0), other.id: (1, 0)}


async def test_holds_and_bookings_arriving_together_each_count_alone(db, district):
    """Many at once (on SQLite run several to a COMMIT, each in its own savepoint: unit.py):
    a unit refused in the middle of a group is rolled back alone, the others are all kept."""
    site = await make_site()
    slot = await make_slot(site, dt.date(2021, 7, 2), capacity=5)
    window = district.rules.window(FIRST)
    people = [(await make_resident(site, first_dose=FIRST, name=f"张{i}明"))[0] for i in range(12)]
    import asyncio

    async def try_hold(person):
        try:
            return await hold(district, person, slot.id, window=window)
        except Refused as refused:
            return refused.reason

    answers = await asyncio.gather(*(try_hold(p) for p in people))
    held = [a for a in answers if isinstance(a, Hold)]
    assert len(held) == 5 and answers.count(Refusal.FULL) == 7
    assert await Hold.filter(slot_id=slot.id).count() == 5
    assert (await Slot.get(id=slot.id)).held == 5
    assert {h.resident_id for h in held} == {h.resident_id for h in await Hold.filter(slot_id=slot.id)}

    holders = [p for p in people if p.id in {h.resident_id for h in held}]
    results = await asyncio.gather(*(book(district, p, slot.id, window=window, request_key=f"k{p.id}")
                                     for p in holders))
    assert all(created for _, created in results)
    assert len({b.code for b, _ in results}) == 5
    slot = await Slot.get(id=slot.id)
    assert (slot.booked, slot.held) == (5, 0)
    assert await SmsMessage.filter(kind="confirm").count() == 5
    for booking, _ in results:  # what each caller was told is what the database holds
        stored = await Booking.get(id=booking.id)
        assert (stored.code, stored.resident_id, stored.status) == (booking.code, booking.resident_id, "active")


async def test_a_booking_that_breaks_a_constraint_is_refused_and_leaves_nothing(db, district):
    """The database's IntegrityError (here the unique request key; sqlite3's own on SQLite) is
    Tortoise's, which the engine answers as for a twin request: refused, nothing written."""
    site, resident, slot, window = await _setup(district, capacity=3)
    other, _ = await make_resident(site, first_dose=FIRST, name="李四明")
    await book(district, resident, slot.id, window=window, request_key="same")
    with pytest.raises(Refused):  # the request key is unique: the INSERT fails
        await engine.book(other, slot.id, window=window, now=NOW, request_key="same",
                          notice=service._notice(district, other, "confirm"))
    assert (await Slot.get(id=slot.id)).booked == 1  # its place taken in the unit: rolled back
    assert await Booking.filter(resident_id=other.id).count() == 0
    assert await SmsMessage.filter(resident_id=other.id).count() == 0
