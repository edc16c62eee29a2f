"""A residents' committee's list of 20, booked by its sub-district office in headless Chromium with
the keyboard alone: upload the list, see each row's standing, choose the windows, book, download
the result as CSV. Screenshots for the README."""
from __future__ import annotations

import csv
import datetime as dt
import sqlite3

import pytest

from models.clock import SystemClock
from tests.conftest import TEST_SECRET
from tests.factories import id_number, make_resident, make_site, make_slot
from tests.realserver import Server, seed, shot
from tests.staff_helpers import PASSWORD, make_staff
from tests.test_browser_admin import tab_to

pytestmark = pytest.mark.browser
playwright_api = pytest.importorskip("playwright.sync_api")

NAMES = ["黄秀英", "李桂兰", "陈玉珍", "张淑芬", "刘凤英", "王秀珍", "杨桂英", "赵玉兰", "周秀兰", "吴桂芳",
         "徐建国", "孙志强", "马文华", "朱德明", "胡国平", "郭永康", "何振华", "林保国", "罗庆和", "梁福生"]


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    folder = tmp_path_factory.mktemp("group")
    path = folder / "group.sqlite3"
    url = f"sqlite://{path}"
    clock = SystemClock()
    today = clock.today()
    tomorrow = today + dt.timedelta(days=1)

    async def build():
        home = await make_site("TH01", "五山街", name="五山街社区卫生服务中心", address="天河区五山路71号")
        far = await make_site("TH03", "龙洞街", name="龙洞街社区卫生服务中心", address="天河区龙洞北路2号")
        await make_slot(home, tomorrow, "08:30", "09:30", capacity=10)
        await make_slot(home, tomorrow, "09:30", "10:30", capacity=10)
        await make_slot(home, tomorrow, "14:00", "15:00", capacity=20)
        await make_slot(far, tomorrow, "09:00", "10:00", capacity=20)
        rows = []
        for i, name in enumerate(NAMES[:18]):  # due for their second dose
            _, number = await make_resident(home, first_dose=today - dt.timedelta(days=30), name=name,
                                            born=dt.date(1946 + i, 3, 9), phone=f"1371234{i:04d}")
            rows.append(f"{name},{number},1371234{i:04d}")
        _, early = await make_resident(home, first_dose=today - dt.timedelta(days=3), name=NAMES[18],
                                       phone="13712349998")
        rows.append(f"{NAMES[18]},{early},13712349998")  # first dose three days ago: too early
        rows.append(f"{NAMES[19]},{id_number(dt.date(1950, 1, 1))},")  # no first-dose record here
        await make_staff("subdistrict", "wushan1", subdistrict="五山街")
        return rows

    rows = seed(url, build)
    committee = folder / "华师社区居委会.csv"
    committee.write_text("\ufeff姓名,身份证号,手机\n" + "\n".join(rows) + "\n", encoding="utf-8")
    server = Server(url, TEST_SECRET)
    yield {"base": server.base_url, "path": path, "file": committee, "folder": folder}
    server.stop()


def count(world, sql: str, *args) -> int:
    with sqlite3.connect(world["path"]) as conn:
        return conn.execute(sql, args).fetchone()[0]


def test_a_committees_list_of_20_booked_with_the_keyboard_alone(world, browser):
    expect = playwright_api.expect
    context = browser.new_context(viewport={"width": 1280, "height": 900}, locale="zh-CN",
                                  accept_downloads=True)
    page = context.new_page()
    # Catch the file dialog from the start (tests/test_browser_admin.py says why): a listener
    # added only around the key press could lose the race to it.
    page.on("filechooser", lambda chooser: None)
    page.goto(f"{world['base']}/staff")
    expect(page.locator("#username")).to_be_focused()
    page.keyboard.type("wushan1")
    page.keyboard.press("Tab")
    page.keyboard.type(PASSWORD)
    page.keyboard.press("Enter")
    page.wait_for_url("**/group")  # a sub-district's console is group booking

    # The committee's list: a name, the file, Enter.
    expect(page.locator("#name")).to_be_focused()
    page.keyboard.type("华师社区居委会 第一批")
    tab_to(page, "input[type=file]")
    with page.expect_file_chooser() as chooser:
        page.keyboard.press("Space")
    chooser.value.set_files(str(world["file"]))
    tab_to(page, "form[action='/group/new'] button[type=submit]")
    page.keyboard.press("Enter")
    page.wait_for_url("**/group/*")
    expect(page.locator("#rows tbody tr")).to_have_count(20)
    expect(page.locator("#status-counts")).to_contain_text("可以预约")
    assert page.locator("#rows tr.status-eligible").count() == 18
    expect(page.locator("#rows tr.status-too_early")).to_contain_text("起可约")
    expect(page.locator("#rows tr.status-not_found")).to_contain_text("查无第一剂接种记录")
    shot(page, "group-1-list")

    # Two morning windows (the afternoon one unticked), see how many fit, book.
    tab_to(page, "#w-3")  # 14:00, TH01's third window
    page.keyboard.press("Space")
    tab_to(page, "#pick button[type=submit]")
    page.keyboard.press("Enter")
    page.wait_for_url("**/group/*?*")
    expect(page.locator("#fit")).to_contain_text("全部18人都能约上")
    shot(page, "group-2-windows")
    tab_to(page, "#book button[type=submit]")
    page.keyboard.press("Enter")
    page.wait_for_url("**/result")
    expect(page.locator("#summary")).to_contain_text("20人中已为18人预约")
    expect(page.locator("#summary")).to_contain_text("2人未能办理")
    shot(page, "group-3-result")

    # The result for the committee's own spreadsheet.
    tab_to(page, "#download")
    with page.expect_download() as waiting:
        page.keyboard.press("Enter")
    saved = world["folder"] / "result.csv"
    waiting.value.save_as(saved)
    raw = saved.read_bytes()
    assert raw.startswith("\ufeff".encode())
    rows = list(csv.DictReader(raw.decode("utf-8-sig").splitlines()))
    assert [r["name"] for r in rows] == NAMES
    assert [r["result"] for r in rows] == ["booked"] * 18 + ["too_early", "not_found"]
    assert all(r["code"] and r["time"] in ("08:30-09:30", "09:30-10:30") for r in rows[:18])
    assert all("*" in r["id_number"] and "*" in r["phone"] for r in rows[:18])
    source = world["file"].read_text(encoding="utf-8-sig")
    assert not any(r["id_number"] in source for r in rows), "no full ID number in the result"
    assert count(world, "SELECT count(*) FROM booking WHERE channel = 'group' AND status = 'active'") == 18
    assert count(world, "SELECT count(*) FROM sms_message WHERE kind = 'confirm'") == 18
    context.close()
