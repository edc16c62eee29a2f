"""Every resident page at 360 px, in Chinese and English, normal and large text: screenshots, no sideways scroll."""
from __future__ import annotations

import datetime as dt

import pytest

from models.clock import SystemClock
from models.db.tables import RiskArea
from models.people.links import issue_link
from tests.conftest import TEST_SECRET
from tests.factories import make_resident, make_site, make_slot
from tests.realserver import Server, seed, shot

pytestmark = pytest.mark.browser
playwright_api = pytest.importorskip("playwright.sync_api")
VARIANTS = [(lang, size) for lang in ("zh", "en") for size in ("normal", "large")]
REFUSALS = ["too_early", "vaccinated", "restricted", "no_room"]


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    url = f"sqlite://{tmp_path_factory.mktemp('screens')}/screens.sqlite3"
    clock = SystemClock()
    today = clock.today()

    async def build():
        home = await make_site("TH01", "五山街", name="五山街社区卫生服务中心", address="天河区五山路71号")
        await make_site("TH02", "五山街", name="华南理工大学医院接种点", address="天河区五山路381号")
        far = await make_site("TH03", "龙洞街", name="龙洞街社区卫生服务中心", address="天河区龙洞北路2号")
        for offset in (1, 2):
            for site in (home, far):
                await make_slot(site, today + dt.timedelta(days=offset), "08:30", "09:30", capacity=20)
                await make_slot(site, today + dt.timedelta(days=offset), "14:00", "15:00", capacity=20)
        await RiskArea.create(subdistrict="珠吉街")
        people = {}
        for lang, size in VARIANTS:
            r, number = await make_resident(home, first_dose=today - dt.timedelta(days=30),
                                            name="欧阳小明", born=dt.date(1949, 5, 6))
            people[(lang, size)] = (number, await issue_link(r, now=clock.now()))
        cases = {
            "too_early": dict(first_dose=today - dt.timedelta(days=3)),
            "vaccinated": dict(first_dose=today - dt.timedelta(days=40),
                               second_dose_date=today - dt.timedelta(days=5)),
            "restricted": dict(first_dose=today - dt.timedelta(days=30), subdistrict="珠吉街"),
            "no_room": dict(first_dose=today - dt.timedelta(days=16)),  # day 21 is after every slot
        }
        for case, kw in cases.items():
            second = kw.pop("second_dose_date", None)
            r, number = await make_resident(home, name="张三明", **kw)
            if second:
                r.second_dose_date = second
                await r.save()
            people[case] = (number, await issue_link(r, now=clock.now()))
        return people

    people = seed(url, build)
    # Many sign-ins from one address in a minute: lift the per-address limits for this server.
    server = Server(url, TEST_SECRET, RATE_LIMIT_OPEN_LINK="1000/minute", RATE_LIMIT_VERIFY="1000/minute")
    yield {"people": people, "base": server.base_url}
    server.stop()


# Every interactive element: links (inline ones in sentences too), buttons, fields, <summary>, and
# the labels of radios (their .choice card); hidden ones (closed <details>, visually-hidden) aside.
SMALL_TARGETS = """() => [...document.querySelectorAll(
  'a, button, input:not([type=hidden]):not([type=radio]), select, summary, .choice')]
  .filter(el => el.getClientRects().length && el.getBoundingClientRect().width > 1)
  .filter(el => el.getBoundingClientRect().height < 44)
  .map(el => el.outerHTML.slice(0, 80))"""


def fits(page) -> bool:
    return page.evaluate("document.documentElement.scrollWidth <= window.innerWidth")


def at_200_percent_text_fits(page) -> bool:
    page.add_style_tag(content="html{font-size:200%}")
    return fits(page)


@pytest.mark.parametrize("lang,size", VARIANTS)
def test_every_resident_page_in_each_language_and_text_size(world, browser, lang, size):
    base = world["base"]
    context = browser.new_context(viewport={"width": 360, "height": 740}, locale="zh-CN",
                                  bypass_csp=True)
    context.add_cookies([{"name": "lang", "value": lang, "url": base},
                         {"name": "text", "value": size, "url": base}])
    page = context.new_page()
    name = f"screen-{lang}-{size}"
    seen = []

    def capture(step: str) -> None:
        page.wait_for_load_state()
        assert fits(page), f"{step}: wider than the screen"
        assert page.evaluate(SMALL_TARGETS) == [], f"{step}: tap targets under 44 px"
        shot(page, f"{name}-{step}")
        seen.append(step)

    def verify(number: str) -> None:
        page.fill("#id_number", number)
        page.locator("form[action='/booking/verify'] button").click()

    number, token = world["people"][(lang, size)]
    page.goto(f"{base}/")
    capture("00-start")
    page.goto(f"{base}/b/{token}")
    capture("01-verify")
    verify("11010519491231002X")
    page.wait_for_selector(".error-summary")
    capture("02-verify-error")
    verify(number)
    page.wait_for_url("**/booking/site")
    capture("03-site")
    page.locator("button.keep").click()
    page.wait_for_url("**/booking/slot")
    capture("04-slot")
    page.locator("input[name=slot]:not([disabled])").first.check()
    page.locator("form[action='/booking/slot'] button").click()
    page.wait_for_url("**/booking/check")
    capture("05-check")
    page.locator("form[action='/booking/confirm'] button").click()
    page.wait_for_url("**/booking/done")
    capture("06-confirmation")
    page.goto(f"{base}/booking/cancel")
    capture("07-cancel")
    page.locator("form[action='/booking/cancel'] button").click()
    page.wait_for_url("**/booking/cancelled")
    capture("08-cancelled")
    page.goto(f"{base}/b/not-a-real-link")
    capture("09-link-invalid")
    for n, case in enumerate(REFUSALS, 10):
        number, token = world["people"][case]
        page.goto(f"{base}/b/{token}")
        verify(number)
        page.wait_for_url(f"{base}/booking")
        capture(f"{n}-{case.replace('_', '-')}")
    if size == "normal":  # 200% of the normal size (large mode is already 137.5%)
        for step in ("/", "/booking/slot", "/booking"):
            page.goto(base + step)
            assert at_200_percent_text_fits(page), f"{step}: at 200% text the page scrolls sideways"
    assert len(seen) == 14
    context.close()


def test_a_failed_htmx_request_says_so_and_the_link_still_works(world, browser):
    """On a flaky network the day picker's request fails: a retry message, then a plain retry works."""
    base = world["base"]
    number, token = world["people"][("zh", "normal")]
    context = browser.new_context(viewport={"width": 360, "height": 740}, locale="zh-CN")
    page = context.new_page()
    page.goto(f"{base}/b/{token}")
    page.fill("#id_number", number)
    page.locator("form[action='/booking/verify'] button").click()
    page.wait_for_url("**/booking/site")
    page.locator("button.keep").click()
    page.wait_for_url("**/booking/slot")
    page.route("**/booking/slot?day=*", lambda route: route.abort("internetdisconnected"))
    page.locator(".days a").nth(1).click()
    offline = page.locator("#offline")
    playwright_api.expect(offline).to_be_visible()
    playwright_api.expect(offline).to_contain_text("网络不稳定")
    shot(page, "screen-zh-normal-offline")
    page.unroute("**/booking/slot?day=*")
    page.locator(".days a").nth(1).click()
    playwright_api.expect(offline).to_be_hidden()
    playwright_api.expect(page.locator(".days a").nth(1)).to_have_attribute("aria-current", "true")
    context.close()
