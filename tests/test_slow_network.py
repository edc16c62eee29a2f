"""The resident journey on a slow network and a slow phone: how long each step takes, how many bytes.

Headless Chromium at 360 px with JavaScript on, throttled through the DevTools protocol: 400 ms of
latency, 400 kbit/s down and up, the CPU slowed 4x. A measurement, not a budget: it asserts that the
journey completes and stays on the server's origin, and writes the seconds per step and the bytes
transferred to test-artifacts/slow-network.md (and prints them).
"""
from __future__ import annotations

import datetime as dt
import sqlite3
import time
from urllib.parse import urlsplit

import pytest

from tests.conftest import TEST_SECRET
from tests.factories import journey_world
from tests.realserver import ROOT, Server

pytestmark = [pytest.mark.browser, pytest.mark.slow, pytest.mark.serial]  # it measures: alone
pytest.importorskip("playwright.sync_api")

NETWORK = {"offline": False, "latency": 400, "downloadThroughput": 50_000, "uploadThroughput": 50_000}
CPU_SLOWDOWN = 4
STEP_TIMEOUT_MS = 30_000  # generous: this measures, it does not judge
REPORT = ROOT / "test-artifacts" / "slow-network.md"


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    path = tmp_path_factory.mktemp("slow") / "slow.sqlite3"
    url = f"sqlite://{path}"
    today, people = journey_world(url, {"resident": {}})
    number, token = people["resident"]
    server = Server(url, TEST_SECRET)
    yield {"server": server, "number": number, "token": token, "db": path, "today": today}
    server.stop()


class Wire:
    """Counts what crosses the (emulated) network, from the DevTools protocol's own events."""

    def __init__(self, cdp):
        self.urls: dict[str, str] = {}      # requestId -> last URL (redirects keep the id)
        self.requests: list[str] = []       # every URL asked for, redirect hops included
        self.bytes: dict[str, int] = {}     # requestId -> encodedDataLength (headers + body, as received)
        self.redirects: list[int] = []      # the 303s' own bytes (reported with the next hop)
        self.failed: list[str] = []
        cdp.on("Network.requestWillBeSent", self._sent)
        cdp.on("Network.loadingFinished", self._finished)
        cdp.on("Network.loadingFailed", self._failed)

    def _sent(self, e):
        if "redirectResponse" in e:
            self.redirects.append(int(e["redirectResponse"].get("encodedDataLength", 0)))
        self.urls[e["requestId"]] = e["request"]["url"]
        self.requests.append(e["request"]["url"])

    def _finished(self, e):
        self.bytes[e["requestId"]] = int(e["encodedDataLength"])

    def _failed(self, e):
        self.failed.append(f"{self.urls.get(e['requestId'], '?')}: {e.get('errorText')}")

    @property
    def total(self) -> int:
        return sum(self.bytes.values()) + sum(self.redirects)


def test_the_journey_on_a_slow_network_and_a_slow_phone(world, browser, capsys):
    base = world["server"].base_url
    context = browser.new_context(viewport={"width": 360, "height": 740}, device_scale_factor=1,
                                  java_script_enabled=True, locale="zh-CN")
    page = context.new_page()
    page.set_default_timeout(STEP_TIMEOUT_MS)
    cdp = context.new_cdp_session(page)
    cdp.send("Network.enable")
    cdp.send("Network.emulateNetworkConditions", NETWORK)
    cdp.send("Emulation.setCPUThrottlingRate", {"rate": CPU_SLOWDOWN})
    wire = Wire(cdp)
    finished = []  # Playwright's view of the same requests; their sizes are read at the end
    page.on("requestfinished", lambda request: finished.append(request))

    steps: list[tuple[str, float]] = []

    def step(name: str, act, heading: str, path: str) -> None:
        """Time from the action to the next page's heading being visible (rAF-polled, not 100 ms+)."""
        started = time.monotonic()
        act()
        page.locator("h1", has_text=heading).wait_for(state="visible")
        steps.append((name, time.monotonic() - started))
        assert urlsplit(page.url).path == path, f"{name}: ended on {page.url}"

    step("open the link (empty cache)", lambda: page.goto(f"{base}/b/{world['token']}"), "张*明", "/booking")
    page.fill("#id_number", world["number"])
    step("ID number → site", lambda: page.click("button[type=submit] >> text=确认"),
         "选择接种点", "/booking/site")
    page.locator("button.keep").wait_for(state="attached")
    step("site → day and time", lambda: page.click("button.keep"),  # keep the first-dose site
         "选择日期和时间", "/booking/slot")

    # Another day: htmx swaps only the picker (no new heading), so wait for the new current day.
    second_day = (world["today"] + dt.timedelta(days=2)).isoformat()
    started = time.monotonic()
    page.locator(".days a").nth(1).click()
    page.locator(f'.days a[aria-current=true][href^="/booking/slot?day={second_day}"]').wait_for()
    steps.append(("another day (htmx swap)", time.monotonic() - started))

    page.locator("label", has_text="14:00-15:00").click()
    step("time → check your answers", lambda: page.click("text=下一步：核对信息"),
         "核对预约信息", "/booking/check")
    step("confirm → confirmation", lambda: page.click("text=确认预约"), "预约成功", "/booking/done")
    code = page.locator(".code").inner_text()
    assert len(code.replace("-", "")) == 8
    page.wait_for_load_state("networkidle")  # the last responses' loadingFinished events
    bodies = [(req.url, req.sizes()["responseBodySize"]) for req in finished]  # encoded, as sent
    context.close()

    with sqlite3.connect(world["db"]) as conn:
        assert conn.execute("SELECT count(*) FROM booking WHERE status = 'active'").fetchone()[0] == 1

    origin = urlsplit(base)[:2]
    strangers = [u for u in wire.requests + [u for u, _ in bodies]
                 if not u.startswith(("data:", "blob:")) and urlsplit(u)[:2] != origin]
    assert strangers == [], f"requests to another origin than the server: {strangers}"
    assert wire.failed == [], wire.failed
    assert wire.total > 0

    text = report(steps, wire, bodies)
    REPORT.parent.mkdir(exist_ok=True)
    REPORT.write_text(text, encoding="utf-8")
    with capsys.disabled():
        print("\n" + text)


def report(steps, wire: Wire, bodies) -> str:
    total_time = sum(s for _, s in steps)
    body_bytes = sum(max(n, 0) for _, n in bodies)
    by_kind: dict[str, list[int]] = {}
    for request_id, n in wire.bytes.items():
        path = urlsplit(wire.urls.get(request_id, "")).path
        if path.startswith("/static/") or path == "/favicon.ico":
            kind = path.rsplit("/", 1)[-1]
        else:
            kind = "pages and fragments"
        by_kind.setdefault(kind, []).append(n)
    lines = [
        "# The resident journey on a slow network",
        "",
        f"`tests/test_slow_network.py`, {dt.datetime.now().isoformat(timespec='minutes')}: headless "
        "Chromium at 360 px, JavaScript on, an empty cache at the start; network throttled through "
        f"CDP to {NETWORK['latency']} ms latency and {NETWORK['downloadThroughput'] * 8 // 1000} kbit/s "
        f"down and up, CPU slowed {CPU_SLOWDOWN}×. Each step runs from the click (or `goto`) to the "
        "next page's heading being visible; typing and choosing are not counted.",
        "",
        "| step | seconds |",
        "|---|---:|",
        *(f"| {name} | {seconds:.2f} |" for name, seconds in steps),
        f"| **whole journey** | **{total_time:.2f}** |",
        "",
        f"Transferred over the whole journey: **{wire.total:,} bytes** ({wire.total / 1024:.1f} KiB) "
        f"on the wire in {len(wire.bytes)} responses and {len(wire.redirects)} redirects (CDP "
        "`Network.loadingFinished` `encodedDataLength`, headers included, plus each 303's "
        "`redirectResponse.encodedDataLength`); "
        f"response bodies alone {body_bytes:,} bytes (Playwright `request.sizes()`).",
        "",
        "| what | responses | bytes on the wire |",
        "|---|---:|---:|",
        *(f"| {kind} | {len(ns)} | {sum(ns):,} |" for kind, ns in sorted(by_kind.items())),
        f"| 303 redirects (headers only) | {len(wire.redirects)} | {sum(wire.redirects):,} |",
        "",
        "Requests in order: " + ", ".join(f"`{urlsplit(u).path}`" for u in wire.requests
                                          if not urlsplit(u).path.startswith("/b/")) + ".",
    ]
    return "\n".join(lines) + "\n"
