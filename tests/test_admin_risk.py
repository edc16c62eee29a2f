"""Risk areas in the admin console: marking a sub-district refuses its residents everywhere (their
page, the agent's card and booking, check-in at the door), a marking from tomorrow does not
refuse today, lifting lets them book again, and the area's bookings are cancelled with one SMS each."""
from __future__ import annotations

import datetime as dt

import pytest

from models.db.tables import AuditEntry, Booking, Hold, RiskArea, SmsMessage
from models.messaging.wording import MAX_CHARS
from models.people.links import issue_link
from tests.conftest import NOW, TODAY, VAULT
from tests.factories import book_for, make_resident, make_site, make_slot
from tests.pages import get_page, parse, post_form, text
from tests.staff_helpers import browser_at, make_staff, sign_in

FIRST = dt.date(2021, 6, 5)  # second dose open from 2021-06-26: booking is open at NOW
TOMORROW = TODAY + dt.timedelta(days=1)


@pytest.fixture
async def world(db, district):
    """五山街 (S01) with two residents, 龙洞街 (S02) with one; windows today and tomorrow."""
    wushan = await make_site("S01", "五山街", name="五山街社区卫生服务中心")
    longdong = await make_site("S02", "龙洞街", name="龙洞街社区卫生服务中心", address="天河区龙洞路9号")
    today = await make_slot(wushan, TODAY, "09:00", "10:00", capacity=10)
    tomorrow = await make_slot(wushan, TOMORROW, "09:00", "10:00", capacity=10)
    far = await make_slot(longdong, TOMORROW, "09:00", "10:00", capacity=10)
    zhang, zhang_id = await make_resident(wushan, first_dose=FIRST, name="张三明")
    li, _ = await make_resident(wushan, first_dose=FIRST, name="李四华", phone="13812345679")
    zhao, _ = await make_resident(longdong, first_dose=FIRST, name="赵六军", phone="13812345670")
    await make_staff("admin", "boss")
    return dict(wushan=wushan, longdong=longdong, today=today, tomorrow=tomorrow, far=far,
                zhang=zhang, zhang_id=zhang_id, li=li, zhao=zhao)


async def mark(client, subdistrict: str, level: str = "high", since: str = "", status: int = 303):
    page = await get_page(client, "/admin/risk")
    return await post_form(client, "/admin/risk/mark", page,
                           {"subdistrict": subdistrict, "level": level, "since": since}, status=status)


async def admin(client):
    await sign_in(client, "boss")


async def resident_page(client, world, resident="zhang", number=None):
    """Open the resident's link in another browser, prove who they are; the /booking answer."""
    token = await issue_link(world[resident], now=NOW)
    async with browser_at(client.app, "198.51.100.20") as phone:
        await phone.get(f"/b/{token}")
        page = await get_page(phone, "/booking")
        await post_form(phone, "/booking/verify", page, {"id_number": number or world["zhang_id"]})
        return await phone.get("/booking")


async def test_a_marked_area_refuses_its_resident_and_their_page_says_why_and_what_to_do(client, world):
    await admin(client)
    await mark(client, "五山街")
    area = await RiskArea.get(subdistrict="五山街")
    assert (area.level, area.since) == ("high", TODAY)  # the form's date left empty: from today

    response = await resident_page(client, world)
    assert response.status_code == 200
    body = text(parse(response))
    assert "暂停预约" in body and "五山街" in body and "中高风险地区" in body
    assert "解除后" in body and "12345" in body

    entry = await AuditEntry.get(action="mark_risk_area")
    assert entry.username == "boss" and entry.detail == f"五山街 high from {TODAY} (new)"
    page = text(await get_page(client, "/admin/risk"))
    assert "五山街" in page and "高风险" in page


async def test_the_agents_card_says_why_and_booking_for_the_caller_is_refused(client, world):
    await admin(client)
    await mark(client, "五山街", level="medium")
    await make_staff("callcentre", "agent1")
    async with browser_at(client.app, "198.51.100.30") as agent:
        await sign_in(agent, "agent1")
        r = world["zhang"]
        card = await get_page(agent, f"/staff/calls/resident?r={r.id}")
        body = text(card)
        assert "不能预约：来电人所在街道（五山街）目前为中高风险地区" in body
        assert "12345" in body
        assert not card.find("a", href=lambda h: h and h.startswith("/staff/calls/book"))
        slot = world["tomorrow"].id
        response = await post_form(agent, "/staff/calls/hold", card, {"r": r.id, "slot": slot})
        assert response.headers["location"] == f"/staff/calls/resident?r={r.id}"
        response = await post_form(agent, "/staff/calls/confirm", card, {"r": r.id, "slot": slot, "key": "k"})
        assert response.headers["location"] == f"/staff/calls/resident?r={r.id}"
    assert not await Hold.filter(resident_id=r.id).exists()
    assert not await Booking.filter(resident_id=r.id).exists()


async def test_check_in_refuses_a_person_from_a_marked_area_and_says_what_to_tell_them(client, world, district):
    booking = await book_for(district, world["zhang"], world["today"])  # booked before the marking
    await admin(client)
    await mark(client, "五山街")
    await make_staff("site", "door1", site_code="S01")
    async with browser_at(client.app, "198.51.100.40") as door:
        await sign_in(door, "door1")
        page = await get_page(door, "/staff/site")
        found = parse(await post_form(door, "/staff/site/lookup", page, {"q": booking.code}, status=422))
        refusal = text(found.find(id="refusal"))
        assert "不能签到：居住街道为中高风险地区" in refusal
        assert "五山街" in refusal and "请告诉对方" in refusal and "12345" in refusal
        assert not found.find("form", action="/staff/site/check-in")
        response = await post_form(door, "/staff/site/check-in", page,
                                   {"booking": booking.id, "site": "S01"}, status=422)
        assert "居住街道为中高风险地区" in text(parse(response))
    assert (await Booking.get(id=booking.id)).status == Booking.ACTIVE
    details = await AuditEntry.filter(action="check_in_refused").values_list("detail", flat=True)
    assert details and all(d.startswith("restricted ") for d in details)


async def test_a_marking_from_tomorrow_does_not_refuse_today(client, world, clock, district):
    booking = await book_for(district, world["li"], world["today"])
    await admin(client)
    await mark(client, "五山街", since=TOMORROW.isoformat())
    assert "尚未开始" in text(await get_page(client, "/admin/risk"))

    response = await resident_page(client, world)
    assert response.status_code == 303 and response.headers["location"] == "/booking/site"
    await make_staff("site", "door1", site_code="S01")
    async with browser_at(client.app, "198.51.100.40") as door:
        await sign_in(door, "door1")
        page = await get_page(door, "/staff/site")
        found = parse(await post_form(door, "/staff/site/lookup", page, {"q": booking.code}, status=200))
        assert found.find("form", action="/staff/site/check-in")

    clock.advance(days=1)
    response = await resident_page(client, world)
    assert response.status_code == 200 and "五山街" in text(parse(response))


async def test_lifting_the_marking_lets_them_book_again(client, world, district):
    await admin(client)
    await mark(client, "五山街")
    assert (await resident_page(client, world)).status_code == 200  # refused

    area = await RiskArea.get(subdistrict="五山街")
    page = await get_page(client, "/admin/risk")
    await post_form(client, "/admin/risk/lift", page, {"a": area.id})
    assert not await RiskArea.exists()
    assert "已解除五山街" in text(await get_page(client, "/admin/risk"))
    entry = await AuditEntry.get(action="lift_risk_area")
    assert entry.detail == f"五山街 high from {TODAY} lifted"

    response = await resident_page(client, world)
    assert response.status_code == 303 and response.headers["location"] == "/booking/site"
    booking = await book_for(district, world["zhang"], world["tomorrow"])
    assert booking.status == Booking.ACTIVE


async def test_the_areas_bookings_are_cancelled_with_one_sms_each_saying_why(client, world, district):
    mine = [await book_for(district, world[key], world["tomorrow"]) for key in ("zhang", "li")]
    theirs = await book_for(district, world["zhao"], world["far"])
    await admin(client)
    await mark(client, "五山街")
    area = await RiskArea.get(subdistrict="五山街")
    assert "2个预约" in text(await get_page(client, "/admin/risk"))

    page = await get_page(client, f"/admin/risk/bookings?a={area.id}")
    body = text(page)
    assert "张*明" in body and "李*华" in body and "张三明" not in body
    assert "赵*军" not in body
    assert "S01" not in body and "五山街社区卫生服务中心" in body
    shown = page.find("input", {"name": "shown"})["value"]
    await post_form(client, "/admin/risk/cancel", page, {"a": area.id, "shown": shown})

    for booking in mine:
        assert (await Booking.get(id=booking.id)).status == Booking.CANCELLED
    assert (await Booking.get(id=theirs.id)).status == Booking.ACTIVE
    assert (await world["tomorrow"].refresh_from_db() or world["tomorrow"]).booked == 0
    sms = await SmsMessage.filter(kind="risk_cancel").order_by("id")
    assert [m.resident_id for m in sms] == [world["zhang"].id, world["li"].id]
    for message in sms:
        words = VAULT.decrypt(message.body_cipher)
        assert "五山街" in words and "高风险" in words and "已取消" in words and "12345" in words
        assert len(words) <= MAX_CHARS
    entry = await AuditEntry.get(action="cancel_risk_bookings")
    assert entry.detail == "2 cancelled of 2 active, 2 SMS queued area=五山街"
    assert "已取消2个预约" in text(await get_page(client, f"/admin/risk/bookings?a={area.id}"))

    # The same form posted twice: nobody is cancelled or told twice.
    await post_form(client, "/admin/risk/cancel", page, {"a": area.id, "shown": shown}, status=409)
    assert await SmsMessage.filter(kind="risk_cancel").count() == 2


async def test_cancel_all_cancels_the_bookings_the_page_showed_or_none(client, world, district):
    """Issue 22: "取消全部2个预约" pressed after a third booking was made cancels nobody and shows
    the list again with 3 (before: it cancelled 3, one the admin never saw)."""
    await book_for(district, world["zhang"], world["tomorrow"])
    await admin(client)
    await mark(client, "五山街", since=(TODAY + dt.timedelta(days=1)).isoformat())
    area = await RiskArea.get(subdistrict="五山街")
    page = await get_page(client, f"/admin/risk/bookings?a={area.id}")
    assert "取消全部1个预约" in text(page)
    late = await book_for(district, world["li"], world["tomorrow"])  # booked meanwhile
    shown = page.find("input", {"name": "shown"})["value"]
    again = await post_form(client, "/admin/risk/cancel", page, {"a": area.id, "shown": shown},
                            status=409)
    assert await Booking.filter(status=Booking.CANCELLED).count() == 0
    assert "预约列表已变化，没有取消任何预约" in again.text and "取消全部2个预约" in again.text
    await post_form(client, "/admin/risk/cancel", parse(again),
                    {"a": area.id, "shown": parse(again).find("input", {"name": "shown"})["value"]})
    assert (await Booking.get(id=late.id)).status == Booking.CANCELLED
    assert await Booking.filter(status=Booking.CANCELLED).count() == 2


async def test_one_booking_of_the_area_can_be_cancelled_alone(client, world, district):
    first, second = [await book_for(district, world[key], world["tomorrow"]) for key in ("zhang", "li")]
    theirs = await book_for(district, world["zhao"], world["far"])
    await admin(client)
    await mark(client, "五山街")
    area = await RiskArea.get(subdistrict="五山街")
    page = await get_page(client, f"/admin/risk/bookings?a={area.id}")
    await post_form(client, "/admin/risk/cancel", page, {"a": area.id, "b": second.id})
    # A booking of someone outside the area is not the area's to cancel.
    await post_form(client, "/admin/risk/cancel", page, {"a": area.id, "b": theirs.id})
    statuses = {b.id: b.status for b in await Booking.all()}
    assert statuses == {first.id: Booking.ACTIVE, second.id: Booking.CANCELLED, theirs.id: Booking.ACTIVE}
    assert await SmsMessage.filter(kind="risk_cancel").count() == 1


async def test_marking_refuses_unknown_areas_past_days_and_bad_dates_with_a_message(client, world):
    await admin(client)
    body = text(parse(await mark(client, "火星街", status=422)))
    assert "请选择天河区的一个街道" in body
    yesterday = (TODAY - dt.timedelta(days=1)).isoformat()
    assert "开始日期不能早于今天" in text(parse(await mark(client, "五山街", since=yesterday, status=422)))
    assert "格式不正确" in text(parse(await mark(client, "五山街", since="7/1/2021", status=422)))
    assert "请选择中风险或高风险" in text(parse(await mark(client, "五山街", level="low", status=422)))
    assert not await RiskArea.exists()
    await mark(client, "五山", level="medium")  # the short name is understood
    await mark(client, "五山街", level="high", since=TOMORROW.isoformat())  # changed, not doubled
    area = await RiskArea.get(subdistrict="五山街")
    assert (area.level, area.since) == ("high", TOMORROW)
    assert await RiskArea.all().count() == 1
