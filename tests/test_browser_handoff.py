"""The city platform's hand-off in headless Chromium at 360 px without JavaScript, against the real
server: the platform's signed request (made here as a partner makes it) answers a one-time
address; the browser follows it straight to the site choice and on to a confirmation; the same
address a second time is a dead link."""
from __future__ import annotations

import datetime as dt
import hashlib
import hmac
import json
import secrets
import sqlite3
import time
import urllib.request

import pytest

from tests.conftest import TEST_SECRET
from tests.factories import journey_world
from tests.realserver import Server, shot

pytestmark = pytest.mark.browser
playwright_api = pytest.importorskip("playwright.sync_api")

SECRET = "jkt-browser-secret-0123456789"


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    path = tmp_path_factory.mktemp("browser") / "handoff.sqlite3"
    url = f"sqlite://{path}"
    today, people = journey_world(url, {"handed": {"name": "李建国", "born": dt.date(1972, 9, 30)}})
    server = Server(url, TEST_SECRET, HANDOFF_PARTNERS=f"jkt:{SECRET}")
    yield {"server": server, "people": people, "db": path, "today": today}
    server.stop()


def hand_off(base: str, id_number: str) -> dict:
    """POST /api/handoff as the platform does: HMAC-SHA256 over method, path, time, nonce, body."""
    body = json.dumps({"id_number": id_number}).encode()
    timestamp, nonce = str(int(time.time())), secrets.token_hex(16)
    message = "\n".join(["POST", "/api/handoff", timestamp, nonce, hashlib.sha256(body).hexdigest()])
    request = urllib.request.Request(f"{base}/api/handoff", data=body, method="POST", headers={
        "Content-Type": "application/json", "X-Partner": "jkt", "X-Timestamp": timestamp,
        "X-Nonce": nonce,
        "X-Signature": hmac.new(SECRET.encode(), message.encode(), hashlib.sha256).hexdigest()})
    with urllib.request.urlopen(request, timeout=10) as response:
        return json.loads(response.read())


def booking_channel(path) -> list[str]:
    with sqlite3.connect(path) as conn:
        return [row[0] for row in conn.execute("SELECT channel FROM booking WHERE status = 'active'")]


def fits(page) -> None:
    assert page.evaluate("document.documentElement.scrollWidth") <= 360, page.url


def test_the_platform_hands_a_resident_over_to_a_confirmation_without_javascript(world, browser):
    base = world["server"].base_url
    number, _ = world["people"]["handed"]
    answer = hand_off(base, number)
    assert answer["can_book"] is True and answer["url"].startswith(f"{base}/h/")

    context = browser.new_context(viewport={"width": 360, "height": 740}, device_scale_factor=1,
                                  java_script_enabled=False, locale="zh-CN")
    page = context.new_page()
    expect = playwright_api.expect

    page.goto(answer["url"])
    assert page.url == f"{base}/booking/site", "no ID check, and the token leaves the address bar"
    expect(page.locator("button.keep")).to_contain_text("五山街社区卫生服务中心")
    fits(page)
    shot(page, "handoff-01-site")
    page.click("button.keep")
    page.wait_for_url(f"{base}/booking/slot**")
    page.locator("label", has_text="08:30-09:30").click()
    page.click("text=下一步：核对信息")
    page.wait_for_url(f"{base}/booking/check")
    expect(page.locator("main")).to_contain_text("李*国")
    page.click("text=确认预约")
    page.wait_for_url(f"{base}/booking/done")
    expect(page.locator("h1")).to_have_text("预约成功")
    assert len(page.locator(".code").inner_text().replace("-", "")) == 8
    fits(page)
    shot(page, "handoff-02-confirmation")
    assert booking_channel(world["db"]) == ["handoff"]

    again = browser.new_context(viewport={"width": 360, "height": 740}, java_script_enabled=False,
                                locale="zh-CN").new_page()
    response = again.goto(answer["url"])
    assert response.status == 404
    expect(again.locator("h1")).to_have_text("链接无效或已过期")
    again.click("text=没有链接？用手机号登录预约")
    again.wait_for_url(f"{base}/entry")
    context.close()
