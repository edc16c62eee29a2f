"""The waiting list's staff side: an agent (call centre or clinic) puts a caller on the list, sees
where they stand and takes them off; the call-back list of places held for people without a
mobile phone, booked or declined from it; a site's same-day leftovers offered to the list and
followed as people accept. Every action audited. On SQLite and PostgreSQL."""
from __future__ import annotations

import datetime as dt
import re

import pytest

from models.booking import service, waitlist
from models.db.tables import AuditEntry, Booking, Slot, SmsMessage, WaitlistEntry, WaitlistOffer
from models.operations.checks import check_database
from models.people.pii import mask_name
from tests.conftest import NOW
from tests.factories import book_for, make_resident, make_site, make_slot
from tests.pages import get_page, parse, post_form, text
from tests.staff_helpers import browser_at, make_staff, sign_in

FIRST = dt.date(2021, 6, 5)  # day 21 is 6-26, day 56 is 7-31
DAY = dt.date(2021, 7, 2)
NOW_DAY = NOW.date()  # the clock's day: same-day leftovers are for it


@pytest.fixture
async def world(db, district):
    """Two sites in two sub-districts, each with one window, full: every caller is told 'no room'."""
    wushan = await make_site("S01", "五山街", name="五山街社区卫生服务中心")
    longdong = await make_site("S02", "龙洞街", name="龙洞街社区卫生服务中心")
    slots = {"S01": await make_slot(wushan, DAY, capacity=1), "S02": await make_slot(longdong, DAY, capacity=1)}
    owners = {}
    for code, site in (("S01", wushan), ("S02", longdong)):
        person, _ = await make_resident(site, first_dose=FIRST, name=f"占位{code}", phone="13900000000",
                                        subdistrict=site.subdistrict)
        owners[code] = await book_for(district, person, slots[code])
    caller, _ = await make_resident(wushan, first_dose=FIRST, name="王无机", phone="13700000001",
                                    subdistrict="五山街")
    await make_staff("callcentre", "agent1")
    await make_staff("clinic", "doctor1", subdistrict="五山街")
    await make_staff("site", "door1", site_code="S01")
    await make_staff("site", "door2", site_code="S02")
    return dict(sites={"S01": wushan, "S02": longdong}, slots=slots, owners=owners, caller=caller)


async def _check(district):
    report = await check_database(district.rules)
    assert report.ok, report.errors


async def _join(client, resident, *, status=303, **choice):
    card = await get_page(client, f"/staff/calls/resident?r={resident.id}")
    data = {"r": resident.id, "scope": "site", "days": "any", "part": "any", **choice}
    return await post_form(client, "/staff/calls/waitlist", card, data, status=status)


async def _card(client, resident):
    return await get_page(client, f"/staff/calls/resident?r={resident.id}")


async def _audits(action):
    return await AuditEntry.filter(action=action).order_by("id")


# ---- the agent's console: join, where they stand, leave


async def test_an_agent_puts_a_caller_on_the_list_sees_where_they_stand_and_takes_them_off(
        client, world, district, clock):
    caller = world["caller"]
    earlier, _ = await make_resident(world["sites"]["S01"], first_dose=FIRST, name="李早到", phone="13700000002",
                                     subdistrict="五山街")
    await waitlist.join(district, await service.stand(district, earlier), waitlist.Choice())
    clock.advance(minutes=1)
    await sign_in(client, "agent1")

    card = await _card(client, caller)
    form = card.find("form", attrs={"action": "/staff/calls/waitlist"})
    assert form is not None and "不能预约：所有接种点在可接种日期内都已约满。" in text(card)
    assert {i["value"] for i in form.find_all("input", attrs={"name": "scope"})} == {"site", "subdistrict", "any"}
    assert form.find("input", attrs={"name": "callback"})

    response = await _join(client, caller, days="weekdays", part="morning", callback="1")
    assert response.headers["location"] == f"/staff/calls/resident?r={caller.id}#waitlist"
    entry = await WaitlistEntry.get(resident_id=caller.id)
    assert (entry.status, entry.scope, entry.days, entry.part, entry.callback, entry.channel) == (
        "waiting", "site", "weekdays", "morning", True, "callcentre")
    assert entry.added_by_id is not None

    page = text(await _card(client, caller))
    assert "来电人在候补名单上" in page and "约1人" in page  # 李早到 joined first
    assert "只要工作日" in page and "只要上午" in page and "无手机，由客服回电" in page
    (added,) = await _audits("waitlist_add")
    assert added.resident_id == caller.id and added.detail == f"{caller.id_masked} call back"

    card = await _card(client, caller)
    await post_form(client, "/staff/calls/waitlist/leave", card, {"r": caller.id})
    assert (await WaitlistEntry.get(resident_id=caller.id)).status == "left"
    page = text(await _card(client, caller))
    assert "来电人在候补名单上" not in page and "加入候补" in page
    (left,) = await _audits("waitlist_leave")
    assert left.resident_id == caller.id and left.detail == caller.id_masked


async def test_a_booked_caller_is_refused_in_the_cards_words_and_nothing_is_written(client, world):
    owner = await world["owners"]["S01"].resident
    await sign_in(client, "agent1")
    card = await _card(client, owner)
    assert card.find("form", attrs={"action": "/staff/calls/waitlist"}) is None  # booked: no form
    response = await client.post("/staff/calls/waitlist", data={
        "csrftoken": client.cookies.get("csrftoken"), "r": owner.id, "scope": "any"})
    assert response.status_code == 422
    page = parse(response)
    assert "不能加入候补：来电人已有预约" in page.select_one(".error-summary").text
    assert not await WaitlistEntry.exists()
    assert not await _audits("waitlist_add")


async def test_a_clinic_account_says_how_the_join_was_made(client, world):
    caller = world["caller"]
    await sign_in(client, "doctor1")
    response = await _join(client, caller, status=422)  # no channel chosen: asked, nothing stored
    assert "请选择这次预约的办理方式" in parse(response).select_one(".error-summary").text
    assert not await WaitlistEntry.exists()
    await _join(client, caller, channel="clinic_desk")
    assert (await WaitlistEntry.get(resident_id=caller.id)).channel == "clinic_desk"
    (added,) = await _audits("waitlist_add")
    assert added.detail == f"{caller.id_masked} via clinic_desk"


# ---- the call-back list


async def _on_list_for_call_back(district, resident, clock=None):
    entry = await waitlist.join(district, await service.stand(district, resident), waitlist.Choice(),
                                channel="callcentre", callback=True)
    if clock is not None:
        clock.advance(minutes=1)  # the next to join comes after
    return entry


async def test_a_freed_place_is_on_the_call_back_list_and_booking_it_there_books_the_held_place(
        client, world, district):
    caller, slot = world["caller"], world["slots"]["S01"]
    await sign_in(client, "agent1")
    await _join(client, caller, callback="1")
    owner = world["owners"]["S01"]
    await service.cancel(district, owner.resident_id, owner.id)  # the place goes to the caller, held
    assert not await SmsMessage.filter(resident_id=caller.id, kind="offer").exists()
    fresh = await Slot.get(id=slot.id)
    assert (fresh.booked, fresh.held) == (0, 1)

    home = await get_page(client, "/staff/calls")
    assert "1人待回电" in home.select_one("#callbacks-link").text
    page = await get_page(client, "/staff/calls/callbacks")
    (row,) = page.select("table.calls-callbacks tbody tr")
    shown = text(row)
    assert mask_name(caller.name) in shown and caller.phone_masked in shown and "13700000001" not in shown
    assert "五山街社区卫生服务中心" in shown and "09:00" in shown
    book = row.find("a", class_="button")
    assert book["href"] == f"/staff/calls/check?r={caller.id}&slot={slot.id}"

    check = await get_page(client, book["href"])
    assert "名额已保留到" in text(check)
    form = check.find("form", attrs={"action": "/staff/calls/confirm"})
    hidden = {i["name"]: i["value"] for i in form.find_all("input") if i.get("type") == "hidden"}
    response = await post_form(client, "/staff/calls/confirm", check, hidden)
    assert response.headers["location"].startswith("/staff/calls/done?b=")

    fresh = await Slot.get(id=slot.id)
    assert (fresh.booked, fresh.held) == (1, 0)  # the held place became the booking: booked+1, held-1
    booking = await Booking.get(resident_id=caller.id, status="active")
    assert booking.slot_id == slot.id and booking.channel == "callcentre"
    assert (await WaitlistEntry.get(resident_id=caller.id)).status == "booked"
    assert (await WaitlistOffer.get(resident_id=caller.id)).status == "taken"
    assert not (await get_page(client, "/staff/calls/callbacks")).select("table.calls-callbacks")
    assert [a.action for a in await AuditEntry.filter(resident_id=caller.id).order_by("id")
            if a.action in ("waitlist_add", "book")] == ["waitlist_add", "book"]
    await _check(district)


async def test_not_needed_passes_the_place_to_the_next_call_back_person(client, world, district, clock):
    caller, slot = world["caller"], world["slots"]["S01"]
    second, _ = await make_resident(world["sites"]["S01"], first_dose=FIRST, name="赵后到", phone="13700000003",
                                    subdistrict="五山街")
    await _on_list_for_call_back(district, caller, clock)
    await _on_list_for_call_back(district, second)
    owner = world["owners"]["S01"]
    await service.cancel(district, owner.resident_id, owner.id)
    (offer,) = await waitlist.callbacks()
    assert offer.resident_id == caller.id

    await sign_in(client, "agent1")
    page = await get_page(client, "/staff/calls/callbacks")
    response = await post_form(client, "/staff/calls/callbacks/decline", page, {"r": caller.id, "offer": offer.id})
    assert response.headers["location"] == "/staff/calls/callbacks?declined=1"
    assert (await WaitlistOffer.get(id=offer.id)).status == "declined"
    assert (await WaitlistEntry.get(resident_id=caller.id)).status == "waiting"  # still on the list
    (passed,) = await waitlist.callbacks()
    assert passed.resident_id == second.id and passed.slot_id == slot.id
    page = await get_page(client, response.headers["location"])
    assert "名额已给候补的下一位" in text(page) and mask_name(second.name) in text(page)
    (declined,) = await _audits("waitlist_decline")
    assert declined.resident_id == caller.id
    assert declined.detail == f"{caller.id_masked} S01 {DAY} 09:00"
    # declined again (a second tap, another agent's tab): nothing more done, said so
    response = await post_form(client, "/staff/calls/callbacks/decline", page, {"r": caller.id, "offer": offer.id})
    assert response.headers["location"] == "/staff/calls/callbacks?gone=1"
    assert "这个名额已不再为来电人保留" in text(await get_page(client, response.headers["location"]))
    assert len(await _audits("waitlist_decline")) == 1
    assert (await waitlist.callbacks())[0].id == passed.id
    # an offer that is someone else's, or made up: nothing declined
    response = await client.post("/staff/calls/callbacks/decline", data={
        "csrftoken": client.cookies.get("csrftoken"), "r": caller.id, "offer": passed.id})
    assert response.status_code == 404
    assert (await WaitlistOffer.get(id=passed.id)).status == "open"
    await _check(district)


async def test_a_clinic_account_sees_only_its_sub_districts_call_backs(client, world, district, clock):
    caller = world["caller"]
    far, _ = await make_resident(world["sites"]["S02"], first_dose=FIRST, name="钱龙洞", phone="13700000004",
                                 subdistrict="龙洞街")
    await _on_list_for_call_back(district, caller, clock)
    await _on_list_for_call_back(district, far)
    for code in ("S01", "S02"):
        owner = world["owners"][code]
        await service.cancel(district, owner.resident_id, owner.id)
    assert len(await waitlist.callbacks()) == 2

    await sign_in(client, "doctor1")
    page = text(await get_page(client, "/staff/calls/callbacks"))
    assert mask_name(caller.name) in page and mask_name(far.name) not in page
    assert "1人待回电" in text(await get_page(client, "/staff/calls"))
    # declining someone else's sub-district's offer: refused and audited as out of area
    (theirs,) = [o for o in await waitlist.callbacks() if o.resident_id == far.id]
    response = await client.post("/staff/calls/callbacks/decline", data={
        "csrftoken": client.cookies.get("csrftoken"), "r": far.id, "offer": theirs.id})
    assert response.status_code == 403
    assert (await WaitlistOffer.get(id=theirs.id)).status == "open"
    assert (await AuditEntry.get(action="out_of_area")).resident_id == far.id

    async with browser_at(client.app, "203.0.113.30") as agent:
        await sign_in(agent, "agent1")
        page = text(await get_page(agent, "/staff/calls/callbacks"))
        assert mask_name(caller.name) in page and mask_name(far.name) in page


# ---- a site's same-day leftovers


async def _three_waiting(district, world, clock):
    people = []
    for i, name in enumerate(("孙一", "孙二", "孙三")):
        person, _ = await make_resident(world["sites"]["S01"], first_dose=FIRST, name=name,
                                        phone=f"1370000001{i}", subdistrict="五山街")
        await waitlist.join(district, await service.stand(district, person), waitlist.Choice())
        clock.advance(minutes=1)
        people.append(person)
    return people


async def test_leftovers_go_to_the_first_people_waiting_with_the_short_hold_and_the_page_follows_them(
        client, world, district, clock):
    clock.moment = clock.moment.replace(hour=14, minute=57)
    first, second, third = await _three_waiting(district, world, clock)  # a minute apart: 15:00 now
    await sign_in(client, "door1")
    home = await get_page(client, "/staff/site")
    assert home.find("a", attrs={"href": "/staff/site/leftovers"})
    page = await get_page(client, "/staff/site/leftovers")
    form = page.find("form", attrs={"action": "/staff/site/leftovers/check"})
    assert form["method"] == "get" and form.find("input", attrs={"name": "count"})

    check = await get_page(client, "/staff/site/leftovers/check?count=2&until=17:00")
    button = check.find("form", attrs={"action": "/staff/site/leftovers"}).button
    assert button.text.strip() == "发出2个候补通知"
    assert "15:45-17:00" in text(check)  # when they come: once the hold has run out, until the site stops
    response = await post_form(client, "/staff/site/leftovers", check,
                               {"site": "S01", "count": "2", "until": "17:00"})
    assert response.headers["location"] == "/staff/site/leftovers?watch=1"

    offers = await WaitlistOffer.all().order_by("id").select_related("slot")
    assert [o.resident_id for o in offers] == [first.id, second.id]  # the first two, in order
    for offer in offers:
        assert offer.same_day and offer.status == "open"
        assert offer.expires_at - offer.created_at == dt.timedelta(minutes=district.same_day_offer_minutes)
        assert (offer.slot.day, offer.slot.start, offer.slot.end) == (NOW_DAY, "15:45", "17:00")
    assert not await WaitlistOffer.filter(resident_id=third.id).exists()
    (audit,) = await _audits("leftovers")
    assert audit.detail == "2 left until 17:00 site=S01: 2 offered" and audit.username == "door1"

    watched = await client.get(response.headers["location"])
    soup = parse(watched)
    assert soup.find("meta", attrs={"http-equiv": "refresh"})["content"] == "20"
    assert soup.select_one("#count-open").text == "2" and soup.select_one("#count-taken").text == "0"
    assert "已发出2个候补通知" in text(soup)
    stop = soup.find("a", string=re.compile("停止自动刷新"))
    assert stop["href"] == "/staff/site/leftovers"
    assert not (await get_page(client, stop["href"])).find("meta", attrs={"http-equiv": "refresh"})

    await service.confirm_offer(district, offers[0].id, request_key=None)
    soup = await get_page(client, "/staff/site/leftovers?watch=1")
    assert soup.select_one("#count-open").text == "1" and soup.select_one("#count-taken").text == "1"
    await _check(district)


@pytest.mark.parametrize("count, until, error, message", [
    ("0", "17:00", "count", "1到500之间的整数"),
    ("501", "17:00", "count", "1到500之间的整数"),
    ("两", "17:00", "count", "1到500之间的整数"),
    ("2", "25:00", "until", "例如17:00"),
    ("2", "", "until", "例如17:00"),
    ("2", "15:30", "late", "来不及了"),
])
async def test_a_bad_count_or_a_time_too_late_is_explained_and_nothing_is_written(
        client, world, clock, count, until, error, message):
    clock.moment = clock.moment.replace(hour=15, minute=0)
    await sign_in(client, "door1")
    check = await client.get("/staff/site/leftovers/check", params={"count": count, "until": until})
    assert check.status_code == 422
    page = await get_page(client, "/staff/site/leftovers")
    response = await client.post("/staff/site/leftovers", data={
        "csrftoken": client.cookies.get("csrftoken"), "site": "S01", "count": count, "until": until})
    assert response.status_code == 422
    for soup in (parse(check), parse(response)):
        assert message in soup.select_one(".error-summary").text
        assert soup.find("input", attrs={"name": "count"})["value"] == count  # what was typed, kept
        assert soup.find("input", attrs={"name": "until"})["value"] == until
        wrong = "count" if error == "count" else "until"
        assert soup.find("input", attrs={"name": wrong}).has_attr("aria-invalid")
    assert await Slot.filter(day=NOW_DAY).count() == 0 and not await WaitlistOffer.exists()
    assert not await _audits("leftovers")
    assert page.find("form", attrs={"action": "/staff/site/leftovers/check"})


async def test_an_admin_offers_any_sites_leftovers_and_a_site_account_only_its_own(client, world, district, clock):
    clock.moment = clock.moment.replace(hour=15, minute=0)
    await make_staff("admin", "boss1")
    await sign_in(client, "boss1")
    check = await get_page(client, "/staff/site/leftovers/check?site=S02&count=3&until=18:00")
    response = await post_form(client, "/staff/site/leftovers", check, {"site": "S02", "count": "3", "until": "18:00"})
    assert response.headers["location"] == "/staff/site/leftovers?watch=1&site=S02"
    assert (await Slot.get(day=NOW_DAY)).capacity == 3
    async with browser_at(client.app, "203.0.113.31") as door:
        await sign_in(door, "door1")
        response = await door.post("/staff/site/leftovers", data={
            "csrftoken": door.cookies.get("csrftoken"), "site": "S02", "count": "3", "until": "18:00"})
        assert response.status_code == 403
        assert (await Slot.get(day=NOW_DAY)).capacity == 3
        assert (await AuditEntry.filter(action="out_of_area").first()).username == "door1"


async def test_the_staff_pages_of_the_list_read_in_english(client, world, district, clock):
    clock.moment = clock.moment.replace(hour=15, minute=0)
    client.cookies.set("lang", "en")
    await sign_in(client, "agent1")
    card = text(await _card(client, world["caller"]))
    assert "Join the waiting list" in card and "No mobile phone: an agent calls back" in card
    assert "Waiting list: people to call back" in text(await get_page(client, "/staff/calls/callbacks"))
    async with browser_at(client.app, "203.0.113.32") as door:
        door.cookies.set("lang", "en")
        await sign_in(door, "door1")
        check = await get_page(door, "/staff/site/leftovers/check?count=2&until=17:00")
        assert "Send 2 waiting-list offers" in text(check)
