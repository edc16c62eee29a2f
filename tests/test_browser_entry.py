"""The public way in, in headless Chromium at 360 px, without JavaScript and in large text, against
the real server: from the start page, through the SMS code (read from the outbox, as the console
backend would print it), to a confirmation for two people who share one phone."""
from __future__ import annotations

import datetime as dt
import json
import sqlite3
from pathlib import Path

import pytest

from tests.conftest import TEST_SECRET, VAULT
from tests.factories import journey_world
from tests.realserver import Server, shot

pytestmark = pytest.mark.browser
playwright_api = pytest.importorskip("playwright.sync_api")

PHONE = "13912345678"
NEIGHBOURS = {"zh": "13800000003", "en": "13800000004"}  # one each: one code a minute per phone
AXE = Path(__file__).resolve().parent.parent / "node_modules" / "axe-core" / "axe.min.js"


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    path = tmp_path_factory.mktemp("browser") / "entry.sqlite3"
    url = f"sqlite://{path}"
    today, people = journey_world(url, {
        "grandma": {"name": "黄桂英", "born": dt.date(1946, 4, 2), "phone": PHONE},
        "son": {"name": "李建国", "born": dt.date(1972, 9, 30), "phone": PHONE},
        "neighbour": {"name": "王五芳", "born": dt.date(1960, 1, 15), "phone": NEIGHBOURS["zh"]},
        "neighbour_en": {"name": "周十全", "born": dt.date(1961, 5, 6), "phone": NEIGHBOURS["en"]},
    })
    server = Server(url, TEST_SECRET)
    yield {"server": server, "people": people, "db": path, "today": today}
    server.stop()


def newest_code(path, phone: str) -> str:
    """The log-in code in the newest SMS to the phone, as the outbox holds it."""
    with sqlite3.connect(path) as conn:
        row = conn.execute("SELECT params_cipher FROM sms_message WHERE template = 'login_code' "
                           "AND phone_hash = ? ORDER BY id DESC LIMIT 1",
                           (VAULT.keyed_hash(phone),)).fetchone()
    assert row, "no log-in code in the outbox"
    return json.loads(VAULT.decrypt(row[0]))["code"]


def active_bookings(path) -> int:
    with sqlite3.connect(path) as conn:
        return conn.execute("SELECT count(*) FROM booking WHERE status = 'active'").fetchone()[0]


def fits(page) -> None:
    assert page.evaluate("document.documentElement.scrollWidth") <= 360, page.url


def test_two_people_on_one_phone_book_from_the_public_page_without_javascript(world, browser):
    base = world["server"].base_url
    context = browser.new_context(viewport={"width": 360, "height": 740}, device_scale_factor=1,
                                  java_script_enabled=False, locale="zh-CN")
    page = context.new_page()
    expect = playwright_api.expect

    page.goto(f"{base}/")
    page.click("text=大字版")
    expect(page.locator("body")).to_have_class("large")
    page.click("text=没有链接？用手机号登录预约")
    page.wait_for_url(f"{base}/entry")
    fits(page)
    shot(page, "entry-01-phone")

    page.fill("#phone", "139 1234 5678")
    page.click("button[type=submit] >> text=获取验证码")
    page.wait_for_url(f"{base}/entry/code")
    expect(page.locator("main")).to_contain_text("139****5678")
    fits(page)
    shot(page, "entry-02-code")

    code = newest_code(world["db"], PHONE)
    page.fill("#code", "000000" if code != "000000" else "111111")
    page.click("button[type=submit] >> text=登录")
    expect(page.locator(".error-summary")).to_contain_text("还可以再试4次")
    page.fill("#code", code)
    page.click("button[type=submit] >> text=登录")
    page.wait_for_url(f"{base}/entry/family")
    expect(page.locator(".person")).to_have_count(2)
    fits(page)
    shot(page, "entry-03-family")

    for key, masked in (("grandma", "黄*英"), ("son", "李*国")):
        number, _ = world["people"][key]
        page.click(f"text=为{masked}预约")
        expect(page.locator("h1")).to_contain_text(masked)
        fits(page)
        if key == "grandma":
            shot(page, "entry-04-id")
        page.fill("#id_number", number)
        page.click("button[type=submit] >> text=确认")
        page.wait_for_url(f"{base}/booking/site")
        page.click("button.keep")  # keep the first-dose site
        page.wait_for_url(f"{base}/booking/slot**")
        page.locator("label", has_text="08:30-09:30").click()
        page.click("text=下一步：核对信息")
        page.wait_for_url(f"{base}/booking/check")
        expect(page.locator("main")).to_contain_text(masked)
        page.click("text=确认预约")
        page.wait_for_url(f"{base}/booking/done")
        expect(page.locator("h1")).to_have_text("预约成功")
        expect(page.locator("main")).to_contain_text(masked)
        fits(page)
        shot(page, f"entry-05-done-{key}")
        page.click("text=为这个手机号的其他人预约")
        page.wait_for_url(f"{base}/entry/family")

    expect(page.locator(".person", has_text="已预约")).to_have_count(2)
    shot(page, "entry-06-family-booked")
    assert active_bookings(world["db"]) == 2
    context.close()


def test_find_my_booking_without_javascript(world, browser):
    base = world["server"].base_url
    with sqlite3.connect(world["db"]) as conn:
        code = conn.execute("SELECT code FROM booking WHERE status = 'active' ORDER BY id LIMIT 1").fetchone()
    if code is None:
        pytest.skip("runs after the family test has booked")
    number, _ = world["people"]["grandma"]
    context = browser.new_context(viewport={"width": 360, "height": 740}, java_script_enabled=False,
                                  locale="zh-CN")
    page = context.new_page()
    page.goto(f"{base}/")
    page.click("text=用预约码和身份证号码查询、改约或取消")
    page.wait_for_url(f"{base}/find")
    page.fill("#booking_code", code[0].lower())
    page.fill("#id_number", number)
    page.click("button[type=submit] >> text=查询")
    page.wait_for_url(f"{base}/booking")
    playwright_api.expect(page.locator("h1")).to_have_text("您的预约")
    fits(page)
    shot(page, "entry-07-found")
    context.close()


@pytest.mark.parametrize("lang", ["zh", "en"])
def test_every_entry_page_passes_axe(world, browser, lang):
    if not AXE.exists():
        pytest.skip("axe-core is installed by `make test` (npm ci)")
    from tests.test_a11y_html import AXE_OPTIONS, HTMX_BUSY, RUN_AXE

    base = world["server"].base_url
    context = browser.new_context(viewport={"width": 360, "height": 740}, locale="zh-CN",
                                  bypass_csp=True)
    context.add_cookies([{"name": "lang", "value": lang, "url": base}])
    page = context.new_page()
    found = {}

    def axe(name):
        page.wait_for_load_state()
        page.wait_for_function(HTMX_BUSY)
        if not page.evaluate("typeof axe !== 'undefined'"):
            page.add_script_tag(path=str(AXE))
        violations = page.evaluate(RUN_AXE, AXE_OPTIONS)
        if violations:
            found[name] = [(v["id"], [n["target"] for n in v["nodes"]]) for v in violations]

    for name, path in (("start", "/"), ("phone", "/entry"), ("find", "/find"), ("poster", "/poster")):
        page.goto(base + path)
        axe(name)
    page.goto(base + "/find")
    page.fill("#booking_code", "ACEF-HJKM")
    page.fill("#id_number", "11010519491231002X")
    page.locator("main form button[type=submit]").click()
    axe("find, not found")
    page.goto(base + "/entry")
    page.fill("#phone", "12")
    page.locator("main form button[type=submit]").click()
    axe("phone, not a number")
    page.fill("#phone", NEIGHBOURS[lang])
    page.locator("main form button[type=submit]").click()
    page.wait_for_url(f"{base}/entry/code**")
    axe("code")
    page.fill("#code", "12")
    page.locator("main form button[type=submit]").first.click()
    axe("code, not 6 digits")
    page.fill("#code", newest_code(world["db"], NEIGHBOURS[lang]))
    page.locator("main form button[type=submit]").first.click()
    page.wait_for_url(f"{base}/entry/family")
    axe("family")
    page.locator(".person a").first.click()
    axe("person")
    page.fill("#id_number", "11010519491231002")
    page.locator("main form button[type=submit]").click()
    axe("person, wrong length")
    context.close()
    assert not found, found


def test_server_log_holds_no_phone_number(world):
    from tests.pii_scan import find_personal_numbers

    log = world["server"].log_path.read_text(errors="replace")
    assert "POST /entry 303" in log
    assert PHONE not in log and find_personal_numbers(log) == []
