"""The waiting list beside the admin's work: capacity raised and windows opened offer their new
places to the list in the commit that makes them; a closed day's bookings and the list; the
purge takes a person off the list; the hand-off's no_room answer; the admin's report, its CSV
and /metrics. On SQLite and PostgreSQL."""
from __future__ import annotations

import datetime as dt

from models.booking import service, waitlist
from models.db.tables import AuditEntry, Booking, Resident, Slot, SmsMessage, WaitlistEntry, WaitlistOffer
from models.operations import capacity, closing
from models.operations.checks import check_database
from models.operations.slots import open_slots
from tests.factories import book_for, make_resident, make_site, make_slot
from tests.pages import get_page, post_form
from tests.staff_helpers import make_staff, sign_in

FIRST = dt.date(2021, 6, 5)  # day 21 is 6-26, day 56 is 7-31 (NOW is Thursday 1 July 2021)
DAY = dt.date(2021, 7, 2)  # a Friday
MONDAY = dt.date(2021, 7, 5)


async def _join(district, resident, choice=waitlist.Choice()):
    standing = await service.stand(district, resident)
    return await waitlist.join(district, standing, choice)


async def _fill(district, site, slot, n, prefix="1390000"):
    owners = []
    for i in range(n):
        person, _ = await make_resident(site, first_dose=FIRST, name=f"占位{i}", phone=f"{prefix}{i:04d}")
        owners.append(await book_for(district, person, slot))
    return owners


async def _waiting(district, clock, site, n, choice=waitlist.Choice()):
    """n people on the list, joined a minute apart (so in this order)."""
    people = []
    for i in range(n):
        person, _ = await make_resident(site, first_dose=FIRST, name=f"候补{i}", phone=f"1370000{i:04d}")
        await _join(district, person, choice)
        people.append(person)
        clock.advance(minutes=1)
    return people


async def _offered(people) -> list[int]:
    """Who of these people holds an open offer, in the order given."""
    holding = set(await WaitlistOffer.filter(status=WaitlistOffer.OPEN).values_list("resident_id", flat=True))
    return [p.id for p in people if p.id in holding]


async def _check(district):
    report = await check_database(district.rules)
    assert report.ok, report.errors


# ---- capacity raised, windows opened


async def test_raising_a_full_windows_capacity_offers_the_new_places_to_the_first_in_order(
        client, district, clock):
    site = await make_site()
    slot = await make_slot(site, DAY, capacity=1)
    await _fill(district, site, slot, 1)
    people = await _waiting(district, clock, site, 3)
    assert not await WaitlistOffer.exists()

    await make_staff("admin", "boss")
    await sign_in(client, "boss")
    page = await get_page(client, f"/admin/sites/slots?site={site.id}&from_day={DAY}&to_day={DAY}")
    await post_form(client, "/admin/sites/slots/capacity", page, {
        "site": site.id, "slot": slot.id, "capacity": "3", "from_day": DAY.isoformat(),
        "to_day": DAY.isoformat()})

    assert await _offered(people) == [people[0].id, people[1].id]
    fresh = await Slot.get(id=slot.id)
    assert (fresh.capacity, fresh.booked, fresh.held) == (3, 1, 2)  # nothing left for the public
    assert await SmsMessage.filter(kind="offer").count() == 2
    assert (await WaitlistEntry.get(resident_id=people[2].id)).status == WaitlistEntry.WAITING
    assert (await AuditEntry.get(action="slot_capacity")).detail == f"S01 {DAY} 09:00: 1 -> 3"
    await _check(district)


async def test_a_capacity_raise_refused_below_the_taken_places_offers_nothing(db, district, clock):
    site = await make_site()
    slot = await make_slot(site, DAY, capacity=2)
    await _fill(district, site, slot, 2)
    await _waiting(district, clock, site, 1)
    try:
        await capacity.set_window_capacity(slot, "1", district)
    except capacity.CapacityError as exc:
        assert exc.code == "taken" and exc.taken == 2
    else:
        raise AssertionError("a capacity below the places taken was accepted")
    assert not await WaitlistOffer.exists()
    await _check(district)


async def test_opening_a_window_offers_its_places_to_the_people_whose_choice_it_matches(db, district, clock):
    site = await make_site()
    other = await make_site("S02", "龙洞街")
    full = await make_slot(site, DAY, capacity=1)
    await _fill(district, site, full, 1)
    await make_slot(other, DAY, capacity=0)
    here = await _waiting(district, clock, site, 2)
    (mornings,) = await _waiting(district, clock, site, 1, waitlist.Choice(part="morning"))
    (elsewhere,) = await _waiting(district, clock, other, 1)  # their own site only
    (anywhere,) = await _waiting(district, clock, other, 1, waitlist.Choice(scope="any"))
    (weekdays,) = await _waiting(district, clock, site, 1, waitlist.Choice(days="weekends"))
    assert not await WaitlistOffer.exists()

    result = await open_slots("S01", MONDAY, MONDAY, [("14:00", "15:00")], 5, district=district)

    assert result.created == 1
    window = await Slot.get(site_id=site.id, day=MONDAY)
    assert await _offered([*here, mornings, elsewhere, anywhere, weekdays]) == [*(p.id for p in here), anywhere.id]
    assert (window.capacity, window.booked, window.held) == (5, 0, 3)
    await _check(district)


async def test_applying_the_template_offers_created_and_raised_windows(client, district, clock):
    site = await make_site()
    full = await make_slot(site, DAY, capacity=1)
    await _fill(district, site, full, 1)
    monday = await make_slot(site, MONDAY, "09:00", "10:00", capacity=0)  # opened with no places yet
    people = await _waiting(district, clock, site, 4)
    await make_staff("admin", "boss")
    await sign_in(client, "boss")
    page = await get_page(client, f"/admin/sites/template?site={site.id}")
    for start, end in (("09:00", "10:00"), ("14:00", "15:00")):
        await post_form(client, "/admin/sites/template/add", page, {
            "site": site.id, "weekday": "0", "start": start, "end": end, "capacity": "2"})
    page = await get_page(client, f"/admin/sites/template?site={site.id}")
    await post_form(client, "/admin/sites/template/apply", page, {
        "site": site.id, "from_day": MONDAY.isoformat(), "to_day": MONDAY.isoformat()})

    assert await _offered(people) == [p.id for p in people]  # 2 raised + 2 created
    assert (await Slot.get(id=monday.id)).held == 2
    assert (await Slot.get(site_id=site.id, day=MONDAY, start="14:00")).held == 2
    await _check(district)


async def test_reopening_a_closed_window_offers_its_places_first(db, district, clock):
    site = await make_site()
    slot = await make_slot(site, MONDAY, capacity=2)
    await Slot.filter(id=slot.id).update(closed_reason="停电")
    (person,) = await _waiting(district, clock, site, 1)
    assert not await WaitlistOffer.exists()
    assert await capacity.reopen_window(slot, district)
    assert await _offered([person]) == [person.id]
    assert (await Slot.get(id=slot.id)).held == 1
    await _check(district)


# ---- closing a day: what is free when it runs, and the list


async def test_a_closure_moves_both_bookings_and_the_place_left_is_the_waiting_persons(db, district, clock):
    """One person waiting; a closed window's two bookings moved into a target window of 3
    places: both are moved, and the third place is the waiting person's (held by their offer)."""
    closed_site = await make_site()
    target_site = await make_site("S02", "龙洞街")
    closed = await make_slot(closed_site, DAY, capacity=2)
    moving = await _fill(district, closed_site, closed, 2)
    await make_slot(target_site, DAY, capacity=0)  # their site has nothing: they wait
    (person,) = await _waiting(district, clock, target_site, 1)
    await open_slots("S02", MONDAY, MONDAY, [("14:00", "15:00")], 3, district=district)
    target_slot = await Slot.get(site_id=target_site.id, day=MONDAY)

    c = await closing.closure(closed_site, DAY, "", "疫苗未到", today=clock.today())
    to = await closing.target(c, target_site, MONDAY, now=clock.now())
    plan = await closing.plan(c, to, rules=district.rules, now=clock.now())
    assert (plan.moved, plan.cancelled) == (2, 0)
    result = await closing.close(district, c, move_to=to)

    assert (result.moved, result.cancelled) == (2, 0)
    assert {b.slot_id for b in await Booking.filter(id__in=[b.id for b in moving])} == {target_slot.id}
    (offer,) = await WaitlistOffer.filter(resident_id=person.id)
    assert offer.status == WaitlistOffer.OPEN and offer.slot_id == target_slot.id
    fresh = await Slot.get(id=target_slot.id)
    assert (fresh.capacity, fresh.booked, fresh.held) == (3, 2, 1)
    assert (await Slot.get(id=closed.id)).held == 0  # the closed window's places go to nobody
    await _check(district)


async def test_a_booking_a_closure_cannot_move_goes_on_the_list_in_its_order(db, district, clock):
    """No target: the closed window's booking is cancelled, its person put on the waiting list
    (any site of their sub-district), and told so by the cancellation SMS; a place opening later
    goes to whoever is first in the list's order, the displaced person or the one already waiting."""
    closed_site = await make_site()
    closed = await make_slot(closed_site, DAY, capacity=1)
    (displaced,) = await _fill(district, closed_site, closed, 1)
    await make_slot(closed_site, MONDAY, capacity=0)  # nothing else anywhere
    waiting, _ = await make_resident(closed_site, first_dose=FIRST + dt.timedelta(days=1), name="候补早",
                                     phone="13700000009")
    await _join(district, waiting)  # joined first, but their interval ends a day later

    c = await closing.closure(closed_site, DAY, "", "疫苗未到", today=clock.today())
    result = await closing.close(district, c, move_to=None)

    assert result.cancelled == 1
    entry = await WaitlistEntry.get(resident_id=displaced.resident_id)
    assert (entry.status, entry.scope, entry.channel) == (WaitlistEntry.WAITING, "subdistrict", closing.CLOSURE)
    sms = await SmsMessage.get(resident_id=displaced.resident_id, kind="closure_cancel")
    assert sms.template == "closure_cancel"
    monday = await Slot.get(site_id=closed_site.id, day=MONDAY)
    assert await capacity.set_window_capacity(monday, "1", district)
    assert await _offered([await Resident.get(id=displaced.resident_id), waiting]) == [displaced.resident_id]
    await _check(district)


# ---- the purge: a person erased is off the list


async def test_the_purge_takes_a_person_off_the_list_with_their_offers(db, district, clock):
    from models.operations.purge import MARK, _off_the_list, purge

    site = await make_site()
    slot = await make_slot(site, DAY, capacity=1)
    (owner,) = await _fill(district, site, slot, 1)
    gone, _ = await make_resident(site, first_dose=dt.date(2021, 3, 1), name="早已超期", phone="13600000001")
    held, _ = await make_resident(site, first_dose=dt.date(2021, 3, 2), name="正有候补", phone="13600000002")
    recent, _ = await make_resident(site, first_dose=FIRST, name="还在等", phone="13600000003")
    for person in (gone, held, recent):
        await _join(district, person)
    await service.cancel(district, owner.resident_id, owner.id)
    (first_offer,) = await WaitlistOffer.filter(resident_id=gone.id)
    assert await waitlist.decline(district, first_offer.id)  # the place goes on to `held`
    assert await _offered([gone, held, recent]) == [held.id]
    await SmsMessage.filter(status=SmsMessage.QUEUED).update(status=SmsMessage.SENT)

    counted = await purge(district, as_of=clock.today(), after_days=30, dry_run=True)
    assert (counted.people, counted.list_entries) == (1, 1)
    result = await purge(district, as_of=clock.today(), after_days=30)

    assert (result.people, result.list_entries) == (1, 1)
    assert "1 waiting-list entries" in result.summary()
    assert not await WaitlistEntry.filter(resident_id=gone.id).exists()
    assert not await WaitlistOffer.filter(resident_id=gone.id).exists()
    # an offer holding a place is like a hold: that person is left for a later run
    kept = await WaitlistEntry.get(resident_id=held.id)
    assert kept.status == WaitlistEntry.OFFERED
    assert not (await Resident.get(id=held.id)).id_hash.startswith(MARK)
    assert (await WaitlistEntry.get(resident_id=recent.id)).status == WaitlistEntry.WAITING
    assert (await Slot.get(id=slot.id)).held == 1
    await _check(district)
    # someone offered a place between the read and the erasure is left too (their entry locked)
    assert await _off_the_list([{"id": held.id}, {"id": recent.id}], None) == [{"id": recent.id}]


# ---- the hand-off: no room says the person may join the list, and the address leads there


async def test_the_handoffs_no_room_answer_offers_the_list_and_lands_on_the_join_form(settings, clock, db):
    from tests.pages import parse
    from tests.test_handoff import SECRET, ask, make_client, token_of

    site = await make_site()
    await make_slot(site, DAY, capacity=0)
    person, number = await make_resident(site, first_dose=FIRST, name="张三明")
    async with make_client(settings, clock, handoff_partners=(("jkt", SECRET),)) as api:
        answer = (await ask(api, {"id_number": number})).json()
        assert answer["can_book"] is False and answer["reason"] == "no_room"
        assert answer["waitlist"] is True and answer["expires_in"] == 600
        assert set(answer) == {"can_book", "reason", "waitlist", "url", "expires_in"}
        r = await api.get(f"/h/{token_of(answer['url'])}")
        assert r.status_code == 303 and r.headers["location"] == "/booking"
        page = await api.get("/booking")
        assert page.status_code == 200
        join = parse(page).find("form", attrs={"action": "/booking/waitlist"})
        assert join is not None, "the no-room page has the join form"
    assert (await AuditEntry.get(action="handoff")).detail.startswith("no_room")


# ---- the admin's report, its CSV and /metrics


async def _a_day_of_offers(district, clock):
    """Four people on the list (one for weekends only); three offers today: one taken 30 minutes
    after it was made, one declined, one open. Their first joined at NOW, booked at NOW+34 min."""
    site = await make_site()
    slot = await make_slot(site, DAY, capacity=2)
    owners = await _fill(district, site, slot, 2)
    people = await _waiting(district, clock, site, 3)
    (weekends,) = await _waiting(district, clock, site, 1, waitlist.Choice(days="weekends"))
    await service.cancel(district, owners[0].resident_id, owners[0].id)
    clock.advance(minutes=30)
    (taken,) = await WaitlistOffer.filter(resident_id=people[0].id)
    await service.confirm_offer(district, taken.id, request_key="k-taken")
    await service.cancel(district, owners[1].resident_id, owners[1].id)
    (declined,) = await WaitlistOffer.filter(resident_id=people[1].id)
    assert await waitlist.decline(district, declined.id)
    assert await _offered([*people, weekends]) == [people[2].id]
    return people, weekends


async def test_the_waitlist_report_shows_who_waits_for_what_the_offers_per_day_and_the_median(
        client, district, clock):
    from tests.pages import text

    await _a_day_of_offers(district, clock)
    await make_staff("admin", "boss")
    await sign_in(client, "boss")
    page = await get_page(client, "/admin/reports/waitlist")
    summary = text(page.find(id="waitlist-summary"))
    assert "3人" in summary and "1人" in summary and "0小时34分钟" in summary
    chart = page.find("svg", class_="chart")  # drawn by the server: no script, no library
    assert chart["viewbox"] == "0 0 360 190" and len(chart.find_all("rect")) == 14  # a bar a day
    rows = {tr.th.get_text(strip=True): [td.get_text(strip=True) for td in tr.find_all("td")]
            for tr in page.find(id="offers").tbody.find_all("tr")}
    assert rows["2021-07-01"] == ["3", "1", "1", "0", "0", "1"] and rows["2021-06-30"] == ["0"] * 6
    assert len(rows) == 14
    coming = {tr.th.get_text(strip=True): tr.td.get_text(strip=True)
              for tr in page.find(id="coming").tbody.find_all("tr")}
    assert coming["2021-07-01"] == "1" and coming["2021-07-03"] == "2"  # Thursday; Saturday: + weekends
    choices = text(page.find(id="choices"))
    assert "只要第一剂接种点" in choices and "只要周末" in choices
    assert page.find("a", attrs={"aria-current": "page"}, string="候补名单") is not None
    reports = await get_page(client, "/admin/reports")
    assert reports.find("a", href="/admin/reports/waitlist") is not None

    client.cookies.set("lang", "en")
    english = await get_page(client, "/admin/reports/waitlist")
    assert "0 h 34 min" in text(english.find(id="waitlist-summary"))
    assert "Offers per day" in text(english)
    client.cookies.delete("lang")

    csv_response = await client.get("/admin/reports/waitlist.csv")
    assert csv_response.status_code == 200 and csv_response.content.startswith(b"\xef\xbb\xbf")
    lines = csv_response.content.decode("utf-8-sig").splitlines()
    assert lines[0] == "日期,发出的候补通知,候补通知：已接受,候补通知：不需要,候补通知：过期未答复,候补通知：已撤回,候补通知：保留中"
    assert "2021-07-01,3,1,1,0,0,1" in lines and lines[-1] == "合计,3,1,1,0,0,1"
    assert (await AuditEntry.get(action="export_report")).detail == "waitlist 2021-06-18..2021-07-01"


async def test_the_report_with_nobody_on_the_list_says_so(client, district):
    from tests.pages import text

    await make_staff("admin", "boss")
    await sign_in(client, "boss")
    page = await get_page(client, "/admin/reports/waitlist")
    assert "现在没有人在候补。" in text(page) and "暂无" in text(page.find(id="waitlist-summary"))


async def test_metrics_count_the_people_on_the_list_and_the_offers_by_status(settings, district, clock):
    import httpx

    from tests.test_metrics import BEARER, TOKEN, value
    from web.app import create_app

    await _a_day_of_offers(district, clock)
    app = create_app(settings.with_(metrics_token=TOKEN), manage_db=False, clock=clock)
    transport = httpx.ASGITransport(app=app, client=("203.0.113.7", 5000))
    async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as scraper:
        scraped = (await scraper.get("/metrics", headers=BEARER)).text
    assert value(scraped, "booking_waitlist_people", status="waiting") == 2
    assert value(scraped, "booking_waitlist_people", status="offered") == 1
    for status, n in (("open", 1), ("taken", 1), ("declined", 1), ("expired", 0), ("withdrawn", 0)):
        assert value(scraped, "booking_waitlist_offers", status=status) == n, status
    assert "booking_waitlist_offers{status=\"expired\"} 0.0" in scraped  # every status, even at 0
