"""The district console's sites and capacity: create, edit, open and close a site; the weekly
template applied to dates and per-window edits, never below the places taken."""
from __future__ import annotations

import datetime as dt

from models.booking import service
from models.db.tables import AuditEntry, Site, SiteTemplate, Slot
from models.operations.checks import check_database
from tests.conftest import TODAY
from tests.factories import book_for, make_resident, make_site, make_slot
from tests.pages import get_page, parse, post_form, text
from tests.staff_helpers import make_staff, sign_in

MONDAY = dt.date(2021, 7, 5)  # TODAY is Thursday 1 July 2021


async def _admin(client):
    await make_staff("admin", "boss")
    await sign_in(client, "boss")


async def _booked(district, site, slot, n: int):
    for i in range(n):
        resident, _ = await make_resident(site, first_dose=dt.date(2021, 6, 1), phone=f"139000{i:05d}")
        await book_for(district, resident, slot)


async def test_an_admin_creates_a_site_and_it_is_listed_open_with_its_sub_district(client):
    await _admin(client)
    page = await get_page(client, "/admin/sites/new")
    response = await post_form(client, "/admin/sites/new", page, {
        "code": "TH07", "name": "车陂街社区卫生服务中心", "subdistrict": "车陂", "address": "天河区车陂路1号",
        "phone": "020-8888 1234"})
    site = await Site.get(code="TH07")
    assert site.subdistrict == "车陂街" and site.active
    assert response.headers["location"].startswith("/admin/sites/template?site=")
    listing = text(await get_page(client, "/admin/sites"))
    assert "TH07" in listing and "车陂街社区卫生服务中心" in listing and "车陂街" in listing and "开放" in listing
    assert await AuditEntry.filter(action="site_create", username="boss").count() == 1


async def test_a_site_form_with_bad_fields_is_refused_with_every_reason_and_nothing_is_created(client):
    await make_site("TH01")
    await _admin(client)
    page = await get_page(client, "/admin/sites/new")
    response = await post_form(client, "/admin/sites/new", page, {
        "code": "TH 01!", "name": "", "subdistrict": "五山路", "address": "x" * 201, "phone": "call me"},
        status=422)
    summary = text(parse(response).find(class_="error-summary"))
    for message in ("代码只能用字母", "请填写名称", "天河区21个街道之一", "地址最多200个字", "电话只能包含数字"):
        assert message in summary, message
    assert await Site.all().count() == 1
    taken = await post_form(client, "/admin/sites/new", page, {
        "code": "TH01", "name": "另一个", "subdistrict": "五山街", "address": "天河区1号"}, status=422)
    assert "这个代码已被另一个接种点使用" in text(parse(taken))
    assert await Site.all().count() == 1


async def test_editing_a_site_changes_its_fields_but_not_its_code_and_bad_input_changes_nothing(client):
    site = await make_site("TH01")
    await _admin(client)
    page = await get_page(client, f"/admin/sites/edit?site={site.id}")
    await post_form(client, "/admin/sites/edit", page, {
        "site": site.id, "code": "HACK", "name": "新名字", "subdistrict": "龙洞街", "address": "新地址",
        "phone": ""})
    fresh = await Site.get(id=site.id)
    assert (fresh.code, fresh.name, fresh.subdistrict, fresh.address, fresh.phone) == (
        "TH01", "新名字", "龙洞街", "新地址", "")
    bad = await post_form(client, "/admin/sites/edit", page, {
        "site": site.id, "name": "又一个", "subdistrict": "", "address": "新地址"}, status=422)
    assert "请选择所属街道" in text(parse(bad))
    assert (await Site.get(id=site.id)).name == "新名字"
    assert (await AuditEntry.get(action="site_edit")).detail == "TH01: name, subdistrict, address, phone"
    await get_page(client, "/admin/sites/edit?site=999999", status=404)


async def test_a_closed_site_takes_no_new_bookings_until_it_is_opened_again(client, district):
    site = await make_site("TH01")
    slot = await make_slot(site, MONDAY)
    resident, _ = await make_resident(site, first_dose=dt.date(2021, 6, 1))
    await _admin(client)
    page = await get_page(client, f"/admin/sites/edit?site={site.id}")
    await post_form(client, "/admin/sites/open", page, {"site": site.id, "active": "0"})
    assert not (await Site.get(id=site.id)).active
    assert "已关闭" in text(await get_page(client, "/admin/sites"))
    standing = await service.stand(district, resident)
    try:
        await service.choose(district, standing, slot.id)
        raise AssertionError("a closed site took a booking")
    except service.Refused as exc:
        assert exc.reason in ("no_room", "not_allowed")  # no open window anywhere
    page = await get_page(client, f"/admin/sites/edit?site={site.id}")
    assert "这个接种点已关闭" in text(page)
    await post_form(client, "/admin/sites/open", page, {"site": site.id, "active": "1"})
    await book_for(district, resident, slot)
    assert [e.action for e in await AuditEntry.filter(action__startswith="site_").order_by("id")] == [
        "site_close", "site_open"]


async def test_a_template_window_must_be_well_formed_and_not_overlap_another(client):
    site = await make_site("TH01")
    await _admin(client)
    page = await get_page(client, f"/admin/sites/template?site={site.id}")
    url = "/admin/sites/template/add"
    await post_form(client, url, page, {"site": site.id, "weekday": "workdays", "start": "08:30",
                                        "end": "11:30", "capacity": "40"})
    assert await SiteTemplate.filter(site=site).count() == 5
    cases = [({"start": "8:30"}, "时间须为24小时制"), ({"start": "12:00", "end": "11:00"}, "结束时间须晚于开始时间"),
             ({"start": "11:00", "end": "12:00"}, "重叠"), ({"capacity": "10001"}, "0到10000"),
             ({"capacity": "-1"}, "0到10000"), ({"weekday": "8"}, "请选择星期")]
    for change, message in cases:
        data = {"site": site.id, "weekday": "0", "start": "14:00", "end": "16:00", "capacity": "30", **change}
        refused = await post_form(client, url, page, data, status=422)
        assert message in text(parse(refused).find(class_="error-summary")), (change, message)
    assert await SiteTemplate.filter(site=site).count() == 5
    await post_form(client, url, page, {"site": site.id, "weekday": "5", "start": "14:00", "end": "16:00",
                                        "capacity": "0"})
    window = await SiteTemplate.get(site=site, weekday=5)
    await post_form(client, "/admin/sites/template/remove", page, {"site": site.id, "window": window.id})
    assert await SiteTemplate.filter(site=site).count() == 5


async def test_applying_the_template_keeps_booked_and_held_places_and_the_page_says_so(client, district):
    site = await make_site("TH01")
    await SiteTemplate.create(site=site, weekday=0, start="08:30", end="09:30", capacity=2)
    await SiteTemplate.create(site=site, weekday=0, start="14:00", end="15:00", capacity=5)
    await SiteTemplate.create(site=site, weekday=1, start="08:30", end="09:30", capacity=7)
    busy = await make_slot(site, MONDAY, "08:30", "09:30", capacity=10)
    await _booked(district, site, busy, 3)
    holder, _ = await make_resident(site, first_dose=dt.date(2021, 6, 1), phone="13700000000")
    await service.choose(district, await service.stand(district, holder), busy.id)  # 3 booked + 1 held
    await _admin(client)
    page = await get_page(client, f"/admin/sites/template?site={site.id}")
    response = await post_form(client, "/admin/sites/template/apply", page, {
        "site": site.id, "from_day": MONDAY.isoformat(), "to_day": (MONDAY + dt.timedelta(days=7)).isoformat()})
    assert (await Slot.get(id=busy.id)).capacity == 4  # never below booked + held
    windows = await Slot.filter(site=site).order_by("day", "start").values_list("day", "start", "capacity")
    assert windows == [(MONDAY, "08:30", 4), (MONDAY, "14:00", 5), (MONDAY + dt.timedelta(days=1), "08:30", 7),
                       (MONDAY + dt.timedelta(days=7), "08:30", 2), (MONDAY + dt.timedelta(days=7), "14:00", 5)]
    shown = text(await get_page(client, response.headers["location"]))
    assert "新建4个时段" in shown and "1个时段已占用的名额多于模板" in shown and "（模板2，已占用的名额保留）" in shown
    assert (await check_database(district.rules)).ok
    assert "1 kept taken places" in (await AuditEntry.get(action="template_apply")).detail
    past = await post_form(client, "/admin/sites/template/apply", page, {
        "site": site.id, "from_day": (TODAY - dt.timedelta(days=1)).isoformat(), "to_day": MONDAY.isoformat()},
        status=422)
    assert "开始日期不能早于今天" in text(parse(past))


async def test_a_window_edit_below_the_places_taken_is_refused_with_the_number_taken(client, district):
    site = await make_site("TH01")
    slot = await make_slot(site, MONDAY, "08:30", "09:30", capacity=10)
    await _booked(district, site, slot, 3)
    holder, _ = await make_resident(site, first_dose=dt.date(2021, 6, 1), phone="13700000000")
    await service.choose(district, await service.stand(district, holder), slot.id)
    await _admin(client)
    url = f"/admin/sites/slots?site={site.id}&from_day={MONDAY}&to_day={MONDAY}"
    page = await get_page(client, url)
    row = text(page.find(id=f"cap-{slot.id}").find_parent("tr"))
    assert "08:30" in row and " 10 3 1 6 " in f" {row} "  # capacity, booked, held, free
    refused = await post_form(client, "/admin/sites/slots/capacity", page, {
        "site": site.id, "slot": slot.id, "capacity": "3", "from_day": MONDAY.isoformat(),
        "to_day": MONDAY.isoformat()}, status=422)
    soup = parse(refused)
    assert "已有4个名额被占用" in text(soup.find(class_="error-summary"))
    assert soup.find(id=f"cap-{slot.id}")["aria-invalid"] == "true"
    assert (await Slot.get(id=slot.id)).capacity == 10
    done = await post_form(client, "/admin/sites/slots/capacity", page, {
        "site": site.id, "slot": slot.id, "capacity": "4", "from_day": MONDAY.isoformat(),
        "to_day": MONDAY.isoformat()})
    assert (await Slot.get(id=slot.id)).capacity == 4
    assert "名额已保存" in text(await get_page(client, done.headers["location"]))
    assert (await AuditEntry.get(action="slot_capacity")).detail == f"TH01 {MONDAY} 08:30: 10 -> 4"
    assert (await check_database(district.rules)).ok


async def test_only_an_admin_reaches_the_sites_console(client):
    await make_site("TH01")
    await make_staff("callcentre", "agent")
    await sign_in(client, "agent")
    await get_page(client, "/admin/sites", status=403)
