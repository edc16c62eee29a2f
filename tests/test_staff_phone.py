"""The staff consoles on a 360 x 640 phone (issue 13): site check-in at the door, the call centre.

Every page of both consoles: no sideways scroll, every interactive element at least 44 px tall,
codes and dates that do not break; the look-up field and the check-in button in the first screen;
a refusal after a check-in replaces the green notice; the masked ID once in a refusal; a pasted
number starts the call-centre search."""
from __future__ import annotations

import datetime as dt

import pytest

from models.booking_codes import format_code
from models.clock import SystemClock
from web.settings import Settings, build_district
from tests.conftest import TEST_SECRET
from tests.factories import book_for, make_resident, make_site, make_slot
from tests.realserver import Server, seed, shot
from tests.staff_helpers import make_staff
from tests.test_browser_staff import sign_in

pytestmark = pytest.mark.browser
playwright_api = pytest.importorskip("playwright.sync_api")

PHONE = {"width": 360, "height": 640}

# Interactive elements and their height: a radio's target is its whole card (.choice).
MEASURE = """() => {
  var out = {width: document.documentElement.scrollWidth, small: []};
  var els = document.querySelectorAll('a[href], button, input:not([type=hidden]), select, textarea, summary');
  for (var i = 0; i < els.length; i++) {
    var el = els[i], cs = getComputedStyle(el);
    if (cs.display === 'none' || cs.visibility === 'hidden' || el.closest('.visually-hidden, [hidden]')) continue;
    var box = el;
    if ((el.type === 'radio' || el.type === 'checkbox') && el.closest('.choice')) box = el.closest('.choice');
    var r = box.getBoundingClientRect();
    if (r.width === 0 && r.height === 0) continue;
    if (r.height < 43.5) out.small.push(el.outerHTML.slice(0, 120) + ' ' + Math.round(r.height) + 'px');
  }
  return out;
}"""

# Things that must stay on one line: booking codes, the date in a heading, masked names.
UNBROKEN = """() => {
  var bad = [];
  var els = document.querySelectorAll('.mono, .code, h1 .date, .name-cell, .calls-name');
  for (var i = 0; i < els.length; i++) {
    var el = els[i];
    if (!el.textContent.trim()) continue;
    var lines = {}, walk = document.createTreeWalker(el, NodeFilter.SHOW_TEXT, null, false), node;
    while ((node = walk.nextNode())) {
      if (!node.textContent.trim()) continue;
      var range = document.createRange(); range.selectNodeContents(node);
      var rs = range.getClientRects();
      for (var j = 0; j < rs.length; j++) { if (rs[j].width > 0) lines[Math.round(rs[j].bottom)] = 1; }
    }
    if (Object.keys(lines).length > 1) bad.push(el.outerHTML.slice(0, 120));
  }
  return bad;
}"""


def check_phone_page(page, what: str) -> None:
    page.wait_for_load_state("load")
    found = page.evaluate(MEASURE)
    wide = page.evaluate("""w => [...document.querySelectorAll('body *')].filter(e => e.getBoundingClientRect().right > w + 1).slice(0, 5).map(e => e.tagName + '.' + e.className + ' ' + Math.round(e.getBoundingClientRect().right))""", PHONE["width"])
    assert found["width"] <= PHONE["width"], f"{what}: {found['width']} px wide at 360 px: {wide}"
    assert not found["small"], f"{what}: targets under 44 px: {found['small']}"
    broken = page.evaluate(UNBROKEN)
    assert not broken, f"{what}: broken across lines: {broken}"


def in_first_screen(page, selector: str) -> bool:
    box = page.locator(selector).first.bounding_box()
    return box is not None and box["y"] >= 0 and box["y"] + box["height"] <= PHONE["height"]


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    url = f"sqlite://{tmp_path_factory.mktemp('staffphone')}/staff.sqlite3"
    today = SystemClock().today()
    district = build_district(Settings(database_url=url, secret_key=TEST_SECRET))

    async def build():
        home = await make_site("TH01", "五山街", name="五山街社区卫生服务中心", address="天河区五山路71号")
        other = await make_site("TH05", "石牌街", name="石牌街社区卫生服务中心", address="天河区石牌东路9号")
        # As the demo district: two weeks of five windows at the first-dose site, and ten more
        # sites to choose from (the book button was below all 11 of them, 3,018 px down).
        for offset in range(1, 15):
            for start, end in (("08:30", "09:30"), ("10:30", "11:30"), ("14:00", "15:00"),
                               ("15:00", "16:00"), ("16:00", "17:00")):
                await make_slot(home, today + dt.timedelta(days=offset), start, end, capacity=20)
        for n, area in enumerate(("员村街", "天河南街", "林和街", "棠下街", "沙河街", "珠吉街",
                                  "车陂街", "龙洞街", "猎德街"), start=20):
            await make_slot(await make_site(f"TH{n}", area), today + dt.timedelta(days=2), capacity=9)
        first = today - dt.timedelta(days=30)
        _, caller_id = await make_resident(home, first_dose=first, name="欧阳娜娜", phone="13712345678",
                                           born=dt.date(1950, 2, 3))
        booked, _ = await make_resident(home, first_dose=first, name="司马光明", phone="13712340000")
        await book_for(district, booked, await make_slot(home, today + dt.timedelta(days=4), "10:00", "11:00"))
        here_slot = await make_slot(home, today, "23:00", "23:30", capacity=9)
        there_slot = await make_slot(other, today, "23:00", "23:30", capacity=9)
        codes, ids = [], []
        for slot, phone, name in ((here_slot, "13700000001", "李大华"), (here_slot, "13700000003", "诸葛孔明亮"),
                                  (there_slot, "13700000002", "李二华"), (here_slot, "13700000004", "王五")):
            resident, number = await make_resident(home, first_dose=first, name=name, phone=phone)
            booking = await book_for(district, resident, slot)
            codes.append(booking.code)
            ids.append(number)
        await make_staff("callcentre", "agent1")
        await make_staff("site", "door1", site_code="TH01")
        await make_staff("admin", "boss1")
        return {"caller_id": caller_id, "booked_phone": "13712340000", "here": codes[0], "here2": codes[1],
                "there_id": ids[2], "there": codes[2], "here3": codes[3]}

    data = seed(url, build)
    server = Server(url, TEST_SECRET)
    yield {**data, "base": server.base_url}
    server.stop()


def phone(browser, js: bool = True):
    return browser.new_context(viewport=PHONE, locale="zh-CN", java_script_enabled=js, is_mobile=True,
                               has_touch=True, device_scale_factor=2)


def look_up(page, text: str) -> None:
    page.fill("#q", text)
    page.press("#q", "Enter")


@pytest.mark.parametrize("js", [True, False], ids=["js", "nojs"])
def test_site_check_in_on_a_phone(world, browser, js):
    expect = playwright_api.expect
    context = phone(browser, js)
    page = context.new_page()
    sign_in(page, world["base"], "door1")
    page.wait_for_url("**/staff/site")
    check_phone_page(page, "site home")
    assert in_first_screen(page, "#q"), "the look-up field is below the first screen"

    here, there = (world["here"], world["there"]) if js else (world["here2"], world["there"])
    look_up(page, format_code(here))
    check_in = page.get_by_role("button", name="签到并登记接种")
    expect(check_in).to_be_visible()
    check_phone_page(page, "look-up result")
    page.evaluate("window.scrollTo(0, 0)")
    if js:
        shot(page, "staff-site-phone")
    assert in_first_screen(page, "button:has-text('签到并登记接种')"), "the check-in button is below the first screen"

    check_in.click()
    expect(page.locator("main")).to_contain_text("已签到并登记第二剂接种")
    check_phone_page(page, "checked in")

    # The next person is booked elsewhere, looked up by ID number: the refusal replaces the notice.
    look_up(page, world["there_id"])
    expect(page.locator(".refusal")).to_be_visible()
    expect(page.get_by_text("已签到并登记第二剂接种")).to_have_count(0)
    check_phone_page(page, "refusal")
    refusal = page.locator(".refusal").inner_text()
    masked = refusal.split("查找的是：", 1)[1].split()[0]
    assert "*" in masked and refusal.count(masked) == 1, refusal

    # And a code looked up after a refusal: the refusal goes, the new result shows.
    look_up(page, format_code(world["here3"]))
    expect(page.get_by_role("button", name="签到并登记接种")).to_be_visible()
    expect(page.locator(".refusal")).to_have_count(0)

    page.get_by_role("link", name="结束今天：未到者记为爽约").click()
    page.wait_for_url("**/staff/site/close*")
    check_phone_page(page, "close day")
    context.close()


def test_call_centre_on_a_phone(world, browser):
    expect = playwright_api.expect
    context = phone(browser)
    page = context.new_page()
    sign_in(page, world["base"], "agent1")
    page.wait_for_url("**/staff/calls")
    check_phone_page(page, "calls search")
    assert in_first_screen(page, "#q")

    # A number pasted with the mouse: an input event, no key pressed, no Enter.
    page.fill("#q", world["caller_id"])
    expect(page.locator("#calls-results a")).to_have_count(1, timeout=15000)
    check_phone_page(page, "calls results")

    page.locator("#calls-results a").first.click()
    page.wait_for_url("**/staff/calls/resident*")
    check_phone_page(page, "caller card")
    page.get_by_role("link", name="为来电人预约").click()
    page.wait_for_url("**/staff/calls/book*")
    check_phone_page(page, "book / picker")
    book_url = page.url
    # The way to the action: the first-dose site's days and windows, then the button, within two
    # screens; the other ten sites are one tap away.
    next_top = page.evaluate("""() => { var b = document.querySelector('#calls-picker button[type=submit]');
                                        return b.getBoundingClientRect().top + window.scrollY; }""")
    assert next_top <= 2 * PHONE["height"], f"the book button is {next_top:.0f} px down at 360 px"
    expect(page.locator(".calls-site")).to_contain_text("五山街社区卫生服务中心")
    page.get_by_text("换一个接种点（共11个）").click()
    page.locator("label[for^=site-]", has_text="石牌街社区卫生服务中心").click()
    expect(page.locator(".calls-site")).to_contain_text("石牌街社区卫生服务中心")
    check_phone_page(page, "book / another site")
    page.goto(book_url)
    page.locator("#calls-picker .choice label").first.click()
    page.get_by_role("button", name="下一步：向来电人核对").click()
    page.wait_for_url("**/staff/calls/check*")
    check_phone_page(page, "check")
    page.get_by_role("button", name="确认预约").click()
    page.wait_for_url("**/staff/calls/done*")
    check_phone_page(page, "done")

    page.goto(f"{world['base']}/staff/calls")
    page.fill("#q", world["booked_phone"])
    expect(page.locator("#calls-results a")).to_have_count(1)
    page.locator("#calls-results a").first.click()
    page.wait_for_url("**/staff/calls/resident*")
    check_phone_page(page, "caller card with a booking")
    page.get_by_role("link", name="取消预约").click()
    page.wait_for_url("**/staff/calls/cancel*")
    check_phone_page(page, "cancel")
    page.get_by_role("button", name="确认取消").click()
    expect(page.locator("h1")).to_have_text("预约已取消")
    check_phone_page(page, "cancelled")
    context.close()


def test_pasting_dispatches_only_input(world, browser):
    """The paste event alone (no keyup): a dispatched input event starts the search."""
    expect = playwright_api.expect
    context = phone(browser)
    page = context.new_page()
    sign_in(page, world["base"], "agent1")
    page.wait_for_url("**/staff/calls")
    page.evaluate("""n => { var q = document.getElementById('q'); q.value = n;
                           q.dispatchEvent(new Event('input', {bubbles: true})); }""", world["caller_id"])
    expect(page.locator("#calls-results a")).to_have_count(1, timeout=15000)
    context.close()


def test_an_admin_at_the_door_on_a_phone(world, browser):
    """An admin's header has a dozen links: it wraps, it does not widen the page."""
    context = phone(browser)
    page = context.new_page()
    sign_in(page, world["base"], "boss1")
    page.wait_for_url("**/admin")  # signed in: a goto before this would abort the sign-in
    page.goto(f"{world['base']}/staff/site")
    check_phone_page(page, "admin: choose a site")
    page.goto(f"{world['base']}/staff/site?site=TH01")
    check_phone_page(page, "admin: site home")
    page.goto(f"{world['base']}/staff/calls")
    check_phone_page(page, "admin: calls search")
    context.close()
