"""Group booking in headless Chromium against the real server.

A residents' committee's list of 20, booked by its sub-district office with the keyboard alone:
upload the list, see each row's standing, tick the windows, book, download the result as CSV.
The page is one state (issue 22, finding 1): another day chosen is the day booked, or nothing is
booked and the page says the choice changed, with JavaScript and without. The list, its result
and a row's correction at 360 px: no sideways scroll, names on one line, the booking form in the
first two screens (finding 4). Screenshots for the README."""
from __future__ import annotations

import csv
import datetime as dt
import re
import sqlite3

import pytest

from models.clock import SystemClock
from models.channels import groups
from tests.conftest import TEST_SECRET, VAULT
from tests.factories import id_number, make_resident, make_site, make_slot
from tests.realserver import SCREENSHOT_DIR, Server, seed, shot
from tests.staff_helpers import PASSWORD, make_staff
from tests.test_browser_admin import tab_to
from tests.test_browser_staff import sign_in

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
    later = today + dt.timedelta(days=3)

    async def build():
        home = await make_site("TH01", "五山街", name="五山街社区卫生服务中心", address="天河区五山路71号")
        far = await make_site("TH03", "龙洞街", name="龙洞街社区卫生服务中心", address="天河区龙洞北路2号")
        await make_slot(home, tomorrow, "08:30", "09:30", capacity=10)
        await make_slot(home, tomorrow, "09:30", "10:30", capacity=10)
        await make_slot(home, tomorrow, "14:00", "15:00", capacity=20)
        await make_slot(far, tomorrow, "09:00", "10:00", capacity=20)
        first_window = await make_slot(home, tomorrow, "15:00", "16:00", capacity=5)
        later_window = await make_slot(home, later, "08:30", "09:30", capacity=5)
        rows = []
        for i, name in enumerate(NAMES[:18]):  # due for their second dose
            _, number = await make_resident(home, first_dose=today - dt.timedelta(days=30), name=name,
                                            born=dt.date(1946 + i, 3, 9), phone=f"1371234{i:04d}")
            rows.append(f"{name},{number},1371234{i:04d}")
        _, early = await make_resident(home, first_dose=today - dt.timedelta(days=3), name=NAMES[18],
                                       phone="13712349998")
        rows.append(f"{NAMES[18]},{early},13712349998")  # first dose three days ago: too early
        rows.append(f"{NAMES[19]},{id_number(dt.date(1950, 1, 1))},")  # no first-dose record here
        office = await make_staff("subdistrict", "wushan1", subdistrict="五山街")
        # One person a list, for the one-state walks (JavaScript on and off); a long list with a
        # long name, for the phone.
        lists = {}
        for n, key in enumerate(("js", "nojs")):
            resident, number = await make_resident(home, first_dose=today - dt.timedelta(days=30),
                                                   name=f"欧阳{'一二'[n]}", born=dt.date(1950 + n, 5, 1),
                                                   phone=f"1371235000{n}")
            group = await groups.create_list(VAULT, office, f"一人名单{key}", f"欧阳{'一二'[n]},{number},\n".encode())
            lists[key] = (group.id, resident.id)
        _, long_number = await make_resident(home, first_dose=today - dt.timedelta(days=30),
                                             name="阿卜杜热合曼·买买提江", born=dt.date(1949, 2, 2),
                                             phone="13712350009")
        text = "\n".join(rows + [f"阿卜杜热合曼·买买提江,{long_number},13712350009"])
        phone = await groups.create_list(VAULT, office, "石牌街华师社区居委会 第一批（手机）", text.encode())
        return rows, lists, phone.id, (first_window.id, later_window.id)

    rows, lists, phone_list, windows = seed(url, build)
    committee = folder / "华师社区居委会.csv"
    committee.write_text("\ufeff姓名,身份证号,手机\n" + "\n".join(rows) + "\n", encoding="utf-8")
    server = Server(url, TEST_SECRET)
    yield {"base": server.base_url, "path": path, "file": committee, "folder": folder, "lists": lists,
           "phone_list": phone_list, "first_window": windows[0], "later_window": windows[1],
           "tomorrow": tomorrow, "later": later}
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

    # Nothing ticked yet: no book button. Two morning windows, each box counted at once.
    expect(page.locator("#fit")).to_contain_text("请勾选")
    expect(page.locator("#act")).to_have_count(0)
    tab_to(page, "#w-1")  # 08:30, TH01's first window
    page.keyboard.press("Space")
    expect(page.locator("#fit")).to_contain_text("能约上10人，另外8人约不上")
    tab_to(page, "#w-2")  # 09:30 (htmx drew the form again: focus stayed on the box)
    page.keyboard.press("Space")
    expect(page.locator("#fit")).to_contain_text("全部18人都能约上")
    day = f"{world['tomorrow'].month}月{world['tomorrow'].day}日"
    expect(page.locator("#act")).to_contain_text(f"为18人预约 {day}")
    expect(page.locator("#act")).to_contain_text(re.compile(r"8:30-0?9:30、0?9:30-10:30，五山街社区卫生服务中心"))
    shot(page, "group-2-windows")
    tab_to(page, "#act")
    page.keyboard.press("Enter")
    page.wait_for_url("**/result")
    expect(page.locator("#summary")).to_contain_text("20人中已为18人预约")
    expect(page.locator("#summary.found")).to_be_visible()  # mostly done: green, not red
    expect(page.locator("#not-done")).to_contain_text("2人未能办理")
    shot(page, "group-3-result")

    # The result for the committee's own spreadsheet.
    tab_to(page, "#download")
    with page.expect_download() as waiting:
        page.keyboard.press("Enter")
    saved = world["folder"] / "result.csv"
    waiting.value.save_as(saved)
    raw = saved.read_bytes()
    assert raw.startswith("\ufeff".encode())  # Excel and WPS read UTF-8 by its BOM
    rows = list(csv.DictReader(raw.decode("utf-8-sig").splitlines()))
    assert list(rows[0]) == ["行号", "姓名", "身份证号", "手机", "结果", "说明", "预约码", "接种点", "地址",
                             "日期", "时间"]
    assert [r["姓名"] for r in rows] == NAMES
    assert [r["结果"] for r in rows] == ["已预约"] * 18 + ["还未到预约时间", "查无记录"]
    assert all(r["预约码"] and r["时间"] in ("08:30-09:30", "09:30-10:30") for r in rows[:18])
    assert all("*" in r["身份证号"] and "*" in r["手机"] for r in rows[:18])
    source = world["file"].read_text(encoding="utf-8-sig")
    assert not any(r["身份证号"] in source for r in rows), "no full ID number in the result"
    assert count(world, "SELECT count(*) FROM booking WHERE channel = 'group' AND status = 'active'") == 18
    assert count(world, "SELECT count(*) FROM sms_message WHERE kind = 'confirm'") == 18
    context.close()


def booked_days(world, resident_id: int) -> list[str]:
    with sqlite3.connect(world["path"]) as conn:
        return [d for (d,) in conn.execute(
            "SELECT slot.day FROM booking JOIN slot ON slot.id = booking.slot_id "
            "WHERE booking.resident_id = ? AND booking.status = 'active'", (resident_id,))]


@pytest.mark.parametrize("js", [True, False], ids=["javascript", "no-javascript"])
def test_another_day_chosen_is_the_day_booked_or_nothing_is(world, browser, js):
    """Finding 1: the clerk ticked a window of the first day, then chose a later day and pressed
    the book button: the person was booked for the first day. Now, with JavaScript, the later
    day's windows replace the first day's at once (and the button goes: nothing is ticked there);
    without, the button books nobody and the page says the choice changed. Then the later day's
    window, ticked and booked, is the day in the database."""
    expect = playwright_api.expect
    list_id, resident = world["lists"]["js" if js else "nojs"]
    context = browser.new_context(viewport={"width": 1280, "height": 900}, locale="zh-CN",
                                  java_script_enabled=js)
    page = context.new_page()
    sign_in(page, world["base"], "wushan1")
    page.wait_for_url("**/group")
    page.goto(f"{world['base']}/group/{list_id}")
    check = page.get_by_role("button", name="查看能约上几人")
    book = page.get_by_role("button", name=re.compile(r"^为.*人预约"))

    page.locator(f"#w-{world['first_window']}").check()
    if not js:
        with page.expect_navigation():
            check.click()
    expect(book).to_be_visible()

    later = world["later"]
    page.select_option("#day", later.isoformat())
    if js:  # the later day's windows, at once (before: nothing changed until the button)
        expect(page.locator(f"#w-{world['later_window']}")).to_be_attached()
    if book.count():  # without JavaScript the button is still there, for the first day
        with page.expect_navigation():
            book.click()
        assert booked_days(world, resident) == [], "booked for a day the clerk did not choose"
        expect(page.locator(".error-summary")).to_contain_text("选择已改变，请再核对一次")
        expect(page.locator("#day")).to_have_value(later.isoformat())  # the choice, shown now
    assert booked_days(world, resident) == []

    page.locator(f"#w-{world['later_window']}").check()
    if not js:
        with page.expect_navigation():
            check.click()
    later_day = f"{later.month}月{later.day}日"
    expect(book).to_contain_text(f"为1人预约 {later_day}")
    with page.expect_navigation():
        book.click()
    assert page.url.endswith("/result")
    assert booked_days(world, resident) == [later.isoformat()]
    context.close()


PHONE = {"width": 360, "height": 640}

# Names (and masked numbers) drawn on one line: the finding's names were one character a line.
BROKEN = """() => [...document.querySelectorAll('.name-cell, .mono')].filter(el => {
  const lines = new Set(), range = document.createRange();
  range.selectNodeContents(el);
  for (const r of range.getClientRects()) if (r.width > 0) lines.add(Math.round(r.bottom));
  return lines.size > 1;
}).map(el => el.textContent.trim())"""


@pytest.mark.parametrize("lang", ["zh", "en"], ids=["chinese", "english"])
def test_the_group_pages_on_a_360px_phone(world, browser, lang):
    """Finding 4: the list was 447-467 px wide at 360 px, names one character a line. Each group
    page now fits 360 px, names on one line; the book button is within the first two screens,
    above the rows. In Chinese, and in English (longer words)."""
    expect = playwright_api.expect
    context = browser.new_context(viewport=PHONE, locale="zh-CN", has_touch=True, is_mobile=True)
    context.add_cookies([{"name": "lang", "value": lang, "url": world["base"]}])
    page = context.new_page()
    sign_in(page, world["base"], "wushan1")
    page.wait_for_url("**/group")
    list_id = world["phone_list"]
    member = ""  # the first row's correction page, read from the list below
    for path in ("/group", f"/group/{list_id}", f"/group/{list_id}/result", f"/group/{list_id}/move"):
        page.goto(world["base"] + path)
        width = page.evaluate("document.documentElement.scrollWidth")
        assert width <= PHONE["width"], f"{path}: {width} px wide at 360 px"
        assert page.evaluate(BROKEN) == [], f"{path}: broken across lines"
        if path == f"/group/{list_id}":
            expect(page.locator("#rows tbody tr")).to_have_count(21)
            expect(page.locator("#rows")).to_contain_text("阿卜杜热合曼·买买提江")
            page.locator("#pick input[name=w]:not([disabled])").first.check()  # counted at once
            expect(page.locator("#act")).to_be_visible()
            assert page.evaluate("document.documentElement.scrollWidth") <= PHONE["width"], "the book button"
            SCREENSHOT_DIR.mkdir(parents=True, exist_ok=True)  # the first two screens
            page.screenshot(path=str(SCREENSHOT_DIR / f"group-phone-list{'-' + lang if lang != 'zh' else ''}.png"),
                            full_page=True, clip={"x": 0, "y": 0, "width": PHONE["width"],
                                                  "height": 2 * PHONE["height"]})
            action = page.locator("#act").bounding_box()
            assert action["y"] + action["height"] <= 2 * PHONE["height"], f"the button at {action['y']} px"
            member = page.locator("#rows a[href*='/row?m=']").first.get_attribute("href")
    page.goto(world["base"] + member)
    assert page.evaluate("document.documentElement.scrollWidth") <= PHONE["width"], "row correction"
    context.close()
