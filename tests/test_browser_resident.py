"""Issue 22, the resident's side, in headless Chromium against the real server: /find keeps what
was typed after each error; a move confirms as a move; in English large text, a full first-dose
site leaves the main action in the first two screens and the day tiles show their whole count."""
from __future__ import annotations

import datetime as dt

import pytest

from models.clock import SystemClock
from models.people.links import issue_link
from tests.conftest import TEST_SECRET
from tests.factories import make_resident, make_site, make_slot
from tests.realserver import Server, seed, shot

pytestmark = pytest.mark.browser
playwright_api = pytest.importorskip("playwright.sync_api")

SCREEN = {"width": 360, "height": 640}
# Like the demo: a district's sites, the first-dose site fully booked, one site with a big day.
SUBDISTRICTS = ["五山街", "五山街", "石牌街", "天河南街", "林和街", "沙河街", "员村街", "车陂街",
                "棠下街", "龙洞街", "珠吉街"]


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    path = tmp_path_factory.mktemp("browser") / "resident.sqlite3"
    url = f"sqlite://{path}"
    clock = SystemClock()
    today = clock.today()

    async def build():
        sites = [await make_site(f"TH{n + 1:02d}", sub, name=f"{sub}社区卫生服务中心{n + 1}号接种点",
                                 address=f"天河区{sub}某某路{n + 1}号")
                 for n, sub in enumerate(SUBDISTRICTS)]
        home, big = sites[0], sites[1]
        for offset in range(1, 9):
            day = today + dt.timedelta(days=offset)
            await make_slot(home, day, "09:30", "10:30", capacity=2, booked=2)  # full
            await make_slot(big, day, "08:30", "09:30", capacity=120, booked=7)  # 113 places
            for site in sites[2:]:
                await make_slot(site, day, "09:00", "10:00", capacity=20)
        tokens = {}
        for key in ("full_site", "mover", "looker"):
            resident, number = await make_resident(
                home if key == "full_site" else big, first_dose=today - dt.timedelta(days=30),
                name="张三明", born=dt.date(1980, 3, 9), phone="13812345678")
            tokens[key] = (number, await issue_link(resident, now=clock.now()))
        return tokens

    people = seed(url, build)
    server = Server(url, TEST_SECRET)
    yield {"server": server, "people": people, "today": today}
    server.stop()


def verified(browser, world, key: str, *, js: bool = True, lang: str = "zh", large: bool = False):
    """A 360 px phone through the personal link and the ID check; the page on the site choice."""
    number, token = world["people"][key]
    base = world["server"].base_url
    context = browser.new_context(viewport=SCREEN, device_scale_factor=1, java_script_enabled=js,
                                  locale="zh-CN")
    host = base.split("//")[1].split(":")[0]
    cookies = [{"name": "lang", "value": lang, "domain": host, "path": "/"}]
    if large:
        cookies.append({"name": "text", "value": "large", "domain": host, "path": "/"})
    context.add_cookies(cookies)
    page = context.new_page()
    page.goto(f"{base}/b/{token}")
    page.fill("#id_number", number)
    page.click("main form button[type=submit]")
    page.wait_for_url(f"{base}/booking/site")
    return context, page


@pytest.mark.parametrize("mode", ["js", "nojs"])
def test_find_keeps_the_code_and_the_id_number_after_each_error(world, browser, mode):
    number, _ = world["people"]["mover"]
    base = world["server"].base_url
    context = browser.new_context(viewport=SCREEN, java_script_enabled=(mode == "js"), locale="zh-CN")
    page = context.new_page()
    expect = playwright_api.expect
    page.goto(f"{base}/find")
    page.fill("#booking_code", "TCJK-JH0T")  # a zero: never in a booking code
    page.fill("#id_number", number)
    page.click("main form button[type=submit]")
    expect(page.locator(".error-summary")).to_contain_text("没有字母B、D、G、I、L、O")
    expect(page.locator("#booking_code")).to_have_value("TCJK-JH0T")
    expect(page.locator("#id_number")).to_have_value(number)
    page.fill("#booking_code", "TCJK-JHYT")  # well formed, nobody's
    page.click("main form button[type=submit]")
    expect(page.locator(".error-summary")).to_contain_text("没有找到")
    expect(page.locator("#booking_code")).to_have_value("TCJK-JHYT")
    expect(page.locator("#id_number")).to_have_value(number)
    assert number not in page.url
    shot(page, f"{mode}-find-kept")
    context.close()


def test_a_move_confirms_as_moved_with_the_old_and_the_new_time(world, browser):
    expect = playwright_api.expect
    context, page = verified(browser, world, "mover", js=False)
    page.click("button.keep")
    page.locator("label", has_text="08:30-09:30").click()
    page.click("text=下一步：核对信息")
    page.click("text=确认预约")
    expect(page.locator("h1")).to_have_text("预约成功")
    first_day = page.locator("dt:has-text('日期') + dd").inner_text()
    page.get_by_role("link", name="改约", exact=True).click()
    page.click("button.keep")
    page.locator(".days a").nth(2).click()
    page.locator("label", has_text="08:30-09:30").click()
    page.click("text=下一步：核对信息")
    page.click("text=确认改约")
    expect(page.locator("h1")).to_have_text("改约成功")
    moved = page.locator(".moved").inner_text()
    new_day = page.locator("dt:has-text('日期') + dd").inner_text()
    assert first_day.split()[0] in moved and new_day.split()[0] in moved and "08:30-09:30" in moved
    assert moved.index(first_day.split()[0]) < moved.index(new_day.split()[0])
    shot(page, "nojs-moved-says-moved")
    context.close()


def test_english_large_text_full_first_site_keeps_the_action_in_two_screens(world, browser):
    context, page = verified(browser, world, "full_site", lang="en", large=True)
    action = page.locator("main button[type=submit]").first
    box = action.bounding_box()
    assert box["y"] + box["height"] <= 2 * SCREEN["height"], f"the first button is {box['y']:.0f} px down"
    shot(page, "english-large-full-first-site")
    action.click()
    page.wait_for_url("**/booking/slot")
    context.close()


@pytest.mark.parametrize("large", [True, False], ids=["large", "standard"])
def test_english_day_tiles_show_their_whole_count(world, browser, large):
    expect = playwright_api.expect
    context, page = verified(browser, world, "looker", lang="en", large=large)
    page.click("button.keep")
    page.wait_for_url("**/booking/slot")
    expect(page.locator(".days").first).to_contain_text("113 places")
    clipped = page.evaluate("""[...document.querySelectorAll('.days a, .days a span')]
        .filter(e => e.scrollWidth > e.clientWidth + 1).map(e => e.textContent.trim())""")
    assert clipped == []
    assert page.evaluate("document.documentElement.scrollWidth") <= SCREEN["width"]
    rows = page.evaluate("""[...document.querySelectorAll('.days li')].map(e => e.offsetLeft)""")
    per_row = 4 if large else 7
    assert rows[::per_row] == [rows[0]] * len(rows[::per_row]), "every row starts at the left"
    shot(page, f"english-{'large' if large else 'standard'}-day-tiles")
    context.close()


def test_english_check_page_calls_the_site_a_site(world, browser):
    expect = playwright_api.expect
    context, page = verified(browser, world, "full_site", lang="en")
    page.goto(world["server"].base_url + "/booking/site")
    page.locator("main button[type=submit]").first.click()
    page.locator("input[name=slot]:not([disabled]) + label").first.click()
    page.locator("main form button[type=submit]").last.click()
    page.wait_for_url("**/booking/check")
    expect(page.locator("dl.answers dt").nth(2)).to_have_text("Site")
    context.close()
