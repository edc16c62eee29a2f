"""Site check-in at the door: today's list, look-up, check-in, refusals (rule 10), end of day."""
from __future__ import annotations

import datetime as dt

import pytest

from models.booking import service
from models.booking_codes import format_code
from models.db.tables import AuditEntry, Booking, Resident, Slot
from models.operations import checkin
from models.operations.checks import check_database
from models.people.links import issue_link
from models.rules.eligibility import Refusal
from tests.conftest import NOW
from tests.factories import book_for, id_number, make_resident, make_site, make_slot
from tests.pages import get_page, parse, post_form, text
from tests.staff_helpers import make_staff, sign_in

FIRST = dt.date(2021, 6, 5)
# A site account's one answer for anything that is not its own booking today (issue 21).
NOT_HERE = "本接种点今天没有这个预约"


@pytest.fixture(autouse=True)
def at_the_door_day(clock):
    """The site's working day: the morning after NOW, 2021-07-02 08:00."""
    clock.moment = NOW + dt.timedelta(days=1)


async def book(district, resident, slot):
    """A booking made the day before (at NOW), through the booking service."""
    booking = await book_for(district, resident, slot, NOW)
    return booking


async def cancel(district, booking):
    await service.cancel(district, booking.resident_id, booking.id)


@pytest.fixture
async def door(db, district, clock):
    """Site A (where we work) and B; people booked at A today, at A tomorrow, at B today."""
    a = await make_site("S01", "五山街", name="五山街社区卫生服务中心")
    b = await make_site("S02", "龙洞街", name="龙洞街社区卫生服务中心", address="天河区龙洞路9号")
    today = clock.today()
    nine = await make_slot(a, today, "09:00", "10:00", capacity=5)
    ten = await make_slot(a, today, "10:00", "11:00", capacity=5)
    later = await make_slot(a, today + dt.timedelta(days=1), "14:00", "15:00", capacity=5)
    elsewhere = await make_slot(b, today, "09:00", "10:00", capacity=5)
    people = {}
    for key, name, slot in [("first", "张三明", nine), ("second", "李四华", ten),
                            ("tomorrow", "王五芳", later), ("other_site", "赵六军", elsewhere)]:
        resident, number = await make_resident(a, first_dose=FIRST, name=name)
        people[key] = dict(resident=resident, number=number, booking=await book(district, resident, slot))
    await make_staff("site", "door1", site_code="S01")
    return dict(a=a, b=b, nine=nine, ten=ten, later=later, elsewhere=elsewhere, **people)


async def at_the_door(client):
    await sign_in(client, "door1")
    return await get_page(client, "/staff/site")


async def lookup(client, query: str, status: int = 200):
    page = await get_page(client, "/staff/site")
    return parse(await post_form(client, "/staff/site/lookup", page, {"q": query}, status=status))


async def check_in(client, booking_id: int, status: int = 303, site: str = "S01"):
    page = await get_page(client, "/staff/site")
    return await post_form(client, "/staff/site/check-in", page,
                           {"booking": str(booking_id), "site": site}, status=status)


async def refusal_details() -> list[str]:
    return await AuditEntry.filter(action="check_in_refused").order_by("id").values_list("detail", flat=True)


async def test_todays_list_shows_masked_bookings_and_counts(client, door, district):
    someone, _ = await make_resident(door["a"], first_dose=FIRST, name="孙小雨")
    await cancel(district, await book(district, someone, door["ten"]))
    page = await at_the_door(client)
    body = text(page)
    assert "五山街社区卫生服务中心" in body and "7月2日" in body
    rows = page.select("table.data tbody tr")
    assert len(rows) == 2  # tomorrow's, the other site's and the cancelled one are not listed
    assert "张*明" in text(rows[0]) and "09:00-10:00" in text(rows[0])
    assert format_code(door["first"]["booking"].code) in text(rows[0])
    assert door["first"]["resident"].id_masked in text(rows[0])
    assert "张三明" not in body and door["first"]["number"] not in body
    assert format_code(door["tomorrow"]["booking"].code) not in body
    assert page.select_one("#count-booked").text == "2"
    assert page.select_one("#count-checked-in").text == "0"
    assert page.select_one("#count-expected").text == "2"
    assert page.select_one("#count-no-show") is None
    assert page.select_one("#q").has_attr("autofocus")
    assert page.select_one("form[action='/staff/site/lookup']").get("method") == "post"


async def test_look_up_by_code_in_lower_case_without_the_dash(client, door):
    await at_the_door(client)
    found = await lookup(client, door["first"]["booking"].code.lower())
    body = text(found)
    assert "找到预约" in body and "张*明" in body and format_code(door["first"]["booking"].code) in body
    button = found.select_one("form[action='/staff/site/check-in'] button")
    assert button.has_attr("autofocus") and "签到并登记接种" in button.text
    assert found.select_one("input[name=booking]")["value"] == str(door["first"]["booking"].id)


async def test_look_up_by_id_number_never_echoes_it(client, door):
    await at_the_door(client)
    number = door["second"]["number"]
    found = await lookup(client, f" {number[:6]} {number[6:14]} {number[14:].lower()} ")
    assert "李*华" in text(found) and number not in str(found)
    assert await AuditEntry.filter(action="check_in_lookup", resident_id=door["second"]["resident"].id).exists()


async def test_typing_neither_a_code_nor_an_id_number_asks_again(client, door):
    await at_the_door(client)
    for typed, says in [("", "请输入预约码或身份证号码"), ("12345", "8位预约码"),
                        ("ABCD-EFGH", "不是有效的预约码"), ("440106198005170000", "身份证号码不正确")]:
        page = await lookup(client, typed, status=422)
        assert says in text(page.select_one(".error-summary"))
        assert page.select_one("#q").get("aria-invalid") == "true"


async def test_check_in_records_the_second_dose_and_keeps_the_place(client, door, district, clock):
    await at_the_door(client)
    chosen = door["first"]["booking"]
    response = await check_in(client, chosen.id)
    assert response.headers["location"] == "/staff/site"
    resident = await Resident.get(id=door["first"]["resident"].id)
    assert resident.second_dose_date == clock.today() and resident.second_dose_site_id == door["a"].id
    assert (await Booking.get(id=chosen.id)).status == Booking.DONE
    assert (await Slot.get(id=door["nine"].id)).booked == 1  # the place was used, not given back
    entry = await AuditEntry.get(action="check_in")
    assert entry.resident_id == resident.id and format_code(chosen.code) in entry.detail
    page = await get_page(client, "/staff/site")
    assert "已签到并登记第二剂接种：张*明" in text(page.select_one(".notice"))
    assert page.select_one("#count-checked-in").text == "1"
    assert page.select_one("#count-expected").text == "1"
    assert (await check_database(district.rules)).ok


async def test_after_check_in_the_resident_stands_vaccinated(client, door, district, clock):
    await at_the_door(client)
    await check_in(client, door["first"]["booking"].id)
    resident = await Resident.get(id=door["first"]["resident"].id)
    assert (await service.stand(district, resident)).refusal == Refusal.VACCINATED
    token = await issue_link(resident, now=clock.now())
    await client.get(f"/b/{token}")
    page = await get_page(client, "/booking")
    await post_form(client, "/booking/verify", page, {"id_number": door["first"]["number"]})
    assert "已完成第二剂" in text(await get_page(client, "/booking"))


async def test_no_booking_by_code_or_by_id_number_gets_the_same_answer(client, door):
    await at_the_door(client)
    unbooked, unbooked_number = await make_resident(door["a"], first_dose=FIRST, name="周十全")
    for typed in ["ACEF-7HJK", id_number(dt.date(1990, 1, 2)), unbooked_number]:
        page = await lookup(client, typed, status=422)
        said = text(page.select_one(".refusal"))
        assert NOT_HERE in said and "还没有预约的，请用短信链接或拨打12345预约，现场不派号" in said
        assert page.select_one("#q").has_attr("autofocus")  # ready for the next person
    assert [d.split()[0] for d in await refusal_details()] == ["elsewhere"] * 3


async def test_booking_at_another_site_says_only_that_it_is_not_here_today(client, door):
    await at_the_door(client)
    page = await lookup(client, door["other_site"]["booking"].code, status=422)
    said = text(page.select_one(".refusal"))
    assert NOT_HERE in said and "请按预约短信上的接种点和时间前往" in said
    assert "龙洞街" not in said and "9:00" not in said and "赵*军" not in said  # tests/test_staff_scope.py
    assert (await refusal_details())[0].startswith("elsewhere")


async def test_booking_for_another_day_says_only_that_it_is_not_here_today(client, door):
    await at_the_door(client)
    page = await lookup(client, door["tomorrow"]["number"], status=422)
    said = text(page.select_one(".refusal"))
    assert NOT_HERE in said and "7月3日" not in said and "2:00" not in said
    assert (await refusal_details())[0].startswith("elsewhere")


async def test_an_admin_at_the_door_gets_the_other_site_and_day(client, door):
    await make_staff("admin", "boss")
    await sign_in(client, "boss")
    page = await get_page(client, "/staff/site?site=S01")
    said = text(parse(await post_form(client, "/staff/site/lookup", page, {
        "site": "S01", "q": door["other_site"]["booking"].code}, status=422)).select_one(".refusal"))
    assert "不是本接种点的预约" in said and "龙洞街社区卫生服务中心" in said
    assert "7月2日" in said and "09:00-10:00" in said and "天河区龙洞路9号" in said
    said = text(parse(await post_form(client, "/staff/site/lookup", page, {
        "site": "S01", "q": door["tomorrow"]["number"]}, status=422)).select_one(".refusal"))
    assert "不是今天的预约" in said and "7月3日" in said and "14:00-15:00" in said


async def test_cancelled_booking_is_refused(client, door, district):
    await cancel(district, door["first"]["booking"])
    await at_the_door(client)
    page = await lookup(client, door["first"]["booking"].code, status=422)
    assert "预约已取消" in text(page.select_one(".refusal"))
    response = await check_in(client, door["first"]["booking"].id, status=422)
    assert "预约已取消" in text(parse(response).select_one(".refusal"))
    assert (await Resident.get(id=door["first"]["resident"].id)).second_dose_date is None


async def test_checking_in_twice_is_refused(client, door):
    await at_the_door(client)
    await check_in(client, door["first"]["booking"].id)
    page = await lookup(client, door["first"]["booking"].code, status=422)
    said = text(page.select_one(".refusal"))
    assert "已经签到过" in said and "不能重复接种" in said and "五山街社区卫生服务中心" in said
    await check_in(client, door["first"]["booking"].id, status=422)  # a resubmitted form
    assert await AuditEntry.filter(action="check_in").count() == 1
    assert (await Slot.get(id=door["nine"].id)).booked == 1


async def test_second_dose_recorded_elsewhere_is_refused(client, door, clock):
    await Resident.filter(id=door["second"]["resident"].id).update(
        second_dose_date=clock.today() - dt.timedelta(days=3), second_dose_site_id=door["b"].id)
    await at_the_door(client)
    page = await lookup(client, door["second"]["booking"].code, status=422)
    said = text(page.select_one(".refusal"))
    assert "已完成第二剂接种" in said and "2021年6月29日" in said and "龙洞街社区卫生服务中心" in said
    await check_in(client, door["second"]["booking"].id, status=422)
    assert (await Booking.get(id=door["second"]["booking"].id)).status == Booking.ACTIVE
    # Recorded without any booking here (e.g. imported): looked up by ID number, the same answer.
    given, number = await make_resident(door["a"], first_dose=FIRST, name="吴小燕")
    await Resident.filter(id=given.id).update(second_dose_date=clock.today(),
                                              second_dose_site_id=door["a"].id)
    said = text((await lookup(client, number, status=422)).select_one(".refusal"))
    assert "已完成第二剂接种" in said and "吴*燕" in said


async def test_site_worker_cannot_check_in_another_sites_booking_by_posting_its_id(client, door):
    await at_the_door(client)
    await get_page(client, "/staff/site?site=S02", status=403)  # own site only (tests/test_scope.py)
    theirs = door["other_site"]["booking"]
    for site in ("S01", "S02"):  # by its id, another site's booking is refused, whatever the site field
        response = await check_in(client, theirs.id, status=403, site=site)
        assert "赵*军" not in response.text and "龙洞街" not in response.text  # nothing of it is shown
    assert await AuditEntry.filter(action="out_of_area").count() == 3
    assert (await Booking.get(id=theirs.id)).status == Booking.ACTIVE
    assert (await Resident.get(id=door["other_site"]["resident"].id)).second_dose_date is None
    await check_in(client, 999999, status=422)  # an id that does not exist


async def test_end_of_day_marks_no_shows_and_gives_places_back(client, door, district):
    await at_the_door(client)
    await check_in(client, door["first"]["booking"].id)
    confirm = await get_page(client, "/staff/site/close")
    assert "还有1位" in text(confirm) and "11:00" in text(confirm)  # the last window is not over
    await post_form(client, "/staff/site/close", confirm, {})
    absent = await Booking.get(id=door["second"]["booking"].id)
    assert absent.status == Booking.NO_SHOW
    assert (await Booking.get(id=door["first"]["booking"].id)).status == Booking.DONE
    assert (await Slot.get(id=door["ten"].id)).booked == 0
    assert (await Slot.get(id=door["nine"].id)).booked == 1
    assert (await Booking.get(id=door["other_site"]["booking"].id)).status == Booking.ACTIVE
    assert (await AuditEntry.get(action="no_shows")).detail.startswith("1 site=S01")
    page = await get_page(client, "/staff/site")
    assert "1位未到者记为爽约" in text(page.select_one(".notice"))
    assert page.select_one("#count-no-show").text == "1"
    assert page.select_one("#count-expected").text == "0"
    assert (await check_database(district.rules)).ok
    # Their link lets them book again: no active booking is left.
    resident = await Resident.get(id=door["second"]["resident"].id)
    assert (await service.stand(district, resident)).refusal is None
    again = await book(district, resident, door["later"])
    assert again.status == Booking.ACTIVE and (await check_database(district.rules)).ok
    page = await lookup(client, absent.code, status=422)
    assert "已记为爽约" in text(page.select_one(".refusal"))


async def test_mark_no_shows_and_close_day_for_a_scheduler(door, district, clock):
    today = clock.today()
    assert await checkin.mark_no_shows(door["a"].id, today) == 2
    assert await checkin.mark_no_shows(door["a"].id, today) == 0  # run twice: nothing more
    assert await checkin.close_day(today) == {"S02": 1}
    assert (await Slot.get(id=door["elsewhere"].id)).booked == 0
    assert (await AuditEntry.get(action="no_shows")).username == "scheduler"
    assert (await check_database(district.rules)).ok


async def test_admin_chooses_a_site_first(client, door):
    await make_staff("admin", "boss")
    await sign_in(client, "boss")
    picker = await get_page(client, "/staff/site")
    assert [o["value"] for o in picker.select("select[name=site] option")] == ["S01", "S02"]
    await get_page(client, "/staff/site?site=NOPE", status=404)
    page = await get_page(client, "/staff/site?site=S02")
    assert "龙洞街社区卫生服务中心" in text(page) and page.select_one("input[name=site]")["value"] == "S02"
    response = await post_form(client, "/staff/site/check-in", page,
                               {"site": "S02", "booking": str(door["other_site"]["booking"].id)})
    assert response.headers["location"] == "/staff/site?site=S02"
    assert (await Resident.get(id=door["other_site"]["resident"].id)).second_dose_site_id == door["b"].id


async def test_only_site_staff_and_admins_get_in(client, door):
    response = await client.get("/staff/site")
    assert response.status_code == 303 and response.headers["location"] == "/staff?next=/staff/site"
    await make_staff("callcentre", "agent1")
    await sign_in(client, "agent1")
    await get_page(client, "/staff/site", status=403)
    await get_page(client, "/staff/site/close", status=403)


async def test_posts_without_a_csrf_token_are_refused(client, door):
    await at_the_door(client)
    for path, data in [("/staff/site/lookup", {"q": door["first"]["booking"].code}),
                       ("/staff/site/check-in", {"booking": door["first"]["booking"].id}),
                       ("/staff/site/close", {})]:
        assert (await client.post(path, data=data)).status_code == 403
    assert (await Booking.get(id=door["first"]["booking"].id)).status == Booking.ACTIVE
