"""Staff consoles in headless Chromium, keyboard only: an agent's whole call, a site worker's check-in."""
from __future__ import annotations

import datetime as dt

import pytest

from models.booking_codes import format_code
from models.clock import TZ, FixedClock, SystemClock
from web.settings import Settings, build_district
from tests.conftest import TEST_SECRET
from tests.factories import book_for, make_resident, make_site, make_slot
from tests.realserver import Server, seed, shot
from tests.staff_helpers import PASSWORD, make_staff

pytestmark = pytest.mark.browser
playwright_api = pytest.importorskip("playwright.sync_api")


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    url = f"sqlite://{tmp_path_factory.mktemp('staff')}/staff.sqlite3"
    today = SystemClock().today()
    opening = dt.datetime.combine(today, dt.time(7, 0), TZ)
    district = build_district(Settings(database_url=url, secret_key=TEST_SECRET),
                              clock=FixedClock(opening))

    async def build():
        home = await make_site("TH01", "五山街", name="五山街社区卫生服务中心", address="天河区五山路71号")
        other = await make_site("TH05", "石牌街", name="石牌街社区卫生服务中心", address="天河区石牌东路9号")
        for offset in (1, 2):
            await make_slot(home, today + dt.timedelta(days=offset), "08:30", "09:30", capacity=20)
            await make_slot(home, today + dt.timedelta(days=offset), "14:00", "15:00", capacity=20)
        first = today - dt.timedelta(days=30)
        caller, caller_id = await make_resident(home, first_dose=first, name="王小明",
                                                phone="13712345678", born=dt.date(1950, 2, 3))
        # Two people booked for today: one at this site, one at another.
        here_slot = await make_slot(home, today, "23:00", "23:30", capacity=5)
        there_slot = await make_slot(other, today, "23:00", "23:30", capacity=5)
        arrivals = []
        for slot, phone in ((here_slot, "13700000001"), (there_slot, "13700000002")):
            resident, _ = await make_resident(home, first_dose=first, name="李大华", phone=phone)
            booking = await book_for(district, resident, slot)
            arrivals.append(booking.code)
        await make_staff("callcentre", "agent1")
        await make_staff("site", "door1", site_code="TH01")
        return {"caller_id": caller_id, "here": arrivals[0], "there": arrivals[1]}

    data = seed(url, build)
    server = Server(url, TEST_SECRET)
    yield {**data, "base": server.base_url}
    server.stop()


def tab_to(page, selector: str, limit: int = 60) -> None:
    """Press Tab until the focused element matches `selector`, as a keyboard user would."""
    for _ in range(limit):
        if page.evaluate("s => document.activeElement && document.activeElement.matches(s)", selector):
            return
        page.keyboard.press("Tab")
    raise AssertionError(f"Tab never reached {selector}")


def sign_in(page, base: str, username: str) -> None:
    page.goto(f"{base}/staff")
    playwright_api.expect(page.locator("#username")).to_be_focused()  # autofocus
    page.keyboard.type(username)
    page.keyboard.press("Tab")
    page.keyboard.type(PASSWORD)
    page.keyboard.press("Enter")


def test_an_agent_books_for_a_caller_with_the_keyboard_alone(world, browser):
    context = browser.new_context(viewport={"width": 1280, "height": 900}, locale="zh-CN")
    page = context.new_page()
    expect = playwright_api.expect
    sign_in(page, world["base"], "agent1")
    page.wait_for_url("**/staff/calls")
    expect(page.locator("#q")).to_be_focused()
    page.keyboard.type(world["caller_id"])
    page.keyboard.press("Enter")
    expect(page.locator("main")).to_contain_text("王*明")
    shot(page, "staff-calls-search")
    tab_to(page, "a[href^='/staff/calls/resident']")
    page.keyboard.press("Enter")
    page.wait_for_url("**/staff/calls/resident*")
    expect(page.locator("main")).to_contain_text("五山街社区卫生服务中心")
    shot(page, "staff-calls-card")

    expect(page.get_by_role("link", name="为来电人预约")).to_be_focused()  # autofocus
    page.keyboard.press("Enter")
    page.wait_for_url("**/staff/calls/book*")
    tab_to(page, "input[name=slot]:not([disabled])")
    page.keyboard.press("Space")
    page.keyboard.press("Enter")
    page.wait_for_url("**/staff/calls/check*")
    expect(page.get_by_role("button", name="确认预约")).to_be_focused()  # autofocus
    page.keyboard.press("Enter")
    page.wait_for_url("**/staff/calls/done*")
    expect(page.locator("h1")).to_have_text("预约成功")
    body = page.locator("main").inner_text()
    assert "字母" in body and "五山路71号" in body and "家属陪同" in body
    assert "137****5678" in body
    shot(page, "staff-calls-readout")
    context.close()


def test_a_site_worker_checks_people_in_with_the_keyboard_alone(world, browser):
    context = browser.new_context(viewport={"width": 1280, "height": 900}, locale="zh-CN")
    page = context.new_page()
    expect = playwright_api.expect
    sign_in(page, world["base"], "door1")
    page.wait_for_url("**/staff/site")
    expect(page.locator("#q")).to_be_focused()
    page.keyboard.type(world["there"].lower())  # booked at another site: not named (issue 21)
    page.keyboard.press("Enter")
    expect(page.locator(".refusal")).to_contain_text("本接种点今天没有这个预约")
    expect(page.locator(".refusal")).not_to_contain_text("石牌街社区卫生服务中心")
    shot(page, "staff-site-refusal")

    page.keyboard.press("Control+A")
    page.keyboard.type(format_code(world["here"]))
    page.keyboard.press("Enter")
    expect(page.get_by_role("button", name="签到并登记接种")).to_be_focused()
    page.keyboard.press("Enter")
    expect(page.locator("main")).to_contain_text(f"已签到并登记第二剂接种：李*华，预约码{format_code(world['here'])}")
    shot(page, "staff-site-checked-in")
    context.close()
