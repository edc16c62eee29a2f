"""The resident journey in headless Chromium at 360 px, with JavaScript on and off, against the real server."""
from __future__ import annotations

import datetime as dt
import sqlite3

import pytest

from tests.conftest import TEST_SECRET
from tests.factories import journey_world
from tests.realserver import Server, shot

pytestmark = pytest.mark.browser
playwright_api = pytest.importorskip("playwright.sync_api")


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    path = tmp_path_factory.mktemp("browser") / "journey.sqlite3"
    url = f"sqlite://{path}"
    today, people = journey_world(url, {"js": {}, "nojs": {}})
    server = Server(url, TEST_SECRET)
    yield {"server": server, "people": people, "db": path, "today": today}
    server.stop()


def active_bookings(path) -> int:
    with sqlite3.connect(path) as conn:
        return conn.execute("SELECT count(*) FROM booking WHERE status = 'active'").fetchone()[0]


@pytest.mark.parametrize("mode", ["js", "nojs"])
def test_resident_books_changes_and_cancels_on_a_360px_phone(world, browser, mode):
    number, token = world["people"][mode]
    base = world["server"].base_url
    context = browser.new_context(viewport={"width": 360, "height": 740}, device_scale_factor=1,
                                  java_script_enabled=(mode == "js"), locale="zh-CN")
    page = context.new_page()
    expect = playwright_api.expect

    page.goto(f"{base}/b/{token}")
    assert page.url == f"{base}/booking", "the token does not stay in the address bar"
    expect(page.locator("h1")).to_contain_text("张*明")
    shot(page, f"{mode}-01-verify")

    page.fill("#id_number", number[:17] + ("0" if number[17] != "0" else "1"))
    page.click("button[type=submit] >> text=确认")
    expect(page.locator(".error-summary")).to_contain_text("校验码")
    shot(page, f"{mode}-02-wrong-id")

    page.fill("#id_number", number.lower())
    page.click("button[type=submit] >> text=确认")
    page.wait_for_url(f"{base}/booking/site")
    expect(page.locator("button.keep")).to_contain_text("五山街社区卫生服务中心")
    expect(page.locator("main")).to_contain_text("可接种期内已约满")  # TH02 has no slots
    shot(page, f"{mode}-03-site")

    page.click("button.keep")  # keep the first-dose site: the first action on the page
    page.wait_for_url(f"{base}/booking/slot")
    expect(page.locator("input[name=slot][disabled]").first).to_be_disabled()
    shot(page, f"{mode}-04-slot")

    # Pick the second day: with JavaScript htmx swaps the picker; without, the link loads the page.
    page.locator(".days a").nth(1).click()
    second_day = (world["today"] + dt.timedelta(days=2)).isoformat()
    page.wait_for_url(f"**/booking/slot?day={second_day}*")
    page.locator("label", has_text="14:00-15:00").click()
    page.click("text=下一步：核对信息")
    page.wait_for_url(f"{base}/booking/check")
    expect(page.locator("main")).to_contain_text("五山街社区卫生服务中心")
    shot(page, f"{mode}-05-check")

    page.click("text=确认预约")
    page.wait_for_url(f"{base}/booking/done")
    expect(page.locator("h1")).to_have_text("预约成功")
    expect(page.locator("main")).to_contain_text("家属陪同")  # born 1948: 70 or older
    code = page.locator(".code").inner_text()
    assert len(code.replace("-", "")) == 8
    shot(page, f"{mode}-06-confirmation")

    # Later: open the same link again, move to another time, then cancel.
    page.goto(f"{base}/b/{token}")
    page.fill("#id_number", number)
    page.click("button[type=submit] >> text=确认")
    expect(page.locator("h1")).to_have_text("您的预约")
    page.get_by_role("link", name="改约", exact=True).click()
    page.click("button.keep")
    page.locator("label", has_text="08:30-09:30").click()
    page.click("text=下一步：核对信息")
    expect(page.locator("main")).to_contain_text("原来的名额会释放")
    page.click("text=确认改约")
    expect(page.locator("h1")).to_have_text("改约成功")  # issue 22: not "预约成功" again
    expect(page.locator(".code")).to_have_text(code)
    expect(page.locator("main")).to_contain_text("08:30-09:30")
    shot(page, f"{mode}-07-moved")

    page.get_by_role("link", name="取消预约", exact=True).click()
    expect(page.locator("h1")).to_contain_text("确定要取消预约吗")
    page.click("text=确认取消")
    expect(page.locator("h1")).to_have_text("预约已取消")
    shot(page, f"{mode}-08-cancelled")
    context.close()


def test_pages_fit_360px_in_large_text_without_sideways_scrolling(world, browser):
    number, token = world["people"]["js"]
    base = world["server"].base_url
    context = browser.new_context(viewport={"width": 360, "height": 740}, locale="zh-CN")
    page = context.new_page()
    page.goto(f"{base}/b/{token}")
    page.click("text=大字版")
    expect = playwright_api.expect
    expect(page.locator("body")).to_have_class("large")
    page.fill("#id_number", number)
    page.click("button[type=submit] >> text=确认")
    page.wait_for_url(f"{base}/booking/site")
    for url in ("/booking/site", "/booking/slot"):
        page.goto(base + url)
        expect(page.locator("body")).to_have_class("large")  # remembered
        assert page.evaluate("document.documentElement.scrollWidth") <= 360, url
    shot(page, "large-text-site")
    page.click("text=English")
    expect(page.locator("html")).to_have_attribute("lang", "en")
    shot(page, "english-site")
    context.close()


def test_server_log_holds_no_link_token_and_no_full_id(world):
    from tests.pii_scan import find_personal_numbers

    log = world["server"].log_path.read_text(errors="replace")
    assert "GET /b/… 303" in log, "the access log is there, tokens hidden"
    for number, token in world["people"].values():
        assert token not in log
    assert find_personal_numbers(log) == []
