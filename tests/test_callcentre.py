"""The call-centre console: find the caller, see their card, book, move and cancel on their behalf."""
from __future__ import annotations

import datetime as dt
import re

import pytest
from bs4 import BeautifulSoup

from models.db.tables import AuditEntry, Booking, RiskArea, Slot, SmsMessage
from models.operations.checks import check_database
from tests.factories import book_for, id_number, make_resident, make_site, make_slot
from tests.pages import csrf, get_page, parse, post_form, text
from tests.staff_helpers import make_staff, sign_in

FIRST = dt.date(2021, 6, 5)
FAMILY_PHONE = "13912345678"
HTMX = {"HX-Request": "true"}


@pytest.fixture
async def world(db, district):
    site = await make_site("S01", "五山街", name="五山街社区卫生服务中心", address="天河区五山路1号")
    other = await make_site("S02", "龙洞街", name="龙洞街社区卫生服务中心", address="天河区龙洞路9号")
    caller, number = await make_resident(site, first_dose=FIRST, name="张三明", phone="13812345678")
    slots = [
        await make_slot(site, dt.date(2021, 7, 2), "09:00", "10:00", capacity=5),
        await make_slot(site, dt.date(2021, 7, 2), "10:00", "11:00", capacity=1),
        await make_slot(other, dt.date(2021, 7, 3), "14:00", "15:00", capacity=5),
    ]
    neighbour, _ = await make_resident(site, first_dose=FIRST, name="邻居", phone="13600000000")
    await book_for(district, neighbour, slots[1])
    await make_staff("callcentre", "agent1")
    return dict(site=site, other=other, caller=caller, number=number, slots=slots)


@pytest.fixture
async def agent(client, world):
    await sign_in(client, "agent1")
    return client


async def search(client, q: str, *, htmx: bool = False, status: int = 200):
    page = await get_page(client, "/staff/calls")
    response = await client.post("/staff/calls/search", data={"csrftoken": csrf(page), "q": q},
                                 headers=HTMX if htmx else {})
    assert response.status_code == status, response.text[:500]
    return BeautifulSoup(response.text, "html.parser") if htmx else parse(response)


def result_rows(soup):
    return soup.select("table.calls-results tbody tr")


async def test_search_by_id_finds_the_caller_masked(agent, world):
    page = await search(agent, world["number"])
    rows = result_rows(page)
    assert len(rows) == 1
    assert "张*明" in rows[0].text and world["caller"].id_masked in rows[0].text
    assert "2021年6月5日" in rows[0].text
    assert "张三明" not in text(page)
    entry = await AuditEntry.get(action="search")
    assert entry.detail.startswith("by id") and world["number"] not in entry.detail


async def test_search_by_phone_lists_every_family_member(agent, world):
    for name in ("王大海", "王小红", "李秀英"):
        await make_resident(world["site"], first_dose=FIRST, name=name, phone=FAMILY_PHONE)
    soup = await search(agent, "139 1234 5678", htmx=True)  # as typed, spaces and all
    assert soup.title is None  # a fragment, swapped in as the agent types
    names = [row.a.text for row in result_rows(soup)]
    assert names == ["王*海", "王*红", "李*英"]
    entry = await AuditEntry.get(action="search")
    assert entry.detail.startswith("by phone") and FAMILY_PHONE not in entry.detail


async def test_unknown_numbers_answer_like_a_search_with_no_match(agent, world):
    unknown_id = await search(agent, id_number(dt.date(1990, 1, 1)))
    unknown_phone = await search(agent, "13700000000")
    for page in (unknown_id, unknown_phone):
        assert not result_rows(page)
        assert "没有找到" in text(page)
        assert page.title.string == unknown_id.title.string
    assert await AuditEntry.filter(action="search").count() == 2


async def test_a_long_family_list_is_capped_at_ten(agent, world):
    for i in range(12):
        await make_resident(world["site"], first_dose=FIRST, name=f"陈{i}", phone=FAMILY_PHONE)
    page = await search(agent, FAMILY_PHONE)
    assert len(result_rows(page)) == 10
    assert "只显示前10位" in text(page)


@pytest.mark.parametrize("typed, says", [
    ("11010519491231002", "位数不对"),
    ("110105194912310021", "校验码"),
    ("12345678901", "不是有效的手机号码"),
    ("", "请输入"),
])
async def test_bad_input_gets_a_plain_message(agent, world, typed, says):
    page = await search(agent, typed, status=422)
    assert says in text(page)
    assert not await AuditEntry.filter(action="search").exists()


async def test_the_search_box_has_focus_and_searches_as_the_agent_types(agent, world):
    page = await get_page(agent, "/staff/calls")
    box = page.find("input", attrs={"name": "q"})
    assert box.has_attr("autofocus")
    assert box["data-hx-post"] == "/staff/calls/search" and box["data-hx-trigger"].startswith("input changed delay:300ms")  # a paste too
    response = await agent.post("/staff/calls/search", headers={**HTMX, "HX-Trigger": "q"},
                                data={"csrftoken": csrf(page), "q": "4401061980"})
    half_typed = BeautifulSoup(response.text, "html.parser")
    assert "继续输入" in text(half_typed) and not half_typed.find(attrs={"role": "alert"})


async def test_numbers_never_appear_in_an_address(agent, world):
    await make_resident(world["site"], first_dose=FIRST, name="王大海", phone="13812345678")
    pages = [await search(agent, world["number"]), await search(agent, "13812345678")]
    pages.append(await get_page(agent, f"/staff/calls/resident?r={world['caller'].id}"))
    pages.append(await get_page(agent, f"/staff/calls/book?r={world['caller'].id}"))
    assert pages[0].find("form", attrs={"action": "/staff/calls/search"})["method"] == "post"
    for page in pages:
        for el in page.find_all(True):
            for attr in ("href", "action", "data-hx-get", "data-hx-post", "src"):
                url = el.get(attr) or ""
                assert not re.search(r"\d{11}", url), url


async def test_the_card_is_masked_and_opening_it_is_audited(agent, world):
    r = world["caller"]
    page = await get_page(agent, f"/staff/calls/resident?r={r.id}")
    body = text(page)
    assert "张*明" in body and r.id_masked in body and "138****5678" in body
    assert world["number"] not in body and "13812345678" not in body
    assert "6月26日 周六" in body and "7月31日 周六" in body  # earliest, due by
    assert await AuditEntry.filter(action="view_resident", resident_id=r.id).count() == 1


async def test_reveal_shows_the_full_number_and_is_audited(agent, world):
    r = world["caller"]
    page = await get_page(agent, f"/staff/calls/resident?r={r.id}")
    data = {"r": r.id, "field": "id"}
    response = await post_form(agent, "/staff/calls/reveal", page, data, status=200)
    assert BeautifulSoup(response.text, "html.parser").title is not None  # works without JS
    assert world["number"] in response.text
    response = await agent.post("/staff/calls/reveal", headers=HTMX,
                                data={"csrftoken": csrf(page), "r": r.id, "field": "phone"})
    fragment = BeautifulSoup(response.text, "html.parser")
    assert fragment.find(id="number-phone").strong.text == "13812345678"
    assert await AuditEntry.filter(action="reveal_id", resident_id=r.id).count() == 1
    assert await AuditEntry.filter(action="reveal_phone", resident_id=r.id).count() == 1
    details = await AuditEntry.all().values_list("detail", flat=True)
    assert not any("13812345678" in d or world["number"] in d for d in details)


async def test_the_picker_starts_at_the_first_dose_site_with_live_counts(agent, world):
    page = await get_page(agent, f"/staff/calls/book?r={world['caller'].id}")
    first_site = page.find("input", attrs={"name": "site", "checked": True})
    assert first_site["value"] == str(world["site"].id)
    # The chosen site and its windows come first; the list of sites is folded below its name.
    picker = page.find(id="calls-picker")
    assert "五山街社区卫生服务中心" in text(picker.find(class_="calls-site"))
    assert page.find("details", class_="calls-sites").find("summary").text.strip() == "换一个接种点（共2个）"
    assert not page.find("details", class_="calls-sites").has_attr("open")
    assert picker.find(id="windows").has_attr("autofocus")  # Tab, Space, Enter: the first free window
    free, full = (page.find(id=f"slot-{s.id}") for s in world["slots"][:2])
    assert not free.has_attr("disabled") and full.has_attr("disabled")
    assert "余5个名额" in text(page) and "已约满" in text(page)
    other = await agent.get(f"/staff/calls/book?r={world['caller'].id}&site={world['other'].id}",
                            headers=HTMX)
    fragment = BeautifulSoup(other.text, "html.parser")
    assert fragment.find(id="calls-picker") and fragment.find(id=f"slot-{world['slots'][2].id}")
    assert "龙洞街社区卫生服务中心" in text(fragment.find(class_="calls-site"))
    # Moving through the site list with the arrow keys: the swap must not take the focus away.
    from_list = await agent.get(f"/staff/calls/book?r={world['caller'].id}&site={world['other'].id}",
                                headers={**HTMX, "HX-Trigger": "calls-site-form"})
    assert not BeautifulSoup(from_list.text, "html.parser").find(attrs={"autofocus": True})


async def test_a_late_callers_card_speaks_of_the_caller_not_of_a_date(agent, world):
    late, _ = await make_resident(world["site"], first_dose=dt.date(2021, 4, 20), name="李四华",
                                  phone="13512345678")
    card = text(await get_page(agent, f"/staff/calls/resident?r={late.id}"))
    assert "来电人已过建议的完成时间（6月15日 周二），仍可接种" in card
    assert "这个日期" not in card  # no date has been chosen yet


async def book_on_behalf(client, world, slot, *, times: int = 1):
    """Site and window pages, then the check page's confirm form posted `times` times."""
    r = world["caller"]
    picker = await get_page(client, f"/staff/calls/book?r={r.id}&site={slot.site_id}&day={slot.day}")
    response = await post_form(client, "/staff/calls/hold", picker, {"r": r.id, "slot": slot.id})
    check = await get_page(client, response.headers["location"])
    form = check.find("form", attrs={"action": "/staff/calls/confirm"})
    data = {i["name"]: i["value"] for i in form.find_all("input")}
    responses = [await client.post("/staff/calls/confirm", data=data) for _ in range(times)]
    assert all(x.status_code == 303 for x in responses)
    return responses[-1].headers["location"]


async def test_on_behalf_booking_posted_twice_makes_one_booking(agent, world, district):
    slot = world["slots"][0]
    done = await book_on_behalf(agent, world, slot, times=2)
    booking = await Booking.get(resident_id=world["caller"].id)
    assert booking.channel == "callcentre" and booking.slot_id == slot.id
    assert (await Slot.get(id=slot.id)).booked == 1
    assert await SmsMessage.filter(kind="confirm", resident_id=world["caller"].id).count() == 1
    entries = await AuditEntry.filter(action="book")
    assert len(entries) == 1 and booking.code[:4] in entries[0].detail
    assert f" {world['site'].code} {slot.day} " in entries[0].detail  # where and when, for the record
    assert (await check_database(district.rules)).ok
    page = await get_page(agent, done)
    assert "预约成功" in text(page)


async def test_the_read_out_script_spells_the_code(agent, world):
    done = await book_on_behalf(agent, world, world["slots"][0])
    booking = await Booking.get(resident_id=world["caller"].id)
    page = await get_page(agent, done)
    spelled = [li.text.split() for li in page.select("ol.calls-spell li")]
    assert [s[0] for s in spelled] == list(booking.code)
    digits = {"3": "三", "4": "四", "7": "七", "9": "九"}
    for ch, *_, said in spelled:
        assert said == digits.get(ch, f"字母{ch}")
    body = text(page)
    assert "五山街社区卫生服务中心" in body and "天河区五山路1号" in body
    assert "7月2日 周五" in body and "09:00-10:00" in body
    for thing in ("身份证", "口罩", "健康码", "体温", "一米"):
        assert thing in body
    assert "确认短信已发送至138****5678" in body
    assert "家属陪同" not in body


async def test_callers_aged_70_are_told_to_come_with_family(agent, world):
    old, _ = await make_resident(world["site"], first_dose=FIRST, name="黄桂英", born=dt.date(1950, 3, 1))
    world = {**world, "caller": old}
    page = await get_page(agent, await book_on_behalf(agent, world, world["slots"][0]))
    assert "家属陪同" in text(page)


async def test_move_gives_the_old_place_back_and_is_audited(agent, world, district):
    first, later = world["slots"][0], world["slots"][2]
    await book_on_behalf(agent, world, first)
    done = await book_on_behalf(agent, world, later, times=2)
    booking = await Booking.get(resident_id=world["caller"].id)
    assert booking.slot_id == later.id and booking.status == Booking.ACTIVE
    assert (await Slot.get(id=first.id)).booked == 0 and (await Slot.get(id=later.id)).booked == 1
    moved = await AuditEntry.get(action="move")
    assert f" {world['other'].code} {later.day} " in moved.detail  # the new place, not the old
    assert await SmsMessage.filter(kind="move").count() == 1
    assert "改约成功" in text(await get_page(agent, done))
    assert (await check_database(district.rules)).ok


async def test_cancel_asks_first_then_gives_the_place_back(agent, world, district):
    slot = world["slots"][0]
    await book_on_behalf(agent, world, slot)
    r = world["caller"]
    page = await get_page(agent, f"/staff/calls/cancel?r={r.id}")
    assert "确定要取消" in text(page)
    booking = await Booking.get(resident_id=r.id)
    data = {"r": r.id, "b": booking.id}
    response = await post_form(agent, "/staff/calls/cancel", page, data)
    await post_form(agent, "/staff/calls/cancel", page, data)  # a double click
    assert (await Booking.get(id=booking.id)).status == Booking.CANCELLED
    assert (await Slot.get(id=slot.id)).booked == 0
    entries = await AuditEntry.filter(action="cancel")
    assert len(entries) == 1 and booking.code[4:] in entries[0].detail
    assert "预约已取消" in text(await get_page(agent, response.headers["location"]))
    assert (await check_database(district.rules)).ok


async def test_a_vaccinated_caller_gets_the_reason_and_no_booking_form(agent, world):
    r = world["caller"]
    r.second_dose_date = dt.date(2021, 6, 28)
    await r.save()
    page = await get_page(agent, f"/staff/calls/resident?r={r.id}")
    assert "已完成第二剂接种" in text(page) and "2021年6月28日" in text(page)
    assert not page.find("a", href=re.compile("/staff/calls/book"))
    response = await agent.get(f"/staff/calls/book?r={r.id}")
    assert response.status_code == 303
    page = await get_page(agent, f"/staff/calls/resident?r={r.id}")
    response = await post_form(agent, "/staff/calls/confirm", page,
                               {"r": r.id, "slot": world["slots"][0].id, "key": "k1"})
    assert not await Booking.filter(resident_id=world["caller"].id).exists()


@pytest.mark.parametrize("setup, says", [
    ("early", "预约将于"),
    ("restricted", "中高风险地区"),
])
async def test_other_refusals_say_why(agent, world, setup, says):
    if setup == "early":
        r, _ = await make_resident(world["site"], first_dose=dt.date(2021, 6, 29), name="王五芳")
    else:
        await RiskArea.create(subdistrict="五山街")
        r = world["caller"]
    page = await get_page(agent, f"/staff/calls/resident?r={r.id}")
    assert says in text(page)
    assert not page.find("a", href=re.compile("/staff/calls/book"))


async def test_site_staff_get_403_and_strangers_are_sent_to_sign_in(client, world):
    from web.routes import callcentre, calls_waitlist

    page = await get_page(client, "/staff")
    token = csrf(page)
    for route in callcentre.ROUTES + calls_waitlist.ROUTES:
        for method in route.methods - {"HEAD"}:
            response = await client.request(method, route.path, data={"csrftoken": token}
                                            if method == "POST" else None)
            assert response.status_code == 303 and response.headers["location"].startswith("/staff")
    await make_staff("site", "door1", site_code="S01")
    await sign_in(client, "door1")
    for route in callcentre.ROUTES + calls_waitlist.ROUTES:
        for method in route.methods - {"HEAD"}:
            response = await client.request(method, route.path, data={"csrftoken": token}
                                            if method == "POST" else None)
            assert response.status_code == 403, (method, route.path)


async def test_posts_without_a_csrf_token_are_refused(agent, world):
    for path in ("/staff/calls/search", "/staff/calls/reveal", "/staff/calls/confirm"):
        response = await agent.post(path, data={"q": world["number"], "r": world["caller"].id,
                                                "field": "id", "slot": world["slots"][0].id})
        assert response.status_code == 403
        assert world["number"] not in response.text
    assert not await Booking.filter(resident_id=world["caller"].id).exists()
