"""Staff who see only their own area: a sub-district account's search, reveal and booking, a site
account's console, and the Area itself (models/staff/scope.py). tests/test_role_matrix.py walks
every staff route; this file looks closer at what an attempt outside the area sees."""
from __future__ import annotations

import datetime as dt

import pytest
from bs4 import BeautifulSoup

from models.booking import service
from models.db.tables import AuditEntry, Booking, Hold, Resident, SmsMessage, StaffUser
from models.demo import data as demo
from models.staff.scope import Area, OutsideArea
from tests.conftest import NOW
from tests.factories import book_for, id_number, make_resident, make_site, make_slot
from tests.pages import csrf, get_page, parse, text
from tests.staff_helpers import make_staff, sign_in

FIRST = dt.date(2021, 6, 5)
DAY = dt.date(2021, 7, 2)
FAMILY = "13912345678"
HTMX = {"HX-Request": "true"}


@pytest.fixture
async def world(db, district):
    """S01 in 五山街, S02 in 龙洞街; 张三明 lives in 五山街, 赵六军 in 龙洞街 (first dose at S01,
    booked at S02), and both share their phone with family; staff of each kind."""
    here = await make_site("S01", "五山街", name="五山街社区卫生服务中心")
    there = await make_site("S02", "龙洞街", name="龙洞街社区卫生服务中心", address="天河区龙洞路9号")
    mine, mine_number = await make_resident(here, first_dose=FIRST, name="张三明", phone=FAMILY)
    theirs, theirs_number = await make_resident(here, first_dose=FIRST, name="赵六军", phone=FAMILY,
                                                subdistrict="龙洞街")
    slots = {"S01": await make_slot(here, DAY, "09:00", "10:00", capacity=5),
             "S02": await make_slot(there, DAY, "09:00", "10:00", capacity=5)}
    bookings = {"mine": await book_for(district, mine, slots["S01"]),
                "theirs": await book_for(district, theirs, slots["S02"])}
    await make_staff("subdistrict", "wushan1", subdistrict="五山街")
    await make_staff("site", "door1", site_code="S01")
    await make_staff("callcentre", "agent1")
    return dict(here=here, there=there, mine=mine, theirs=theirs, mine_number=mine_number,
                theirs_number=theirs_number, slots=slots, bookings=bookings)


async def _search(client, q: str, *, htmx: bool = False):
    page = await get_page(client, "/staff/calls")
    response = await client.post("/staff/calls/search", data={"csrftoken": csrf(page), "q": q},
                                 headers=HTMX if htmx else {})
    assert response.status_code == 200
    return response


def _names(response) -> list[str]:
    soup = BeautifulSoup(response.text, "html.parser")
    return [row.a.text for row in soup.select("table.calls-results tbody tr")]


async def _out_of_area() -> list[AuditEntry]:
    return await AuditEntry.filter(action="out_of_area").order_by("id")


# ---- the call-centre console, for a sub-district account


async def test_someone_outside_the_area_is_searched_for_exactly_like_nobody(client, world):
    await sign_in(client, "wushan1")
    nobody = id_number(dt.date(1990, 1, 1))
    for htmx in (True, False):
        outside = await _search(client, world["theirs_number"], htmx=htmx)
        unknown = await _search(client, nobody, htmx=htmx)
        if htmx:  # the fragment the agent sees as they type: byte for byte the same
            assert outside.text == unknown.text
        else:  # the whole page: the same but for the number typed, echoed in the box
            assert outside.text.replace(world["theirs_number"], "") == unknown.text.replace(nobody, "")
        assert "赵*军" not in outside.text and "没有找到" in outside.text
    # Inside the area, found; the search is audited the same way either way, with no number.
    assert _names(await _search(client, world["mine_number"])) == ["张*明"]
    details = await AuditEntry.filter(action="search").order_by("id").values_list("detail", flat=True)
    assert details == ["by id, 0 found"] * 4 + ["by id, 1 found"]
    assert not await _out_of_area()


async def test_a_shared_phone_lists_only_the_family_members_of_the_area(client, world):
    await make_resident(world["there"], first_dose=FIRST, name="赵小红", phone=FAMILY)  # 龙洞街
    await make_resident(world["here"], first_dose=FIRST, name="张小明", phone=FAMILY)  # 五山街
    await sign_in(client, "wushan1")
    assert _names(await _search(client, FAMILY, htmx=True)) == ["张*明", "张*明"]
    agent = client  # the call centre, on the same phone number, finds all four
    await client.post("/staff/logout", data={"csrftoken": client.cookies.get("csrftoken")})
    await sign_in(agent, "agent1")
    assert len(_names(await _search(agent, FAMILY, htmx=True))) == 4


async def test_an_account_without_a_sub_district_finds_nobody(client, world):
    await make_staff("subdistrict", "nowhere1", subdistrict="五山街")
    await StaffUser.filter(username="nowhere1").update(subdistrict="")  # an old account, say
    await sign_in(client, "nowhere1")
    assert _names(await _search(client, world["mine_number"])) == []
    await get_page(client, f"/staff/calls/resident?r={world['mine'].id}", status=403)


async def test_reveal_outside_the_area_is_refused_audited_and_shows_nothing(client, world):
    await sign_in(client, "wushan1")
    page = await get_page(client, f"/staff/calls/resident?r={world['mine'].id}")
    theirs = world["theirs"]
    for field, number in (("id", world["theirs_number"]), ("phone", FAMILY)):
        for headers in ({}, HTMX):
            response = await client.post("/staff/calls/reveal", headers=headers,
                                         data={"csrftoken": csrf(page), "r": theirs.id, "field": field})
            assert response.status_code == 403
            assert number not in response.text and theirs.id_masked not in response.text
            assert "您的账号只能查看和办理五山街居民的预约" in response.text
            if headers:  # htmx swaps the refusal in where the number would have been
                assert BeautifulSoup(response.text, "html.parser").title is None
    entries = await _out_of_area()
    assert [(e.resident_id, e.detail, e.username) for e in entries] == \
        [(theirs.id, "POST /staff/calls/reveal", "wushan1")] * 4
    assert not await AuditEntry.filter(action__startswith="reveal").exists()


async def test_the_refusal_page_says_whose_area_and_where_to_send_the_caller(client, world):
    await sign_in(client, "wushan1")
    page = await get_page(client, f"/staff/calls/resident?r={world['theirs'].id}", status=403)
    assert page.title.string.startswith("不在您的服务范围内")
    said = text(page)
    assert "五山街" in said and "12345" in said and "已记入操作记录" in said
    assert "赵*军" not in said and "龙洞街" not in said
    assert page.select_one("main a[autofocus]")["href"] == "/staff"
    # A record that does not exist is still "no such record" (404), not a refusal.
    await get_page(client, "/staff/calls/resident?r=999999", status=404)
    assert len(await _out_of_area()) == 1


async def test_booking_moving_or_cancelling_outside_the_area_changes_nothing(client, world, district):
    await sign_in(client, "wushan1")
    page = await get_page(client, f"/staff/calls/resident?r={world['mine'].id}")
    token, theirs = csrf(page), world["theirs"]
    booking = world["bookings"]["theirs"]
    sms_before = await SmsMessage.all().count()
    other = await make_slot(world["here"], DAY, "10:00", "11:00", capacity=5)
    for path, form in [("/staff/calls/hold", {"r": theirs.id, "slot": other.id}),
                       ("/staff/calls/confirm", {"r": theirs.id, "slot": other.id, "key": "k1"}),
                       ("/staff/calls/cancel", {"r": theirs.id, "b": booking.id})]:
        response = await client.post(path, data={"csrftoken": token, **form})
        assert response.status_code == 403, path
    for path in (f"/staff/calls/book?r={theirs.id}", f"/staff/calls/check?r={theirs.id}&slot={other.id}",
                 f"/staff/calls/done?b={booking.id}", f"/staff/calls/cancel?r={theirs.id}"):
        await get_page(client, path, status=403)
    again = await Booking.get(id=booking.id)
    assert (again.status, again.slot_id) == (Booking.ACTIVE, world["slots"]["S02"].id)
    assert await Booking.filter(resident_id=theirs.id).count() == 1
    assert not await Hold.filter(resident_id=theirs.id).exists()
    assert await SmsMessage.all().count() == sms_before
    assert len(await _out_of_area()) == 7
    assert not await AuditEntry.filter(action__in=["book", "move", "cancel"]).exists()


async def test_inside_the_area_a_sub_district_account_books_as_the_call_centre_does(client, world):
    await sign_in(client, "wushan1")
    mine, slot = world["mine"], await make_slot(world["here"], DAY, "10:00", "11:00", capacity=5)
    page = await get_page(client, f"/staff/calls/book?r={mine.id}")
    response = await client.post("/staff/calls/hold", data={"csrftoken": csrf(page), "r": mine.id,
                                                            "slot": slot.id})
    assert response.status_code == 303
    check = await get_page(client, response.headers["location"])
    key = check.find("input", attrs={"name": "key"})["value"]
    response = await client.post("/staff/calls/confirm", data={"csrftoken": csrf(check), "r": mine.id,
                                                               "slot": slot.id, "key": key})
    assert response.status_code == 303 and response.headers["location"].startswith("/staff/calls/done")
    assert (await Booking.get(resident_id=mine.id, status=Booking.ACTIVE)).slot_id == slot.id
    assert await AuditEntry.filter(action="move", resident_id=mine.id).exists()
    assert not await _out_of_area()


async def test_the_call_centre_and_admins_serve_the_whole_district(client, world):
    await make_staff("admin", "boss1")
    for who in ("agent1", "boss1"):
        await sign_in(client, who)
        assert _names(await _search(client, world["theirs_number"])) == ["赵*军"]
        await get_page(client, f"/staff/calls/resident?r={world['theirs'].id}")
        await client.post("/staff/logout", data={"csrftoken": client.cookies.get("csrftoken")})
    assert not await _out_of_area()


# ---- the site console, for a site account


@pytest.fixture
async def door(world, clock, client):
    clock.moment = NOW + dt.timedelta(days=1)  # the booked day, at the door
    await sign_in(client, "door1")
    return client


async def test_a_site_account_sees_only_its_own_sites_list(door, world):
    page = await get_page(door, "/staff/site")
    listed = text(page.select_one("main"))
    assert "张*明" in listed and "赵*军" not in listed
    for url in ("/staff/site?site=S02", "/staff/site/close?site=S02"):
        refused = await get_page(door, url, status=403)
        assert "赵*军" not in text(refused) and "五山街社区卫生服务中心" in text(refused)
    entries = await _out_of_area()
    assert [(e.detail, e.resident_id) for e in entries] == [
        ("GET /staff/site site=S02", None), ("GET /staff/site/close site=S02", None)]
    # Closing someone else's day by editing the form: refused, their booking untouched.
    response = await door.post("/staff/site/close", data={"csrftoken": csrf(page), "site": "S02"})
    assert response.status_code == 403
    assert (await Booking.get(id=world["bookings"]["theirs"].id)).status == Booking.ACTIVE
    assert not await AuditEntry.filter(action="no_shows").exists()
    # Whatever is typed in place of a site code, no number lands in the audit trail.
    response = await door.post("/staff/site/lookup", data={"csrftoken": csrf(page),
                                                           "site": world["mine_number"], "q": "x"})
    assert response.status_code == 403
    assert (await _out_of_area())[-1].detail == "POST /staff/site/lookup site=?"


async def test_at_the_door_a_booking_elsewhere_is_not_shown_and_cannot_be_reached_by_id(door, world):
    page = await get_page(door, "/staff/site")
    theirs = world["bookings"]["theirs"]
    # Typed at the door: "not a booking here today", and nothing of it (issue 21; the person has
    # their SMS). tests/test_staff_scope.py: the same answer whatever was typed.
    response = await door.post("/staff/site/lookup", data={"csrftoken": csrf(page), "q": theirs.code})
    assert response.status_code == 422
    said = text(parse(response).select_one(".refusal"))
    assert "不是本接种点今天的预约" in said and "龙洞街" not in said and "天河区龙洞路9号" not in said
    assert (await AuditEntry.get(action="check_in_refused")).detail.startswith("elsewhere")
    # By its row id (nobody at the door has it): refused, audited, nothing about it shown.
    response = await door.post("/staff/site/check-in", data={"csrftoken": csrf(page), "booking": theirs.id})
    assert response.status_code == 403
    assert "龙洞街" not in response.text and "赵*军" not in response.text
    entry = (await _out_of_area())[-1]
    assert entry.resident_id == world["theirs"].id
    assert entry.detail == f"POST /staff/site/check-in booking={theirs.id} site=S01"
    assert (await Booking.get(id=theirs.id)).status == Booking.ACTIVE
    # Its own site's booking checks in as before.
    mine = world["bookings"]["mine"]
    response = await door.post("/staff/site/check-in", data={"csrftoken": csrf(page), "booking": mine.id})
    assert response.status_code == 303 and (await Booking.get(id=mine.id)).status == Booking.DONE


# ---- the Area itself


async def test_area_of_each_role_and_what_it_covers(world, district):
    mine, theirs = world["mine"], world["theirs"]
    users = {u.username: u for u in await StaffUser.all()}
    assert Area.of(users["agent1"]).everyone
    wushan, door1 = Area.of(users["wushan1"]), Area.of(users["door1"])
    assert wushan == Area(subdistrict="五山街") and door1.site_id == world["here"].id
    assert await wushan.covers(mine) and not await wushan.covers(theirs)
    with pytest.raises(OutsideArea) as refused:
        await wushan.check(theirs)
    assert refused.value.resident_id == theirs.id
    assert [r.id for r in await Resident.filter(wushan.where())] == [mine.id]
    # A site: whoever had their first dose there or is booked there, each once.
    assert sorted(r.id for r in await Resident.filter(door1.where())) == [mine.id, theirs.id]
    await service.cancel(district, theirs.id, world["bookings"]["theirs"].id)
    await book_for(district, theirs, world["slots"]["S02"])  # booked at S02 twice now
    there = Area(site_id=world["there"].id)
    assert [r.id for r in await Resident.filter(there.where())] == [theirs.id]
    assert await there.covers_booking(world["bookings"]["theirs"])
    assert not await door1.covers_booking(world["bookings"]["theirs"])
    with pytest.raises(OutsideArea):
        await door1.check_booking(world["bookings"]["theirs"])
    assert await wushan.covers_booking(world["bookings"]["mine"])
    assert not await wushan.covers_booking(world["bookings"]["theirs"])
    assert not await Area.of(StaffUser(role="subdistrict", subdistrict="")).covers(
        Resident(subdistrict=""))


def test_the_demo_sub_district_account_has_people_to_serve():
    (subdistrict,) = [sub for role, _, _, _, sub in demo.STAFF if role == "subdistrict"]
    people = [p for p in demo.showcase() + demo.crowd() if p.subdistrict == subdistrict]
    cases = {p.case for p in people}
    assert len(people) >= 10 and {"eligible", "booked", "vaccinated"} <= cases
