"""Family doctors and community health centres (role `clinic`): the agent console, each booking
recorded with how it was made (family_doctor: by phone; clinic_desk: at the centre's desk), the
channel report counting it, an account bound to a sub-district kept to its residents, and the
account made from the command line and the admin's accounts page."""
from __future__ import annotations

import datetime as dt
import os
import subprocess
import sys
from pathlib import Path

import pytest

from models.booking import service
from models.db.tables import AuditEntry, Booking, SmsMessage, StaffUser
from tests.conftest import VAULT
from tests.factories import book_for, make_resident, make_site, make_slot
from tests.pages import get_page, post_form, text
from tests.staff_helpers import browser_at, make_staff, sign_in
from tests.test_reports import rows_of, table

ROOT = Path(__file__).resolve().parent.parent
FIRST = dt.date(2021, 6, 5)
DAY = dt.date(2021, 7, 2)


@pytest.fixture
async def world(db, district):
    wushan = await make_site("S01", "五山街", name="五山街社区卫生服务中心")
    longdong = await make_site("S02", "龙洞街", name="龙洞街社区卫生服务中心")
    slots = {"S01": await make_slot(wushan, DAY, "09:00", "10:00", capacity=20),
             "S02": await make_slot(longdong, DAY, "09:00", "10:00", capacity=20)}
    patient, _ = await make_resident(wushan, first_dose=FIRST, name="张三明", phone="13812345678")
    neighbour, _ = await make_resident(wushan, first_dose=FIRST, name="李四华", phone="13812345679",
                                       born=dt.date(1975, 3, 2))
    stranger, number = await make_resident(longdong, first_dose=FIRST, name="王五芳", phone="13812345670",
                                           born=dt.date(1969, 9, 9))
    await make_staff("clinic", "doctor1", subdistrict="五山街")
    await make_staff("clinic", "doctors", district_wide=True)  # the whole district, on purpose
    await make_staff("callcentre", "agent1")
    await make_staff("admin", "boss1")
    return dict(slots=slots, patient=patient, neighbour=neighbour, stranger=stranger,
                stranger_number=number)


async def check_page(client, resident, slot):
    """The window held for the person, then the check page (parsed)."""
    picker = await get_page(client, f"/staff/calls/book?r={resident.id}&site={slot.site_id}&day={slot.day}")
    response = await post_form(client, "/staff/calls/hold", picker, {"r": resident.id, "slot": slot.id})
    return await get_page(client, response.headers["location"])


def confirm_form(check) -> dict:
    """The confirm form's hidden fields (the channel radios left out)."""
    form = check.find("form", attrs={"action": "/staff/calls/confirm"})
    return {i["name"]: i["value"] for i in form.find_all("input") if i.get("type") == "hidden"}


async def book(client, resident, slot, channel: str | None, *, status: int = 303):
    check = await check_page(client, resident, slot)
    data = confirm_form(check) | ({"channel": channel} if channel is not None else {})
    response = await client.post("/staff/calls/confirm", data=data)
    assert response.status_code == status, response.text[:600]
    return check, response


async def test_a_clinic_account_starts_at_the_agent_console_and_not_elsewhere(client, world):
    response = await sign_in(client, "doctor1")
    assert response.headers["location"] == "/staff/calls"
    page = await get_page(client, "/staff/calls")
    assert page.find("a", href="/staff/calls")
    for path in ("/admin", "/group", "/staff/site", "/admin/reports/channels"):
        assert (await client.get(path)).status_code == 403, path


async def test_the_check_page_asks_how_the_booking_was_made(client, world):
    await sign_in(client, "doctor1")
    check = await check_page(client, world["patient"], world["slots"]["S01"])
    radios = check.select('input[type="radio"][name="channel"]')
    assert [r["value"] for r in radios] == ["family_doctor", "clinic_desk"]
    assert all(r.has_attr("required") and not r.has_attr("checked") for r in radios)
    assert "电话/家庭医生" in text(check) and "社区卫生服务中心窗口" in text(check)


async def test_the_call_centre_is_not_asked_and_books_as_the_call_centre(client, world):
    await sign_in(client, "agent1")
    check, _ = await book(client, world["patient"], world["slots"]["S01"], None)
    assert not check.select('input[name="channel"]')
    assert (await Booking.get(resident_id=world["patient"].id)).channel == "callcentre"


async def test_clinic_bookings_are_recorded_and_counted_under_their_channel(client, world, district):
    await sign_in(client, "doctor1")
    _, response = await book(client, world["patient"], world["slots"]["S01"], "family_doctor")
    assert "预约成功" in text(await get_page(client, response.headers["location"]))
    await book(client, world["neighbour"], world["slots"]["S01"], "clinic_desk")
    by_phone = await Booking.get(resident_id=world["patient"].id)
    at_desk = await Booking.get(resident_id=world["neighbour"].id)
    assert (by_phone.channel, at_desk.channel) == ("family_doctor", "clinic_desk")
    # The patient may never have had a link: the confirmation SMS carries a new one.
    sms = await SmsMessage.get(resident_id=world["patient"].id, kind="confirm")
    assert "/b/" in VAULT.decrypt(sms.body_cipher)
    entry = await AuditEntry.get(action="book", resident_id=world["patient"].id)
    assert entry.username == "doctor1" and entry.detail.endswith("via family_doctor")
    # Someone who booked with their own SMS link, for comparison.
    await book_for(district, world["stranger"], world["slots"]["S02"])

    async with browser_at(client.app, "203.0.113.50") as admin:
        await sign_in(admin, "boss1")
        page = await get_page(admin, "/admin/reports/channels")
        assert "预约渠道" in text(page)
        rows = {r[0]: r[1:] for r in table(page, "channels")}
        assert rows["电话/家庭医生"] == ["1", "0", "33.3%"]
        assert rows["社区卫生服务中心窗口"] == ["1", "0", "33.3%"]
        assert rows["短信链接"] == ["1", "0", "33.3%"]
        assert rows["12345热线"] == ["0", "0", "0.0%"]
        assert rows["合计"] == ["3", "0", "100.0%"]
        # People living in 龙洞街 only: neither clinic booking.
        page = await get_page(admin, "/admin/reports/channels?subdistrict=龙洞街")
        rows = {r[0]: r[1:] for r in table(page, "channels")}
        assert rows["电话/家庭医生"][0] == "0" and rows["合计"][0] == "1"
        # Booked for another day, or at the other site: not counted.
        page = await get_page(admin, "/admin/reports/channels?from_day=2021-07-03&to_day=2021-07-09")
        assert {r[0]: r[1] for r in table(page, "channels")}["合计"] == "0"
        page = await get_page(admin, f"/admin/reports/channels?site={world['slots']['S02'].site_id}")
        rows = {r[0]: r[1:] for r in table(page, "channels")}
        assert rows["短信链接"][0] == "1" and rows["合计"][0] == "1"

        csv_rows = rows_of(await admin.get("/admin/reports/channels.csv"))
        assert csv_rows[0] == ["渠道", "待接种", "已签到", "占待接种的比例（百分比）"]  # the staff's words
        by_channel = {r[0]: r[1:] for r in csv_rows[1:]}
        assert by_channel["电话/家庭医生"] == ["1", "0", "33.3"]
        assert by_channel["社区卫生服务中心窗口"] == ["1", "0", "33.3"]
        assert by_channel["合计"] == ["3", "0", "100.0"]
        assert await AuditEntry.filter(action="export_report", detail__startswith="channels").count() == 1

        # A cancelled booking is no longer counted.
        await service.cancel(district, world["patient"].id, by_phone.id)
        rows = {r[0]: r[1:] for r in table(await get_page(admin, "/admin/reports/channels"), "channels")}
        assert rows["电话/家庭医生"][0] == "0" and rows["合计"][0] == "2"


async def test_the_channel_report_refuses_filters_it_cannot_use(client, world):
    await sign_in(client, "boss1")
    for query in ("from_day=2021-13-01", "from_day=2021-07-05&to_day=2021-07-01", "site=999999",
                  "subdistrict=海珠"):
        page = await get_page(client, f"/admin/reports/channels?{query}", status=422)
        assert "筛选条件有问题" in text(page) and not page.find("table", id="channels")
        response = await client.get(f"/admin/reports/channels.csv?{query}")
        assert response.status_code == 422 and "text/csv" not in response.headers["content-type"]


@pytest.mark.parametrize("channel, why", [
    ("", "请选择这次预约的办理方式"),
    ("callcentre", "不能用于您的账号"),
    ("sms", "不能用于您的账号"),
    ("handoff", "不能用于您的账号"),
    ("FAMILY_DOCTOR", "不能用于您的账号"),
    ("family_doctor,clinic_desk", "不能用于您的账号"),
])
async def test_a_clinic_cannot_leave_out_or_tamper_with_the_channel(client, world, channel, why):
    await sign_in(client, "doctor1")
    _, response = await book(client, world["patient"], world["slots"]["S01"], channel, status=422)
    assert why in response.text
    assert not await Booking.filter(resident_id=world["patient"].id).exists()
    assert not await AuditEntry.filter(action="book").exists()


async def test_the_call_centre_cannot_record_a_clinic_channel(client, world):
    await sign_in(client, "agent1")
    _, response = await book(client, world["patient"], world["slots"]["S01"], "family_doctor", status=422)
    assert "不能用于您的账号" in response.text
    assert not await Booking.filter(resident_id=world["patient"].id).exists()


async def test_a_clinic_bound_to_a_sub_district_is_refused_outside_it_and_audited(client, world):
    await sign_in(client, "doctor1")
    stranger = world["stranger"]
    response = await client.get(f"/staff/calls/resident?r={stranger.id}")
    assert response.status_code == 403 and "五山街" in response.text and "王*芳" not in response.text
    entry = await AuditEntry.get(action="out_of_area")
    assert entry.username == "doctor1" and entry.role == "clinic" and entry.resident_id == stranger.id
    # Booking for them with a made-up form: refused too, and nothing booked.
    page = await get_page(client, "/staff/calls")
    response = await client.post("/staff/calls/confirm", data={
        "csrftoken": page.find("input", attrs={"name": "csrftoken"})["value"], "r": stranger.id,
        "slot": world["slots"]["S02"].id, "key": "k" * 12, "channel": "family_doctor"})
    assert response.status_code == 403
    assert not await Booking.filter(resident_id=stranger.id).exists()
    assert await AuditEntry.filter(action="out_of_area").count() == 2
    # Its search finds nobody outside the sub-district.
    response = await post_form(client, "/staff/calls/search", page, {"q": world["stranger_number"]}, status=200)
    assert "王*芳" not in response.text and "没有找到" in response.text


async def test_a_clinic_bound_to_no_sub_district_serves_the_whole_district(client, world):
    await sign_in(client, "doctors")
    await book(client, world["stranger"], world["slots"]["S02"], "clinic_desk")
    assert (await Booking.get(resident_id=world["stranger"].id)).channel == "clinic_desk"
    assert not await AuditEntry.filter(action="out_of_area").exists()


async def test_the_admin_creates_clinic_accounts_bound_or_not(client, world):
    await sign_in(client, "boss1")
    page = await get_page(client, "/admin/accounts")
    assert "家庭医生/社区卫生服务中心" in text(page)
    for username, subdistrict, wide in (("wushan-clinic", "五山街", ""), ("all-doctors", "", "1")):
        page = await get_page(client, "/admin/accounts")
        await post_form(client, "/admin/accounts/create", page, {
            "role": "clinic", "username": username, "subdistrict": subdistrict, "district_wide": wide,
            "password": "a long enough password", "password2": "a long enough password"})
        user = await StaffUser.get(username=username)
        assert (user.role, user.subdistrict, user.district_wide) == ("clinic", subdistrict, bool(wide))
    entries = await AuditEntry.filter(action="create_account").order_by("id").values_list("detail", flat=True)
    assert entries == ["clinic wushan-clinic subdistrict=五山街", "clinic all-doctors district-wide"]
    page = await get_page(client, "/admin/accounts")
    row = next(tr for tr in page.select("tbody tr") if "all-doctors" in tr.text)
    assert "全区" in row.text


def test_create_user_role_clinic_from_the_command_line(tmp_path):
    env = {**os.environ, "DATABASE_URL": f"sqlite://{tmp_path}/x.sqlite3", "SECRET_KEY": "test",
           "BASE_URL": "http://127.0.0.1:8000", "SMS_BACKEND": "console"}

    def cli(*args: str) -> tuple[int, str, str]:
        done = subprocess.run([sys.executable, "run.py", "create-user", *args], cwd=ROOT, env=env,
                              input="a long enough password\n", capture_output=True, text=True, timeout=60)
        return done.returncode, done.stdout, done.stderr

    status, out, _ = cli("--role", "clinic", "--subdistrict", "五山", "--username", "wushan-clinic")
    assert status == 0 and "created clinic account wushan-clinic for 五山街" in out
    status, out, _ = cli("--role", "clinic", "--district-wide", "--username", "family-doctors")
    assert status == 0 and "created clinic account family-doctors for the whole district" in out
    status, _, err = cli("--role", "clinic", "--subdistrict", "海珠", "--username", "elsewhere")
    assert status == 1 and "sub-districts" in err
