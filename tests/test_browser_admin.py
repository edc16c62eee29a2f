"""An admin's morning in headless Chromium, keyboard only: import the overnight file, open next
week's capacity from the template, close Thursday afternoon at one site and move its bookings,
mark a sub-district medium risk, send the day's invitations. Screenshots for the README.
Then issue 22's finding 2: "close and move" into a target with no free place must never cancel
everyone behind a move button; the database must match the button's words, JavaScript on or off."""
from __future__ import annotations

import datetime as dt
import re
import sqlite3

import pytest

from models.clock import SystemClock
from models.db.tables import SiteTemplate
from tests.conftest import TEST_SECRET
from tests.factories import book_for, id_number, make_resident, make_site, make_slot
from tests.realserver import Server, seed, shot
from tests.staff_helpers import PASSWORD, make_staff
from web.settings import Settings, build_district

pytestmark = pytest.mark.browser
playwright_api = pytest.importorskip("playwright.sync_api")


def next_weekday(day: dt.date, weekday: int) -> dt.date:
    return day + dt.timedelta(days=(weekday - day.weekday()) % 7 or 7)


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    folder = tmp_path_factory.mktemp("admin")
    path = folder / "admin.sqlite3"
    url = f"sqlite://{path}"
    clock = SystemClock()
    today = clock.today()
    thursday = next_weekday(today, 3)
    district = build_district(Settings(database_url=url, secret_key=TEST_SECRET), clock=clock)

    async def build():
        home = await make_site("TH01", "五山街", name="五山街社区卫生服务中心", address="天河区五山路71号")
        other = await make_site("TH03", "龙洞街", name="龙洞街社区卫生服务中心", address="天河区龙洞北路2号")
        for weekday in range(7):  # TH01's weekly template: mornings and afternoons
            await SiteTemplate.create(site=home, weekday=weekday, start="08:30", end="11:30", capacity=30)
            await SiteTemplate.create(site=home, weekday=weekday, start="14:00", end="17:00", capacity=30)
        afternoon = await make_slot(home, thursday, "14:00", "17:00", capacity=30)
        await make_slot(other, thursday, "14:00", "17:00", capacity=2)
        first = today - dt.timedelta(days=30)
        for i in range(3):  # booked for Thursday afternoon at TH01
            resident, _ = await make_resident(home, first_dose=first, name=f"陈{i}明", phone=f"1360000000{i}")
            await book_for(district, resident, afternoon)
        for i in range(4):  # due and not yet invited
            await make_resident(home, first_dose=first, name=f"林{i}华", phone=f"1350000000{i}",
                                subdistrict="五山街")
        await make_staff("admin", "chen")
        # Finding 2's world, away from the morning's sites: TH05 closes Friday (JS on) and
        # Saturday (JS off), 3 bookings each; TH06 is full both days, TH07 has room, TH08 one place.
        friday, saturday = next_weekday(today, 4), next_weekday(today, 5)
        closing = {code: await make_site(code, "猎德街", name=f"猎德街{code}服务点") for code in ("TH05", "TH06", "TH07", "TH08")}
        for day in (friday, saturday):
            windows = await make_slot(closing["TH05"], day, "09:00", "10:00", capacity=10)
            await make_slot(closing["TH06"], day, "09:00", "10:00", capacity=2, booked=2)
            await make_slot(closing["TH07"], day, "10:00", "11:00", capacity=10)
            for i in range(3):
                resident, _ = await make_resident(closing["TH05"], first_dose=first, name=f"何{i}英",
                                                  phone=f"13700{day.day:02d}000{i}")
                await book_for(district, resident, windows)
        await make_slot(closing["TH08"], saturday, "15:00", "16:00", capacity=1)
        return {"home": home.id, "other": other.id, "friday": friday, "saturday": saturday,
                **{code: site.id for code, site in closing.items()}}

    ids = seed(url, build)
    overnight = folder / "overnight.csv"
    rows = [f"周{i}平,{id_number()},1391234{i:04d},{(today - dt.timedelta(days=25)).isoformat()},TH01,,"
            for i in range(5)]
    rows.insert(2, "错一行,440106198001010000,13900000000,2021-02-30,TH01,,")  # a bad check digit and date
    overnight.write_text("\ufeffname,id_number,phone,first_dose_date,site_code,vaccine,subdistrict\n"
                         + "\n".join(rows) + "\n\n", encoding="utf-8")
    server = Server(url, TEST_SECRET)
    yield {**ids, "base": server.base_url, "path": path, "file": overnight, "today": today,
           "thursday": thursday}
    server.stop()


def tab_to(page, selector: str, limit: int = 80) -> None:
    """Press Tab until the focused element matches `selector`, as a keyboard user would."""
    for _ in range(limit):
        if page.evaluate("s => document.activeElement && document.activeElement.matches(s)", selector):
            return
        page.keyboard.press("Tab")
    raise AssertionError(f"Tab never reached {selector}")


def follow(page, selector: str) -> None:
    tab_to(page, selector)
    page.keyboard.press("Enter")


def count(world, sql: str, *args) -> int:
    """A count straight from the SQLite file (Playwright's loop is running: no asyncio here)."""
    with sqlite3.connect(world["path"]) as conn:
        return conn.execute(sql, args).fetchone()[0]


def test_an_admins_morning_with_the_keyboard_alone(world, browser):
    expect = playwright_api.expect
    base = world["base"]
    context = browser.new_context(viewport={"width": 1280, "height": 900}, locale="zh-CN")
    page = context.new_page()
    # Playwright starts catching the file dialog when a page first has a "filechooser" listener,
    # without waiting for the browser to say it does: a listener added only around the key press
    # (expect_file_chooser) could lose the race to it, and the dialog never came. Listen from the
    # start, so the catching is in place long before the admin presses Space on the file field.
    page.on("filechooser", lambda chooser: None)
    page.goto(f"{base}/staff")
    expect(page.locator("#username")).to_be_focused()
    page.keyboard.type("chen")
    page.keyboard.press("Tab")
    page.keyboard.type(PASSWORD)
    page.keyboard.press("Enter")
    page.wait_for_url("**/admin")

    # 1. The overnight file of first doses.
    follow(page, "header a[href='/admin/imports']")
    page.wait_for_url("**/admin/imports")
    tab_to(page, "input[type=file]")
    with page.expect_file_chooser() as chooser:
        page.keyboard.press("Space")
    chooser.value.set_files(str(world["file"]))
    page.keyboard.press("Tab")
    page.keyboard.press("Enter")
    page.wait_for_url("**/admin/imports/*")
    expect(page.locator("#rejects")).to_be_visible(timeout=30_000)  # the page refreshed itself
    body = page.locator("main").inner_text()
    assert "5" in body and "1" in body
    shot(page, "admin-1-import")

    # 2. Next week's capacity from TH01's weekly template.
    follow(page, "header a[href='/admin/sites']")
    page.wait_for_url("**/admin/sites")
    follow(page, f"a[href='/admin/sites/template?site={world['home']}']")
    page.wait_for_url("**/admin/sites/template*")
    start = world["today"] + dt.timedelta(days=7 - world["today"].weekday())  # next Monday
    tab_to(page, "#t-from_day")
    page.locator("#t-from_day").fill(start.isoformat())  # a date field takes typed digits per segment
    page.keyboard.press("Tab")
    page.locator("#t-to_day").fill((start + dt.timedelta(days=6)).isoformat())
    page.keyboard.press("Enter")
    expect(page.locator("main")).to_contain_text("14")
    shot(page, "admin-2-capacity")
    opened = count(world, "SELECT count(*) FROM slot WHERE site_id = ? AND day BETWEEN ? AND ?",
                   world["home"], start.isoformat(), (start + dt.timedelta(days=6)).isoformat())
    assert opened == 14

    # 3. Close Thursday afternoon at TH01 and move its bookings to TH03.
    page.goto(f"{base}/admin/sites")
    follow(page, "a[href='/admin/closing']")
    page.wait_for_url("**/admin/closing")
    tab_to(page, "#c-site")
    page.locator("#c-site").select_option(str(world["home"]))
    page.keyboard.press("Tab")
    page.locator("#c-day").fill(world["thursday"].isoformat())
    tab_to(page, "#c-start")
    page.keyboard.type("14:00")
    tab_to(page, "#c-reason")
    page.keyboard.type("疫苗未到货")
    page.keyboard.press("Enter")
    page.wait_for_url("**/admin/closing/preview*")
    expect(page.locator("main")).to_contain_text("3")
    tab_to(page, "#m-to")
    page.locator("#m-to").select_option(f"{world['other']}:{world['thursday'].isoformat()}")
    move = page.locator("button[name=mode][value=move]")
    expect(move).to_have_text("停诊：改约2人，取消1人")  # htmx: the numbers follow the picker at once
    shot(page, "admin-3-closing-preview")
    tab_to(page, "button[name=mode][value=move]")
    page.keyboard.press("Enter")
    page.wait_for_url("**/admin/closing/done*")
    shot(page, "admin-3-closing-done")
    moved = count(world, "SELECT count(*) FROM booking JOIN slot ON slot.id = booking.slot_id "
                         "WHERE booking.status = 'active' AND slot.site_id = ?", world["other"])
    cancelled = count(world, "SELECT count(*) FROM booking WHERE status = 'cancelled'")
    assert (moved, cancelled) == (2, 1), "as many as TH03 has room for, the rest cancelled"

    # 4. Mark 龙洞街 medium risk from today.
    follow(page, "header a[href='/admin/risk']")
    page.wait_for_url("**/admin/risk")
    tab_to(page, "#subdistrict")
    page.locator("#subdistrict").select_option("龙洞街")
    tab_to(page, "#level-medium")
    page.keyboard.press("Space")
    tab_to(page, "form[action='/admin/risk/mark'] button[type=submit]")
    page.keyboard.press("Enter")
    expect(page.locator("main")).to_contain_text("龙洞街")
    shot(page, "admin-4-risk")
    assert count(world, "SELECT count(*) FROM risk_area WHERE subdistrict = '龙洞街'") == 1

    # 5. The day's invitations.
    follow(page, "header a[href='/admin/invitations']")
    page.wait_for_url("**/admin/invitations*")
    send = page.locator("form[action='/admin/invitations/send'] button[type=submit]")
    expect(send).to_contain_text("向全区范围的")
    tab_to(page, "#f-subdistrict")
    page.locator("#f-subdistrict").select_option("五山街")
    expect(send).to_contain_text("向五山街的")  # htmx: the count and the button follow the filter
    said = int(re.search(r"的(\d+)人", send.inner_text()).group(1))
    follow(page, "form[action='/admin/invitations/send'] button[type=submit]")
    page.wait_for_url("**/admin/invitations/progress*")
    expect(page.locator("main")).to_contain_text("完成", timeout=30_000)
    shot(page, "admin-5-invitations")
    invited = count(world, "SELECT count(*) FROM sms_message WHERE kind = 'invite'")
    assert invited == said >= 4, "the button's words: that many, in 五山街"
    assert count(world, "SELECT count(*) FROM resident WHERE invited_at IS NOT NULL AND subdistrict <> '五山街'") == 0
    context.close()


# ---- issue 22, finding 2: close and move never cancels by surprise


def sign_in(context, base: str):
    page = context.new_page()
    page.goto(f"{base}/staff")
    page.locator("#username").fill("chen")
    page.locator("#password").fill(PASSWORD)
    page.locator("#password").press("Enter")
    page.wait_for_url("**/admin")
    return page


def where_they_are(world, day: dt.date) -> tuple[int, int, int]:
    """(still on the closed TH05 day, active at TH07 that day, cancelled) for `day`'s three people."""
    on = "SELECT count(*) FROM booking JOIN slot ON slot.id = booking.slot_id WHERE slot.day = ? AND "
    return (count(world, on + "slot.site_id = ? AND booking.status = 'active'", day.isoformat(), world["TH05"]),
            count(world, on + "slot.site_id = ? AND booking.status = 'active'", day.isoformat(), world["TH07"]),
            count(world, on + "slot.site_id = ? AND booking.status = 'cancelled'", day.isoformat(), world["TH05"]))


def preview_url(world, day: dt.date, to: str = "") -> str:
    url = f"{world['base']}/admin/closing/preview?site={world['TH05']}&day={day.isoformat()}&start=&reason=暴雨"
    return url + (f"&to={to}" if to else "")


def test_closing_into_a_full_target_moves_nobody_and_the_database_matches_the_button_with_javascript(
        world, browser):
    """Before: a target with 0 free places, "确认停诊并改约" active: 0 moved, 3 cancelled."""
    expect = playwright_api.expect
    friday = world["friday"]
    context = browser.new_context(viewport={"width": 360, "height": 740}, locale="zh-CN")
    page = sign_in(context, world["base"])
    page.goto(preview_url(world, friday, f"{world['TH06']}:{friday.isoformat()}"))
    move = page.locator("button[name=mode][value=move]")
    expect(move).to_have_text("停诊并改约0人")
    expect(move).to_be_disabled()
    expect(page.locator("#closing-plan")).to_contain_text("一个人也改约不了")
    shot(page, "admin-closing-full-target")
    assert page.evaluate("document.documentElement.scrollWidth") <= 360  # a phone: no sideways scroll
    listed = page.locator("#m-to option").evaluate_all("os => os.map(o => [o.value, o.textContent])")
    offered = {value: label for value, label in listed if value}
    assert f"{world['TH05']}:{friday.isoformat()}" not in offered  # never the day being closed
    assert "没有空余名额" in offered[f"{world['TH06']}:{friday.isoformat()}"]  # only as the stale pick
    assert all("空余" in label for label in offered.values())
    assert where_they_are(world, friday) == (3, 0, 0)

    page.locator("#m-to").select_option(f"{world['TH07']}:{friday.isoformat()}")
    expect(move).to_have_text("停诊并改约3人")  # no "look" pressed: the picker updated the numbers
    expect(move).to_be_enabled()
    assert "to=" in page.url and str(world["TH07"]) in page.url  # the address is the screen's state
    move.click()
    page.wait_for_url("**/admin/closing/done*")
    assert where_they_are(world, friday) == (0, 3, 0), "the button said: move 3"
    context.close()


def test_without_javascript_a_picker_changed_but_not_looked_at_changes_nothing(world, browser):
    expect = playwright_api.expect
    saturday = world["saturday"]
    context = browser.new_context(viewport={"width": 360, "height": 740}, locale="zh-CN",
                                  java_script_enabled=False)
    page = sign_in(context, world["base"])
    page.goto(preview_url(world, saturday, f"{world['TH07']}:{saturday.isoformat()}"))
    move = page.locator("button[name=mode][value=move]")
    expect(move).to_have_text("停诊并改约3人")
    # The admin picks TH08 (one place) but presses the old button, which still says "move 3".
    page.locator("#m-to").select_option(f"{world['TH08']}:{saturday.isoformat()}")
    move.click()
    expect(page.locator(".error-summary")).to_contain_text("情况已变化，请再核对一次")
    expect(move).to_have_text("停诊：改约1人，取消2人")  # now the numbers of the target picked
    assert where_they_are(world, saturday) == (3, 0, 0), "nothing changed"
    page.locator("#m-to").select_option(f"{world['TH07']}:{saturday.isoformat()}")
    page.locator("button[name=mode][value=look]").click()
    expect(move).to_have_text("停诊并改约3人")
    move.click()
    page.wait_for_url("**/admin/closing/done*")
    assert where_they_are(world, saturday) == (0, 3, 0)
    context.close()
