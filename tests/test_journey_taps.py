"""The resident journey at 360x640, with JavaScript off and on: taps and screens scrolled, counted.

Taps: every element tapped (the ID field, buttons, links, a window's label). Screens: per page,
ceil(distance scrolled to bring each tapped element fully into view / viewport height), summed over
the journey; the scroll the browser does itself (a #fragment, a focus move) costs the resident
nothing. Run with `pytest -s tests/test_journey_taps.py` to see the figures (README, "Journey").
"""
from __future__ import annotations

import datetime as dt
import math

import pytest

from models.clock import SystemClock
from models.people.links import issue_link
from tests.conftest import TEST_SECRET
from tests.factories import make_resident, make_site, make_slot
from tests.realserver import Server, seed
from tests.test_screens import SMALL_TARGETS

pytestmark = pytest.mark.browser
playwright_api = pytest.importorskip("playwright.sync_api")
W, H = 360, 640
# The first-dose site, then ten other sites in three sub-districts, as in the issue.
OTHERS = [("五山街", "华南理工大学医院接种点"), ("五山街", "华南农业大学医院接种点"),
          ("五山街", "五山路门诊部"), ("石牌街", "石牌街社区卫生服务中心"),
          ("石牌街", "暨南大学医院接种点"), ("石牌街", "天河区妇幼保健院"),
          ("龙洞街", "龙洞街社区卫生服务中心"), ("龙洞街", "广东工业大学医院接种点"),
          ("龙洞街", "龙洞人民医院"), ("龙洞街", "华南师范大学医院接种点")]


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    url = f"sqlite://{tmp_path_factory.mktemp('taps')}/taps.sqlite3"
    clock = SystemClock()
    today = clock.today()

    async def build():
        home = await make_site("TH01", "五山街", name="五山街社区卫生服务中心", address="天河区五山路71号")
        sites = [home]
        for n, (sub, name) in enumerate(OTHERS, 2):
            sites.append(await make_site(f"TH{n:02d}", sub, name=name, address=f"天河区{sub}{n}号"))
        for offset in range(1, 15):  # fourteen days of three windows each
            for site in sites:
                day = today + dt.timedelta(days=offset)
                for start, end in (("08:30", "09:30"), ("09:30", "10:30"), ("14:00", "15:00")):
                    await make_slot(site, day, start, end, capacity=20)
        people = {}
        for mode in ("js", "nojs", "window-js", "window-nojs", "keep"):
            r, number = await make_resident(home, first_dose=today - dt.timedelta(days=30))
            people[mode] = (number, await issue_link(r, now=clock.now()))
        return people

    people = seed(url, build)
    server = Server(url, TEST_SECRET, RATE_LIMIT_OPEN_LINK="1000/minute", RATE_LIMIT_VERIFY="1000/minute")
    yield {"people": people, "base": server.base_url}
    server.stop()


class Meter:
    """Counts taps and screens scrolled; call page_loaded() after each tap that opens a page."""

    def __init__(self, page):
        self.page, self.taps, self.screens, self.distance = page, 0, 0, 0.0

    def page_loaded(self) -> None:
        self.page.wait_for_load_state()
        self.screens += math.ceil(self.distance / H - 1e-9)
        self.distance = 0.0

    def bring_into_view(self, locator) -> None:
        box = locator.bounding_box()  # relative to the viewport
        assert box is not None, "the element to tap is not visible"
        if box["y"] + box["height"] > H:
            delta = box["y"] + box["height"] - H
        elif box["y"] < 0:
            delta = box["y"]
        else:
            delta = 0
        if delta:
            self.page.evaluate("d => window.scrollBy(0, d)", delta)
            self.distance += abs(delta)

    def tap(self, locator, fill: str | None = None) -> None:
        locator = locator.first
        self.bring_into_view(locator)
        self.taps += 1
        if fill is None:
            locator.click()
        else:
            locator.fill(fill)


def page_for(browser, mode):
    context = browser.new_context(viewport={"width": W, "height": H}, device_scale_factor=1,
                                  java_script_enabled=(mode == "js"), locale="zh-CN")
    return context, context.new_page()


def sign_in(world, page, meter, who):
    number, token = world["people"][who]
    page.goto(f"{world['base']}/b/{token}")  # opening the SMS link: not counted
    meter.page_loaded()
    meter.tap(page.locator("#id_number"), fill=number)
    meter.tap(page.locator("form[action='/booking/verify'] button"))
    page.wait_for_url("**/booking/site")
    meter.page_loaded()


def keep_first_site(page, meter):
    """The first action on the site page that keeps the pre-chosen first-dose site."""
    keep = page.locator("button.keep")
    if keep.count() == 0:  # before issue 13: the only button, under every site
        keep = page.locator("form[action='/booking/site'] button[type=submit]")
    meter.tap(keep)
    page.wait_for_url("**/booking/slot")
    meter.page_loaded()


def choose_second_day(page, meter, mode):
    meter.tap(page.locator(".days a").nth(1))
    page.wait_for_url("**/booking/slot?day=*")
    if mode == "js":
        # the picker swapped in: polled by Playwright's own matcher (the page's CSP forbids eval)
        playwright_api.expect(page.locator(".days a").nth(1)).to_have_attribute("aria-current", "true")
    else:
        meter.page_loaded()


@pytest.mark.parametrize("mode", ["nojs", "js"])
def test_taps_and_screens_for_the_whole_journey(world, browser, mode):
    context, page = page_for(browser, mode)
    meter = Meter(page)
    sign_in(world, page, meter, mode)
    keep_first_site(page, meter)
    choose_second_day(page, meter, mode)
    meter.tap(page.locator("input[name=slot]:not([disabled]) + label"))
    meter.tap(page.locator("form[action='/booking/slot'] button[type=submit]"))
    page.wait_for_url("**/booking/check")
    meter.page_loaded()
    meter.tap(page.locator("form[action='/booking/confirm'] button"))
    page.wait_for_url("**/booking/done")
    meter.page_loaded()
    playwright_api.expect(page.locator("h1")).to_have_text("预约成功")
    print(f"\nJOURNEY {mode}: {meter.taps} taps, {meter.screens} screens scrolled")
    context.close()


def test_keeping_the_first_dose_site_is_one_tap_from_the_site_page(world, browser):
    context, page = page_for(browser, "nojs")
    meter = Meter(page)
    sign_in(world, page, meter, "keep")
    before = meter.taps
    keep = page.locator("button.keep")
    playwright_api.expect(keep).to_contain_text("五山街社区卫生服务中心")
    box = keep.bounding_box()
    assert box["y"] + box["height"] <= H, "the keep button is in the first screen"
    keep_first_site(page, meter)
    assert meter.taps - before == 1 and meter.screens == 0
    assert "五山街社区卫生服务中心" in page.locator("main p").first.inner_text()
    # The other sites: one tap away, grouped by sub-district, in a <details> that works without JS.
    page.go_back()
    page.wait_for_url("**/booking/site")
    playwright_api.expect(page.locator(".other-sites input[name=site]").first).to_be_hidden()
    page.locator(".other-sites summary").click()
    playwright_api.expect(page.locator(".other-sites input[name=site]")).to_have_count(len(OTHERS))
    playwright_api.expect(page.locator(".other-sites h2.group")).to_have_count(3)
    assert page.evaluate(SMALL_TARGETS) == []
    context.close()


@pytest.mark.parametrize("mode", ["nojs", "js"])
def test_after_choosing_a_day_its_first_window_is_in_the_first_screen(world, browser, mode):
    context, page = page_for(browser, mode)
    meter = Meter(page)
    sign_in(world, page, meter, f"window-{mode}")
    keep_first_site(page, meter)
    assert page.locator(".days a").count() == 14
    row = page.evaluate("[...document.querySelectorAll('.days a')].slice(0, 7).map(a => a.getBoundingClientRect().top)")
    assert len(set(row)) == 1, "a week of days on one row: no ragged grid"
    choose_second_day(page, meter, mode)
    first = page.locator("input[name=slot]:not([disabled]) + label").first
    if mode == "js":  # htmx swapped the picker, then moved focus (and the view) to the windows
        playwright_api.expect(page.locator("#windows")).to_be_focused()  # polls without eval (CSP)
    box = first.bounding_box()
    assert box["y"] >= 0 and box["y"] + box["height"] <= H, box
    if mode == "js":
        assert page.evaluate("document.activeElement.id") == "windows"
    else:
        assert page.url.endswith("#windows")
    assert page.evaluate(SMALL_TARGETS) == []
    context.close()


def test_check_page_change_links_sit_on_the_line_of_their_values(world, browser):
    context, page = page_for(browser, "nojs")
    meter = Meter(page)
    sign_in(world, page, meter, "keep")
    keep_first_site(page, meter)
    page.locator("input[name=slot]:not([disabled]) + label").first.click()
    page.locator("form[action='/booking/slot'] button[type=submit]").click()
    page.wait_for_url("**/booking/check")
    offsets = page.evaluate("""() => [...document.querySelectorAll('.answers dd.change')].map(c => {
        const line = el => { const r = document.createRange(); r.selectNodeContents(el); return r.getClientRects()[0].bottom; };
        return Math.abs(line(c.previousElementSibling.firstChild) - line(c.querySelector('a').firstChild)); })""")
    assert len(offsets) == 3 and max(offsets) <= 3, offsets
    assert page.evaluate(SMALL_TARGETS) == []
    context.close()
