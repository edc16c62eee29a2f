"""The waiting list's Done-when, in headless Chromium at 360 px, with JavaScript on and off,
against the real server: a resident whose first-dose site is full joins in one tap; the owner of
a booking there cancels it in their own browser; the offer SMS is in the outbox at once; its link
and one tap on "确认预约" book the place; a third resident going through the journey meanwhile
never sees that window free. Screenshots of the join form, the list page and the offer page
(README: "The waiting list")."""
from __future__ import annotations

import datetime as dt
import re
import sqlite3

import pytest

from models.clock import SystemClock
from models.people.links import issue_link
from tests.conftest import TEST_SECRET, VAULT
from tests.factories import book_for, make_resident, make_site, make_slot
from tests.realserver import Server, seed, shot

pytestmark = pytest.mark.browser
playwright_api = pytest.importorskip("playwright.sync_api")

MODES = ("js", "nojs", "en")  # "en": English, large text (the screenshots' second language)
OFFER_LINK = re.compile(r"https?://\S+/o/[A-Za-z0-9_-]+")
PHONE = {"width": 360, "height": 740}


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    """Per mode, a first-dose site whose one window tomorrow is booked (by `owner`), with two more
    people of that site (`waiting`, `third`); and a far site with room for everyone."""
    path = tmp_path_factory.mktemp("browser") / "waitlist.sqlite3"
    url = f"sqlite://{path}"
    clock = SystemClock()
    today = clock.today()
    tomorrow = today + dt.timedelta(days=1)

    async def build():
        from web.settings import Settings, build_district

        district = build_district(Settings(database_url=url, secret_key=TEST_SECRET), clock=clock)
        far = await make_site("TH03", "龙洞街", name="龙洞街社区卫生服务中心", address="天河区龙洞北路2号")
        await make_slot(far, tomorrow, "09:00", "10:00", capacity=20)
        people = {}
        for n, mode in enumerate(MODES, start=1):
            home = await make_site(f"TH1{n}", "五山街", name=f"五山街社区卫生服务中心{n}号点",
                                   address=f"天河区五山路{n}号")
            slot = await make_slot(home, tomorrow, "14:00", "15:00", capacity=1)
            found = {"slot": slot.id, "site": home.id}
            for key, name in (("owner", "李四华"), ("waiting", "张三明"), ("third", "王五芳")):
                resident, number = await make_resident(
                    home, first_dose=today - dt.timedelta(days=30), name=name,
                    phone=f"1380000{n}{len(found):03d}")
                found[key] = (resident.id, number, await issue_link(resident, now=clock.now()))
                if key == "owner":
                    await book_for(district, resident, slot)
            people[mode] = found
        return people

    people = seed(url, build)
    server = Server(url, TEST_SECRET, QUIET_HOURS="off", RATE_LIMIT_OPEN_LINK="1000/minute",
                    RATE_LIMIT_VERIFY="1000/minute")
    yield {"server": server, "people": people, "db": path, "tomorrow": tomorrow}
    server.stop()


def query(path, sql: str, *args):
    with sqlite3.connect(path) as conn:
        return conn.execute(sql, args).fetchall()


def fits(page) -> None:
    assert page.evaluate("document.documentElement.scrollWidth") <= 360, page.url


def phone(browser, mode: str):
    """A 360 px phone; "en": English and large text, as the cookies keep them."""
    context = browser.new_context(viewport=PHONE, device_scale_factor=1, java_script_enabled=mode != "nojs",
                                  locale="zh-CN")
    if mode == "en":
        context.add_cookies([{"name": "lang", "value": "en", "url": "http://127.0.0.1"},
                             {"name": "text", "value": "large", "url": "http://127.0.0.1"}])
    return context, context.new_page()


def sign_in(page, base: str, person) -> None:
    """Open the personal link and type the ID number."""
    _, number, token = person
    page.goto(f"{base}/b/{token}")
    assert page.url == f"{base}/booking", "the token does not stay in the address bar"
    page.fill("#id_number", number)
    page.locator("main button[type=submit]").first.click()
    page.wait_for_load_state()


@pytest.mark.parametrize("mode", MODES)
def test_a_freed_place_goes_to_the_waiting_resident_in_one_tap_each(world, browser, mode):
    base, db = world["server"].base_url, world["db"]
    people = world["people"][mode]
    expect = playwright_api.expect
    prefix = {"en": "waitlist-en-large", "js": "waitlist-zh"}.get(mode, "")

    # The waiting resident: their first-dose site is full, another has room; one tap joins.
    waiting_context, waiting = phone(browser, mode)
    sign_in(waiting, base, people["waiting"])
    waiting.wait_for_url(f"{base}/booking/site")
    form = waiting.locator("form[action='/booking/waitlist']")
    expect(form).to_be_visible()
    fits(waiting)
    if prefix:
        shot(waiting, f"{prefix}-1-join")
    form.locator("button[type=submit]").click()  # the defaults: this site, any day, any time
    waiting.wait_for_url(f"{base}/booking/waitlist")
    expect(waiting.locator("h1")).to_have_text("You are on the waiting list" if mode == "en" else "您已在候补名单上")
    expect(waiting.locator("main")).to_contain_text("Nobody: you are first" if mode == "en" else "您排在最前面")
    fits(waiting)
    if prefix:
        shot(waiting, f"{prefix}-2-on-list")
    entry = query(db, "SELECT scope, days, part, status FROM waitlist_entry WHERE resident_id = ?",
                  people["waiting"][0])
    assert entry == [("site", "any", "any", "waiting")]

    # The owner cancels their booking at that site, in their own browser.
    owner_context, owner = phone(browser, mode)
    sign_in(owner, base, people["owner"])
    owner.locator("main a[href='/booking/cancel']").click()
    owner.wait_for_url(f"{base}/booking/cancel")
    owner.locator("main form button[type=submit]").click()
    owner.wait_for_url(f"{base}/booking/cancelled")

    # At once: the place is held for the waiting resident and their offer SMS is in the outbox.
    (slot_counts,) = query(db, "SELECT booked, held FROM slot WHERE id = ?", people["slot"])
    assert slot_counts == (0, 1)
    sms = query(db, "SELECT body_cipher, next_attempt_at FROM sms_message WHERE resident_id = ? "
                    "AND kind = 'offer'", people["waiting"][0])
    assert len(sms) == 1 and sms[0][1] is None, "queued to go now"
    link = OFFER_LINK.search(VAULT.decrypt(sms[0][0])).group(0)

    # Meanwhile a third resident of that site goes through the journey: the window is never free.
    third_context, third = phone(browser, mode)
    sign_in(third, base, people["third"])
    third.wait_for_url(f"{base}/booking/site")
    home = third.locator(f"#site-{people['site']}")
    expect(home).to_be_disabled()
    token = third.locator("input[name=csrftoken]").first.get_attribute("value")
    forced = third.request.post(f"{base}/booking/site", form={"csrftoken": token, "site": str(people["site"])})
    assert forced.status == 422, "the held place cannot be chosen"

    # The waiting resident follows the SMS link: the window, until when, confirm.
    waiting.goto(link)
    assert waiting.url == f"{base}/booking/offer", "the offer token does not stay in the address bar"
    main = waiting.locator("main")
    expect(main).to_contain_text("14:00-15:00")
    expect(main).to_contain_text(f"五山街社区卫生服务中心{MODES.index(mode) + 1}号点")
    expect(main).to_contain_text("Held for you until" if mode == "en" else "为您保留到")
    expect(waiting.locator("#id_number")).to_have_count(0)
    fits(waiting)
    if prefix:
        shot(waiting, f"{prefix}-3-offer")
    waiting.locator("button[value=confirm]").click()
    waiting.wait_for_url(f"{base}/booking/done")
    expect(waiting.locator("h1")).to_have_text("Booking confirmed" if mode == "en" else "预约成功")
    fits(waiting)
    booked = query(db, "SELECT channel, slot_id FROM booking WHERE resident_id = ? AND status = 'active'",
                   people["waiting"][0])
    assert booked == [("waitlist", people["slot"])]
    assert query(db, "SELECT booked, held FROM slot WHERE id = ?", people["slot"]) == [(1, 0)]

    # The third resident still finds the site full; the used offer link is a dead link.
    third.reload()
    expect(third.locator(f"#site-{people['site']}")).to_be_disabled()
    dead = waiting.goto(link)
    assert dead.status == 404
    for context in (waiting_context, owner_context, third_context):
        context.close()


def test_server_log_holds_no_offer_token(world):
    log = world["server"].log_path.read_text(errors="replace")
    assert "GET /o/… 303" in log
    for row in query(world["db"], "SELECT body_cipher FROM sms_message WHERE kind = 'offer'"):
        token = OFFER_LINK.search(VAULT.decrypt(row[0])).group(0).rsplit("/", 1)[1]
        assert token not in log
