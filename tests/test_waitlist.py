"""The waiting list through the booking service: the order, an offer made in the transaction that
frees a place, confirm / decline / expiry, quiet hours, and the end of a list place on booking.
On SQLite and PostgreSQL."""
from __future__ import annotations

import datetime as dt

import pytest

from models.booking import service, waitlist
from models.channel import Channel
from models.db.tables import Booking, RiskArea, Slot, SmsMessage, WaitlistEntry, WaitlistOffer
from models.operations.checks import check_database
from models.rules.eligibility import Refusal, Refused
from tests.conftest import NOW
from tests.factories import book_for, make_resident, make_site, make_slot

FIRST = dt.date(2021, 6, 5)  # day 21 is 6-26, day 56 is 7-31
DAY = dt.date(2021, 7, 2)  # a Friday


async def _join(district, resident, choice=waitlist.Choice()):
    standing = await service.stand(district, resident)
    return await waitlist.join(district, standing, choice)


async def _full_site(capacity=1):
    """The first-dose site with one window, full (its places booked by others)."""
    site = await make_site()
    slot = await make_slot(site, DAY, capacity=capacity)
    return site, slot


async def _fill(district, site, slot, n):
    owners = []
    for i in range(n):
        person, _ = await make_resident(site, first_dose=FIRST, name=f"占位{i}", phone=f"1390000{i:04d}")
        owners.append(await book_for(district, person, slot))
    return owners


async def _offers(resident):
    return await WaitlistOffer.filter(resident_id=resident.id).order_by("id")


async def _check(district):
    report = await check_database(district.rules)
    assert report.ok, report.errors


async def test_a_cancellation_offers_its_place_to_the_person_waiting_in_the_same_transaction(db, district):
    site, slot = await _full_site()
    (owner,) = await _fill(district, site, slot, 1)
    waiting, _ = await make_resident(site, first_dose=FIRST, name="李候补", phone="13700000001")
    standing = await service.stand(district, waiting)
    assert standing.refusal == Refusal.NO_ROOM
    entry = await _join(district, waiting)
    assert entry.status == WaitlistEntry.WAITING

    await service.cancel(district, owner.resident_id, owner.id)

    (offer,) = await _offers(waiting)
    assert offer.status == WaitlistOffer.OPEN and offer.slot_id == slot.id
    fresh = await Slot.get(id=slot.id)
    assert (fresh.booked, fresh.held) == (0, 1)  # held for them: the public journey sees it full
    sms = await SmsMessage.get(resident_id=waiting.id, kind="offer")
    assert sms.priority == 1 and sms.next_attempt_at is None
    assert sms.expires_at == offer.expires_at
    assert offer.expires_at - offer.created_at == dt.timedelta(minutes=district.offer_minutes)
    await _check(district)


async def test_confirming_the_offer_books_the_held_place_and_ends_the_list_place(db, district):
    site, slot = await _full_site()
    (owner,) = await _fill(district, site, slot, 1)
    waiting, _ = await make_resident(site, first_dose=FIRST, name="李候补", phone="13700000001")
    await _join(district, waiting)
    await service.cancel(district, owner.resident_id, owner.id)
    (offer,) = await _offers(waiting)

    placed = await service.confirm_offer(district, offer.id, request_key="k-offer")
    assert placed.changed and placed.booking.slot_id == slot.id
    assert placed.booking.channel == Channel.WAITLIST
    fresh = await Slot.get(id=slot.id)
    assert (fresh.booked, fresh.held) == (1, 0)
    assert (await WaitlistOffer.get(id=offer.id)).status == WaitlistOffer.TAKEN
    assert (await WaitlistEntry.get(resident_id=waiting.id)).status == WaitlistEntry.BOOKED
    # the confirmation SMS carries a personal link to see, move or cancel it
    assert await SmsMessage.filter(resident_id=waiting.id, kind="confirm").count() == 1
    again = await service.confirm_offer(district, offer.id, request_key="k-offer")
    assert not again.changed and again.booking.id == placed.booking.id
    await _check(district)


async def test_the_order_is_interval_end_then_seventy_or_more_then_joining_first(db, district, clock):
    site, slot = await _full_site(capacity=3)
    owners = await _fill(district, site, slot, 3)
    # joined in this order; first doses give their interval ends
    early, _ = await make_resident(site, first_dose=FIRST, name="王早到", phone="13700000001")
    late_interval, _ = await make_resident(site, first_dose=FIRST - dt.timedelta(days=3), name="赵将到期",
                                           phone="13700000002")
    senior, _ = await make_resident(site, first_dose=FIRST, name="钱长者", phone="13700000003",
                                    born=dt.date(1945, 1, 1))
    later, _ = await make_resident(site, first_dose=FIRST, name="孙后到", phone="13700000004")
    for person in (early, late_interval, senior, later):
        await _join(district, person)
        clock.advance(minutes=1)

    for booking in owners:
        await service.cancel(district, booking.resident_id, booking.id)

    offered = [o.resident_id for o in await WaitlistOffer.all().order_by("id")]
    assert offered == [late_interval.id, senior.id, early.id]
    assert not await _offers(later)
    assert (await waitlist.on_list(later.id)).ahead == 3
    await _check(district)


async def test_a_place_goes_only_to_someone_whose_choice_it_matches(db, district):
    site, slot = await _full_site()
    other_site = await make_site("S02", "龙洞街")
    (owner,) = await _fill(district, site, slot, 1)
    elsewhere, _ = await make_resident(other_site, first_dose=FIRST, name="周别处", phone="13700000001")
    weekends, _ = await make_resident(site, first_dose=FIRST, name="吴周末", phone="13700000002")
    afternoons, _ = await make_resident(site, first_dose=FIRST, name="郑下午", phone="13700000003")
    anywhere, _ = await make_resident(other_site, first_dose=FIRST, name="冯任意", phone="13700000004")
    await make_slot(other_site, DAY, capacity=0)  # the other site is full too
    await _join(district, elsewhere)  # its own first-dose site only
    await _join(district, weekends, waitlist.Choice(days="weekends"))
    await _join(district, afternoons, waitlist.Choice(part="afternoon"))
    await _join(district, anywhere, waitlist.Choice(scope="any"))

    await service.cancel(district, owner.resident_id, owner.id)

    (offer,) = await WaitlistOffer.all()
    assert offer.resident_id == anywhere.id


async def test_not_for_me_passes_the_place_on_and_keeps_their_turn(db, district):
    site, slot = await _full_site()
    (owner,) = await _fill(district, site, slot, 1)
    first, _ = await make_resident(site, first_dose=FIRST, name="王一", phone="13700000001")
    second, _ = await make_resident(site, first_dose=FIRST, name="王二", phone="13700000002")
    await _join(district, first)
    await _join(district, second)
    await service.cancel(district, owner.resident_id, owner.id)
    (offer,) = await _offers(first)

    assert await waitlist.decline(district, offer.id)
    assert not await waitlist.decline(district, offer.id)  # twice: nothing more happens
    assert (await WaitlistOffer.get(id=offer.id)).status == WaitlistOffer.DECLINED
    assert (await WaitlistEntry.get(resident_id=first.id)).status == WaitlistEntry.WAITING
    (passed,) = await _offers(second)
    assert passed.status == WaitlistOffer.OPEN and passed.slot_id == slot.id
    with pytest.raises(Refused) as err:
        await service.confirm_offer(district, offer.id, request_key=None)
    assert err.value.reason == Refusal.GONE
    await _check(district)


async def test_an_offer_left_to_run_out_goes_to_the_next_and_three_take_a_person_off(db, district, clock):
    site = await make_site()
    slots = [await make_slot(site, DAY + dt.timedelta(days=i), capacity=1) for i in range(3)]
    owners = [(await _fill(district, site, slot, 1))[0] for slot in slots]
    sleepy, _ = await make_resident(site, first_dose=FIRST - dt.timedelta(days=2), name="王睡",
                                    phone="13700000001")
    next_one, _ = await make_resident(site, first_dose=FIRST, name="王醒", phone="13700000002")
    await _join(district, sleepy)
    await _join(district, next_one)

    for round_, (slot, owner) in enumerate(zip(slots, owners), 1):
        await service.cancel(district, owner.resident_id, owner.id)
        (offer,) = await WaitlistOffer.filter(status=WaitlistOffer.OPEN)
        assert offer.resident_id == sleepy.id and offer.slot_id == slot.id  # first in the order
        assert await waitlist.sweep(district) == 0  # not yet
        clock.advance(minutes=district.offer_minutes)
        assert await waitlist.sweep(district) == 1
        # the place went on to the next person, who takes it
        (passed,) = await WaitlistOffer.filter(status=WaitlistOffer.OPEN)
        assert passed.resident_id == next_one.id and passed.slot_id == slot.id
        await service.confirm_offer(district, passed.id, request_key=None)
        await _check(district)
        entry = await WaitlistEntry.get(resident_id=sleepy.id)
        assert entry.expired_offers == round_
        if round_ < 3:
            assert entry.status == WaitlistEntry.WAITING
            # next_one booked: put them back on the list for the next round
            booking = await Booking.get(resident_id=next_one.id, status=Booking.ACTIVE)
            await service.cancel(district, next_one.id, booking.id)
            assert not await WaitlistOffer.filter(status=WaitlistOffer.OPEN).exists()  # offered once each
            await _join(district, next_one)
    entry = await WaitlistEntry.get(resident_id=sleepy.id)
    assert entry.status == WaitlistEntry.REMOVED
    assert await SmsMessage.filter(resident_id=sleepy.id, kind="waitlist_off").count() == 1
    assert await waitlist.on_list(sleepy.id) is None
    await _check(district)


async def test_a_place_freed_in_the_quiet_hours_is_held_and_offered_at_eight(db, district, clock):
    clock.moment = NOW.replace(hour=22, minute=15) - dt.timedelta(days=1)  # 30 June, 22:15
    site, slot = await _full_site()
    (owner,) = await _fill(district, site, slot, 1)
    waiting, _ = await make_resident(site, first_dose=FIRST, name="李夜", phone="13700000001")
    await _join(district, waiting)
    await service.cancel(district, owner.resident_id, owner.id)

    (offer,) = await _offers(waiting)
    eight = NOW.replace(hour=8, minute=0)  # 1 July, 08:00
    assert offer.sends_at == eight and offer.expires_at == eight + dt.timedelta(minutes=district.offer_minutes)
    sms = await SmsMessage.get(resident_id=waiting.id, kind="offer")
    assert sms.next_attempt_at == eight  # the sender leaves it until then
    assert (await Slot.get(id=slot.id)).held == 1  # and the public journey cannot take it
    await _check(district)


async def test_booking_by_another_channel_ends_the_list_place_and_gives_the_offer_on(db, district):
    site, slot = await _full_site()
    (owner,) = await _fill(district, site, slot, 1)
    other_slot = await make_slot(site, DAY + dt.timedelta(days=1), capacity=0)
    waiting, _ = await make_resident(site, first_dose=FIRST, name="王一", phone="13700000001")
    next_one, _ = await make_resident(site, first_dose=FIRST, name="王二", phone="13700000002")
    await _join(district, waiting)
    await _join(district, next_one)
    await service.cancel(district, owner.resident_id, owner.id)
    (offer,) = await _offers(waiting)
    # a place opens elsewhere and the call centre books them there
    await Slot.filter(id=other_slot.id).update(capacity=1)
    standing = await service.stand(district, waiting)
    await service.confirm(district, standing, other_slot.id, request_key=None, channel=Channel.CALLCENTRE,
                          chosen=other_slot.id)

    assert (await WaitlistEntry.get(resident_id=waiting.id)).status == WaitlistEntry.BOOKED
    assert (await WaitlistOffer.get(id=offer.id)).status == WaitlistOffer.WITHDRAWN
    (passed,) = await _offers(next_one)
    assert passed.slot_id == slot.id and passed.status == WaitlistOffer.OPEN
    await _check(district)


@pytest.mark.parametrize("why", ["booked", "vaccinated", "too_early", "restricted"])
async def test_who_may_not_book_may_not_join_with_the_journeys_reason(db, district, why):
    site, slot = await _full_site(capacity=2)
    first = FIRST + dt.timedelta(days=30) if why == "too_early" else FIRST
    person, _ = await make_resident(site, first_dose=first, name="王拒", phone="13700000001",
                                    subdistrict="五山街")
    if why == "restricted":
        await RiskArea.create(subdistrict="五山街")
    if why == "booked":
        await book_for(district, person, slot)
    if why == "vaccinated":
        person.second_dose_date = dt.date(2021, 6, 30)
        await person.save()
    with pytest.raises(Refused) as err:
        await _join(district, person)
    assert err.value.reason == {"booked": Refusal.BOOKED, "vaccinated": Refusal.VACCINATED,
                                "too_early": Refusal.TOO_EARLY, "restricted": Refusal.RESTRICTED}[why]
    assert not await WaitlistEntry.exists()


async def test_joining_again_changes_the_choice_and_keeps_the_turn(db, district, clock):
    site, slot = await _full_site()
    await _fill(district, site, slot, 1)
    person, _ = await make_resident(site, first_dose=FIRST, name="王改", phone="13700000001")
    first = await _join(district, person)
    clock.advance(hours=2)
    second = await _join(district, person, waitlist.Choice(scope="any", days="weekends", part="morning"))
    assert second.id == first.id and second.joined_at == first.joined_at
    assert (second.scope, second.days, second.part) == ("any", "weekends", "morning")
    assert await WaitlistEntry.filter(resident_id=person.id).count() == 1


async def test_leaving_gives_a_held_place_to_the_next(db, district):
    site, slot = await _full_site()
    (owner,) = await _fill(district, site, slot, 1)
    first, _ = await make_resident(site, first_dose=FIRST, name="王一", phone="13700000001")
    second, _ = await make_resident(site, first_dose=FIRST, name="王二", phone="13700000002")
    await _join(district, first)
    await _join(district, second)
    await service.cancel(district, owner.resident_id, owner.id)
    assert await waitlist.leave(district, first.id)
    assert await waitlist.on_list(first.id) is None
    (passed,) = await _offers(second)
    assert passed.status == WaitlistOffer.OPEN
    assert not await waitlist.leave(district, first.id)
    await _check(district)


async def test_a_window_with_room_when_joining_is_offered_at_once(db, district):
    site, slot = await _full_site()
    await _fill(district, site, slot, 1)
    other = await make_site("S02", "五山街")
    free = await make_slot(other, DAY, capacity=1)
    person, _ = await make_resident(site, first_dose=FIRST, name="王快", phone="13700000001")
    entry = await _join(district, person, waitlist.Choice(scope="subdistrict"))
    (offer,) = await _offers(person)
    assert offer.slot_id == free.id
    assert (await WaitlistEntry.get(id=entry.id)).status == WaitlistEntry.OFFERED


async def test_same_day_leftovers_are_offered_with_the_short_hold(db, district, clock):
    clock.moment = NOW.replace(hour=15, minute=2)
    site, slot = await _full_site()
    await _fill(district, site, slot, 1)
    people = []
    for i in range(3):
        person, _ = await make_resident(site, first_dose=FIRST - dt.timedelta(days=10), name=f"王{i}",
                                        phone=f"1370000000{i}")
        await _join(district, person)
        people.append(person)
    done = await waitlist.leftovers(district, site, 2, "17:00")
    assert done.offered == 2 and done.slot.day == NOW.date()
    assert (done.slot.start, done.slot.end) == ("15:50", "17:00")
    offers = await WaitlistOffer.filter(status=WaitlistOffer.OPEN).order_by("id")
    assert [o.resident_id for o in offers] == [people[0].id, people[1].id]
    assert all(o.same_day and o.expires_at - o.created_at == dt.timedelta(minutes=45) for o in offers)
    with pytest.raises(waitlist.LeftoverError):
        await waitlist.leftovers(district, site, 2, "15:30")
    await _check(district)


async def test_a_call_back_person_gets_no_sms_and_is_on_the_agents_list(db, district):
    site, slot = await _full_site()
    (owner,) = await _fill(district, site, slot, 1)
    person, _ = await make_resident(site, first_dose=FIRST, name="王无机", phone="13700000001")
    standing = await service.stand(district, person)
    await waitlist.join(district, standing, waitlist.Choice(), channel=Channel.CALLCENTRE, callback=True)
    await service.cancel(district, owner.resident_id, owner.id)
    (offer,) = await waitlist.callbacks()
    assert offer.resident_id == person.id and offer.callback
    assert not await SmsMessage.filter(resident_id=person.id, kind="offer").exists()
    # the agent books it for them by phone: the held place becomes the booking
    standing = await service.stand(district, person)
    placed = await service.confirm(district, standing, slot.id, request_key=None, channel=Channel.CALLCENTRE,
                                   chosen=slot.id)
    assert placed.booking.slot_id == slot.id
    assert not await waitlist.callbacks()
    await _check(district)


async def test_a_hold_that_runs_out_goes_to_the_list_not_the_public(db, district, clock):
    site, slot = await _full_site()
    holder, _ = await make_resident(site, first_dose=FIRST, name="王持", phone="13700000001")
    standing = await service.stand(district, holder)
    await service.choose(district, standing, slot.id)
    waiting, _ = await make_resident(site, first_dose=FIRST, name="王等", phone="13700000002")
    await _join(district, waiting)
    clock.advance(minutes=district.hold_minutes + 1)
    from models.booking import engine
    await engine.sweep_expired_holds(clock.now(), waitlist.offerer(district))
    (offer,) = await _offers(waiting)
    assert offer.slot_id == slot.id
    assert (await Slot.get(id=slot.id)).held == 1
    await _check(district)


@pytest.mark.parametrize("channel", [c for c in Channel if c not in (Channel.WAITLIST, Channel.DEMO)])
async def test_a_booking_by_any_channel_ends_the_list_place(db, district, channel):
    """Every channel (the link, the phone entry, the call centre, clinics, group lists, the
    hand-off) books through service.confirm: the booking's own transaction ends the list place
    and gives an unused offer to the next person."""
    site, slot = await _full_site()
    (owner,) = await _fill(district, site, slot, 1)
    other = await make_slot(site, DAY + dt.timedelta(days=1), capacity=0)
    person, _ = await make_resident(site, first_dose=FIRST, name="王渠道", phone="13700000001")
    next_one, _ = await make_resident(site, first_dose=FIRST, name="王其次", phone="13700000002")
    await _join(district, person)
    await _join(district, next_one)
    await service.cancel(district, owner.resident_id, owner.id)  # an offer for `person`
    await Slot.filter(id=other.id).update(capacity=1)
    standing = await service.stand(district, person)
    await service.confirm(district, standing, other.id, request_key=None, channel=channel, chosen=other.id)

    assert (await WaitlistEntry.get(resident_id=person.id)).status == WaitlistEntry.BOOKED
    assert [o.resident_id for o in await WaitlistOffer.filter(status=WaitlistOffer.OPEN)] == [next_one.id]
    await _check(district)


async def test_send_sms_once_sweeps_offers_that_ran_out_and_sends_the_next(db_url, tmp_path):
    """`run.py send-sms --once` (the real command, on the real clock) passes an offer that ran
    out to the next person and sends that person's offer in the same run."""
    import os
    import subprocess
    import sys
    from pathlib import Path

    from models.clock import SystemClock, as_utc
    from web.settings import Settings, build_district

    if not db_url.startswith("sqlite"):
        pytest.skip("one database is enough for the command's wiring")
    from tests.conftest import TEST_SECRET

    real = build_district(Settings(database_url=db_url, secret_key=TEST_SECRET, base_url="http://127.0.0.1:8000",
                                   quiet_hours=None),
                          clock=SystemClock())
    now = real.clock.now()
    site = await make_site()
    slot = await make_slot(site, now.date() + dt.timedelta(days=2), capacity=1)
    first_dose = now.date() - dt.timedelta(days=30)
    (owner,) = [await book_for(real, (await make_resident(site, first_dose=first_dose, name="占位",
                                                          phone="13900000001"))[0], slot)]
    late, _ = await make_resident(site, first_dose=first_dose - dt.timedelta(days=1), name="王迟", phone="13700000001")
    next_one, _ = await make_resident(site, first_dose=first_dose, name="王次", phone="13700000002")
    for person in (late, next_one):
        await waitlist.join(real, await service.stand(real, person), waitlist.Choice())
    await service.cancel(real, owner.resident_id, owner.id)
    (offer,) = await _offers(late)
    await WaitlistOffer.filter(id=offer.id).update(expires_at=as_utc(now) - dt.timedelta(minutes=1))
    await SmsMessage.filter(kind="offer").update(status=SmsMessage.SENT)  # the first one went

    env = {**os.environ, "DATABASE_URL": db_url, "SECRET_KEY": TEST_SECRET, "BASE_URL": "http://127.0.0.1:8000",
           "SMS_BACKEND": "console", "QUIET_HOURS": "off"}
    done = subprocess.run([sys.executable, "run.py", "send-sms", "--once"], cwd=Path(__file__).parent.parent,
                          env=env, capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    assert "waiting list: 1 offers ran out, passed on" in done.stdout
    assert (await WaitlistOffer.get(id=offer.id)).status == WaitlistOffer.EXPIRED
    (passed,) = await _offers(next_one)
    assert passed.status == WaitlistOffer.OPEN
    assert (await SmsMessage.get(resident_id=next_one.id, kind="offer")).status == SmsMessage.SENT


async def test_a_person_whose_area_becomes_a_risk_area_is_passed_over(db, district):
    site, slot = await _full_site()
    (owner,) = await _fill(district, site, slot, 1)
    risky, _ = await make_resident(site, first_dose=FIRST - dt.timedelta(days=3), name="王风险",
                                   phone="13700000001", subdistrict="珠吉街")
    safe, _ = await make_resident(site, first_dose=FIRST, name="王安全", phone="13700000002",
                                  subdistrict="五山街")
    await _join(district, risky)
    await _join(district, safe)
    await RiskArea.create(subdistrict="珠吉街")
    await service.cancel(district, owner.resident_id, owner.id)
    assert [o.resident_id for o in await WaitlistOffer.all()] == [safe.id]
