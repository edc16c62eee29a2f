"""Accessibility (axe-core) and HTML validity (the Nu HTML checker) of every page, on the real server.

Residents' pages are walked at 360 px three times (standard, large text, English), staff consoles at
1280 px, all in headless Chromium with JavaScript on, as people use them. axe runs in each page as it
stands (htmx swaps included) with the WCAG 2.0/2.1 A and AA, WCAG 2.2 AA (target size) and best-practice
rules; every HTML response the browser received (pages and htmx fragments) is kept and validated once,
at the end, by vnu.jar (`--errors-only`). Tools come from package.json (`make test` runs `npm ci`)."""
from __future__ import annotations

import datetime as dt
import json
import re
import shutil
import subprocess

import pytest

from models.clock import TZ, FixedClock, SystemClock, as_utc
from models.db.tables import Link, RiskArea
from models.people.links import issue_link
from web.settings import Settings, build_district
from tests.conftest import TEST_SECRET
from tests.factories import book_for, make_resident, make_site, make_slot
from tests.realserver import ROOT, Server, seed
from tests.staff_helpers import PASSWORD, make_staff

pytestmark = pytest.mark.browser
pytest.importorskip("playwright.sync_api")

AXE = ROOT / "node_modules" / "axe-core" / "axe.min.js"
VNU = ROOT / "node_modules" / "vnu-jar" / "build" / "dist" / "vnu.jar"
AXE_OPTIONS = {
    "runOnly": {"type": "tag", "values": ["wcag2a", "wcag2aa", "wcag21a", "wcag21aa", "wcag22aa",
                                         "best-practice"]},
    "resultTypes": ["violations"],
}
RUN_AXE = """async (options) => {
  const result = await axe.run(document, options);
  return result.violations.map(v => ({id: v.id, impact: v.impact, help: v.help,
    nodes: v.nodes.map(n => ({target: n.target.join(' '), summary: n.failureSummary}))}));
}"""
HTMX_BUSY = "!document.querySelector('.htmx-request,.htmx-settling,.htmx-swapping,.htmx-added')"
PHONE = {"width": 360, "height": 740}
DESK = {"width": 1280, "height": 900}
VARIANTS = {"zh": {}, "large": {"text": "large"}, "en": {"lang": "en"}}


@pytest.fixture(scope="module")
def tools():
    missing = [str(p.relative_to(ROOT)) for p in (AXE, VNU) if not p.exists()]
    assert not missing, f"{missing} missing: `make test` installs them (npm ci)"
    assert shutil.which("java"), "the Nu HTML checker needs Java"


@pytest.fixture(scope="module")
def world(tmp_path_factory, tools):
    url = f"sqlite://{tmp_path_factory.mktemp('a11y')}/a11y.sqlite3"
    clock = SystemClock()
    today = clock.today()
    days = [today + dt.timedelta(days=n) for n in range(1, 5)]
    opening = dt.datetime.combine(today, dt.time(7, 0), TZ)
    district = build_district(Settings(database_url=url, secret_key=TEST_SECRET),
                              clock=FixedClock(opening))

    async def build():
        home = await make_site("TH01", "五山街", name="五山街社区卫生服务中心", address="天河区五山路71号")
        await make_site("TH02", "五山街", name="华南理工大学医院接种点", address="天河区五山路381号")  # no slots
        far = await make_site("TH03", "龙洞街", name="龙洞街社区卫生服务中心", address="天河区龙洞北路2号")
        other = await make_site("TH05", "石牌街", name="石牌街社区卫生服务中心", address="天河区石牌东路9号")
        for day in days:
            if day == days[2]:  # a whole day fully booked
                await make_slot(home, day, "08:30", "09:30", capacity=1, booked=1)
                continue
            await make_slot(home, day, "08:30", "09:30", capacity=20)
            await make_slot(home, day, "09:30", "10:30", capacity=1, booked=1)  # a full window
            await make_slot(home, day, "14:00", "15:00", capacity=20)
            await make_slot(far, day, "09:00", "10:00", capacity=20)
        tokens, numbers = {}, {}

        async def person(key, first_dose, **kw):
            resident, number = await make_resident(home, first_dose=first_dose, **kw)
            tokens[key], numbers[key] = await issue_link(resident, now=clock.now()), number
            return resident

        # One booker per variant: 70 or older and past day 56, so every notice shows up.
        for variant in VARIANTS:
            await person(variant, today - dt.timedelta(days=60), name="张三明", born=dt.date(1948, 3, 9))
        await person("too_early", today - dt.timedelta(days=5), name="王五芳")
        done = await person("vaccinated", today - dt.timedelta(days=40), name="赵六军")
        done.second_dose_date, done.second_dose_site = today - dt.timedelta(days=3), home
        await done.save()
        await RiskArea.create(subdistrict="珠吉街")
        await person("restricted", today - dt.timedelta(days=30), name="刘八妹", subdistrict="珠吉街")
        await person("no_room", today - dt.timedelta(days=15), name="周十全")  # earliest day 6: no slots
        await person("group", today - dt.timedelta(days=30), name="郑小群")  # booked by a group list
        locked = await person("locked", today - dt.timedelta(days=30), name="吴小燕")
        until = as_utc(clock.now()) + dt.timedelta(minutes=30)
        await Link.filter(resident=locked).update(failures=5, locked_until=until)

        # Staff: a caller, two people booked for today (here and at another site).
        first = today - dt.timedelta(days=30)
        _, caller_id = await make_resident(home, first_dose=first, name="王小明", phone="13712345678",
                                           born=dt.date(1950, 2, 3))
        codes = []
        for site, phone in ((home, "13700000001"), (other, "13700000002")):
            slot = await make_slot(site, today, "23:00", "23:30", capacity=5)
            resident, _ = await make_resident(home, first_dose=first, name="李大华", phone=phone)
            booking = await book_for(district, resident, slot)
            codes.append(booking.code)
        await make_staff("callcentre", "agent1")
        await make_staff("site", "door1", site_code="TH01")
        await make_staff("admin", "admin1")
        await make_staff("subdistrict", "wushan1", subdistrict="五山街")
        return {"tokens": tokens, "numbers": numbers, "caller_id": caller_id, "here": codes[0],
                "there": codes[1], "vaccinated_id": done.id}

    data = seed(url, build)
    server = Server(url, TEST_SECRET, RATE_LIMIT_OPEN_LINK="1000/minute", RATE_LIMIT_VERIFY="1000/minute")
    yield {**data, "base": server.base_url}
    server.stop()


@pytest.fixture(scope="module")
def served():
    """Every HTML response the browser got, across the module's tests: (file stem, body, is_page)."""
    return []


class Walk:
    """A browser page that keeps what the server sent and runs axe on each page when asked."""

    def __init__(self, browser, base: str, label: str, served: list, *, viewport, cookies=None):
        self.context = browser.new_context(viewport=viewport, locale="zh-CN", bypass_csp=True)
        if cookies:
            self.context.add_cookies([{"name": k, "value": v, "url": base} for k, v in cookies.items()])
        self.page = self.context.new_page()
        self.base, self.label, self.served = base, label, served
        self.checked: list[str] = []
        self.violations: dict[str, list] = {}
        self.via_htmx = 0  # responses htmx asked for (boosted links and forms, swapped fragments)
        self.page.on("response", self._keep)

    def _keep(self, response) -> None:
        request = response.request
        if request.resource_type not in ("document", "xhr", "fetch") or 300 <= response.status < 400:
            return
        if not response.headers.get("content-type", "").startswith("text/html"):
            return
        self.via_htmx += request.resource_type != "document"
        self.keep(request.method, response.url, response.status, response.text())

    def keep(self, method: str, url: str, status: int, body: str, note: str = "") -> None:
        path = re.sub(r"^https?://[^/]+", "", url).split("?")[0]
        slug = re.sub(r"[^a-z0-9]+", "-", f"{method} {path} {note}".lower()).strip("-")
        is_page = body.lstrip()[:15].lower() == "<!doctype html>"
        stem = f"{self.label}-{len(self.served):03d}-{slug}-{status}{'' if is_page else '-fragment'}"
        self.served.append((stem, body, is_page))

    def goto(self, path: str, status: int = 200):
        response = self.page.goto(self.base + path)
        assert response.status == status, (path, response.status)
        return response

    def settle(self) -> None:
        self.page.wait_for_load_state()
        self.page.wait_for_function(HTMX_BUSY)

    def axe(self, name: str) -> None:
        self.settle()
        if not self.page.evaluate("typeof axe !== 'undefined'"):
            self.page.add_script_tag(path=str(AXE))
        found = self.page.evaluate(RUN_AXE, AXE_OPTIONS)
        self.checked.append(name)
        if found:
            self.violations[name] = found

    def submit(self, form: str = "main form") -> None:
        self.page.locator(f"{form} button[type=submit]").first.click()

    def finish(self) -> None:
        self.context.close()
        lines = []
        for name, found in self.violations.items():
            lines.append(f"\n[{self.label}] {name}")
            for v in found:
                lines.append(f"  {v['id']} ({v['impact']}): {v['help']}")
                for node in v["nodes"]:
                    lines.append(f"    {node['target']}")
                    lines.append("      " + node["summary"].replace("\n", "\n      "))
        if self.violations:
            pytest.fail(f"axe: {len(self.violations)} of {len(self.checked)} pages have violations:"
                        + "\n".join(lines), pytrace=False)


def sign_in(walk: Walk, username: str, password: str = PASSWORD) -> None:
    page = walk.page
    walk.goto("/staff")
    page.fill("#username", username)
    page.fill("#password", password)
    with page.expect_navigation():
        walk.submit()


@pytest.mark.parametrize("variant", list(VARIANTS))
def test_resident_pages_at_360px(world, browser, served, variant):
    walk = Walk(browser, world["base"], variant, served, viewport=PHONE, cookies=VARIANTS[variant])
    page, base = walk.page, world["base"]
    tokens, numbers = world["tokens"], world["numbers"]

    walk.goto("/")
    walk.axe("start")
    walk.goto("/guide")
    walk.axe("second-dose guide")
    walk.goto("/b/NoSuchLinkNoSuchLink00", status=404)
    walk.axe("link invalid")

    # The journey: verify (a typo first), site, slot, check, confirmation, booking, cancel.
    walk.goto(f"/b/{tokens[variant]}")
    walk.axe("verify")
    number = numbers[variant]
    page.fill("#id_number", number[:17] + ("0" if number[17] != "0" else "1"))
    walk.submit()
    page.wait_for_selector(".error-summary")
    walk.axe("verify, wrong check character (422)")
    page.fill("#id_number", number)
    walk.submit()
    page.wait_for_url(f"{base}/booking/site")
    walk.axe("site")
    walk.submit()
    page.wait_for_url(f"{base}/booking/slot")
    page.wait_for_selector("input[name=slot]")
    walk.axe("slot")
    page.locator(".days a").nth(1).click()  # htmx swaps the picker
    page.wait_for_url("**/booking/slot?day=*")
    walk.axe("slot, another day")
    page.locator("input[name=slot]:not([disabled])").first.check()
    walk.submit()
    page.wait_for_url(f"{base}/booking/check")
    walk.axe("check")
    walk.submit()
    page.wait_for_url(f"{base}/booking/done")
    walk.axe("confirmation")
    walk.goto("/booking")
    walk.axe("booking")
    page.locator("main a[href='/booking/site']").click()  # move: the same pages, with notes
    page.wait_for_url(f"{base}/booking/site")
    walk.axe("site, moving")
    walk.submit()
    page.wait_for_url(f"{base}/booking/slot")
    page.locator("input[name=slot]:not([disabled])").last.check()
    walk.submit()
    page.wait_for_url(f"{base}/booking/check")
    walk.axe("check, moving")
    walk.submit()
    page.wait_for_url(f"{base}/booking/done")
    page.locator("main a[href='/booking/cancel']").click()
    page.wait_for_url(f"{base}/booking/cancel")
    walk.axe("cancel")
    walk.submit()
    page.wait_for_url(f"{base}/booking/cancelled")
    walk.axe("cancelled")

    # A form whose page expired (no CSRF token): the plain 403 page.
    with page.expect_navigation():
        page.evaluate("""() => { const f = document.createElement('form');
            f.method = 'post'; f.action = '/booking/cancel'; document.body.append(f);
            HTMLFormElement.prototype.submit.call(f); }""")
    walk.axe("page expired (403)")

    # Locked after too many wrong numbers, and each refusal.
    walk.goto(f"/b/{tokens['locked']}", status=423)
    walk.axe("link locked (423)")
    for kind in ("too_early", "vaccinated", "restricted", "no_room"):
        walk.goto(f"/b/{tokens[kind]}")
        page.fill("#id_number", numbers[kind])
        walk.submit()
        page.wait_for_selector("#id_number", state="detached")
        walk.axe(f"refusal: {kind}")
    join = page.locator("form[action='/booking/waitlist']")  # no room: the waiting list, one tap
    if join.count():  # (the first variant joins; the others find the no_room person on it)
        walk.submit("form[action='/booking/waitlist']")
        page.wait_for_url(f"{base}/booking/waitlist")
    else:
        walk.goto("/booking/waitlist")
    walk.axe("waiting list: on the list")
    assert walk.via_htmx >= 5, "htmx did not boost the links and forms (data-hx-boost)"
    walk.finish()


def test_call_centre_pages_at_1280px(world, browser, served):
    base = world["base"]
    agent = Walk(browser, base, "calls", served, viewport=DESK)
    page = agent.page
    agent.goto("/staff")
    agent.axe("sign-in")
    sign_in(agent, "agent1", "not-the-password")
    agent.axe("sign-in, wrong password (422)")
    page.fill("#password", PASSWORD)
    with page.expect_navigation():
        agent.submit()
    assert page.url == f"{base}/staff/calls"
    agent.axe("call centre: search")
    page.fill("#q", world["caller_id"])
    agent.submit()  # htmx swaps the results in
    page.wait_for_selector("#calls-results table")
    agent.axe("call centre: results")
    token = page.locator("input[name=csrftoken]").first.get_attribute("value")
    response = page.request.post(f"{base}/staff/calls/search",  # the same, without JavaScript
                                 form={"csrftoken": token, "q": world["caller_id"]})
    agent.keep("POST", "/staff/calls/search", response.status, response.text(), "no-js")
    page.locator("a[href^='/staff/calls/resident']").first.click()
    page.wait_for_url("**/staff/calls/resident*")
    agent.axe("call centre: caller card")
    page.locator(".calls-number button").first.click()
    page.wait_for_selector(".calls-full")
    agent.axe("call centre: caller card, number shown")
    page.locator("main a[href^='/staff/calls/book']").click()
    page.wait_for_url("**/staff/calls/book*")
    agent.axe("call centre: booking picker")
    page.locator("#calls-picker .days a").nth(1).click()
    page.wait_for_url("**/staff/calls/book*day=*")
    agent.axe("call centre: booking picker, another day")
    page.locator("input[name=slot]:not([disabled])").first.check()
    agent.submit("#calls-picker form")
    page.wait_for_url("**/staff/calls/check*")
    agent.axe("call centre: check")
    agent.submit()
    page.wait_for_url("**/staff/calls/done*")
    agent.axe("call centre: read-out")
    page.locator("main a[href^='/staff/calls/resident']").click()
    page.wait_for_url("**/staff/calls/resident*")
    agent.axe("call centre: caller card, booked")
    page.locator("main a[href^='/staff/calls/cancel']").click()
    page.wait_for_url("**/staff/calls/cancel?*")
    agent.axe("call centre: cancel")
    agent.submit()
    page.wait_for_url("**/staff/calls/cancelled*")
    agent.axe("call centre: cancelled")
    agent.goto(f"/staff/calls/resident?r={world['vaccinated_id']}")
    agent.axe("call centre: caller card, refusal")
    agent.goto("/staff/calls/resident?r=999999", status=404)
    agent.axe("call centre: no such record (404)")
    agent.goto("/admin", status=403)
    agent.axe("forbidden (403)")
    assert agent.via_htmx >= 3, "htmx did not swap the results, the number, the picker"
    agent.finish()


def test_site_check_in_pages_at_1280px(world, browser, served):
    base = world["base"]
    door = Walk(browser, base, "site", served, viewport=DESK)
    page = door.page
    sign_in(door, "door1")
    assert page.url == f"{base}/staff/site"
    door.axe("check-in")
    page.fill("#q", world["there"])
    door.submit("#lookup form")
    page.wait_for_selector("#refusal")
    door.axe("check-in: refusal")
    token = page.locator("input[name=csrftoken]").first.get_attribute("value")
    response = page.request.post(f"{base}/staff/site/lookup",  # the same, without JavaScript
                                 form={"csrftoken": token, "q": world["there"]})
    door.keep("POST", "/staff/site/lookup", response.status, response.text(), "no-js")
    page.fill("#q", world["here"])
    door.submit("#lookup form")
    page.wait_for_selector(".found")
    door.axe("check-in: found")
    with page.expect_navigation():
        door.submit(".found form")
    door.axe("check-in: checked in")
    door.goto("/staff/site/close")
    door.axe("end of day")
    door.goto("/staff/site?site=TH03", status=403)
    door.axe("another site: outside the area (403)")
    assert door.via_htmx >= 2, "htmx did not swap the look-up panel"
    door.finish()


def test_admin_pages_at_1280px(world, browser, served):
    base = world["base"]
    admin = Walk(browser, base, "admin", served, viewport=DESK)
    sign_in(admin, "admin1")
    assert admin.page.url == f"{base}/admin"
    admin.axe("audit trail")
    admin.goto("/staff/site")
    admin.axe("check-in: choose a site")
    admin.goto("/staff/site?site=NOPE", status=404)
    admin.axe("check-in: unknown site (404)")
    for path, name in (("/admin/reports", "reports: per sub-district"),  # SVG charts beside tables
                       ("/admin/reports/sites", "reports: per site per day"),
                       ("/admin/reports/completion", "reports: completion rate"),
                       ("/admin/reports/channels", "reports: per channel")):
        admin.goto(path)
        admin.axe(name)
    admin.goto("/admin/reports/sites?from_day=2021-13-01&site=x", status=422)
    admin.axe("reports: filters refused (422)")
    admin.finish()


def test_group_booking_pages_at_1280px(world, browser, served):
    base, numbers = world["base"], world["numbers"]
    office = Walk(browser, base, "group", served, viewport=DESK)
    page = office.page
    sign_in(office, "wushan1")
    assert page.url == f"{base}/group"
    office.axe("group: lists")
    page.fill("#name", " ")
    with page.expect_navigation():
        office.submit("form[action='/group/new']")  # no name: the form again, with the problem
    office.axe("group: new list, no name (422)")
    page.fill("#name", "无障碍检查名单")
    page.fill("#text", "\n".join([f"郑小群,{numbers['group']}", f"王五芳,{numbers['too_early']}",
                                   f"刘八妹,{numbers['restricted']}", "查无此人,110101195001010000"]))
    with page.expect_navigation():
        office.submit("form[action='/group/new']")
    office.axe("group: the list, each row's standing")
    page.locator("#pick input[name=w]:not([disabled])").first.check()
    with page.expect_navigation():
        page.locator("#pick button[value=check]").click()  # "查看能约上几人"
    office.axe("group: windows chosen, how many fit")
    with page.expect_navigation():
        page.locator("#act").click()
    assert page.url.endswith("/result")
    office.axe("group: result")
    page.locator("main a", has_text="返回名单").click()
    page.wait_for_url("**/group/*")
    page.locator("#rows a[href*='/move?m=']").click()
    page.wait_for_url("**/move?*")
    office.axe("group: move one person")
    page.goto(page.url.split("/move")[0] + "/cancel")
    office.axe("group: cancel the group")
    with page.expect_navigation():
        office.submit("#cancel")
    office.axe("group: cancelled")
    office.goto("/group/999999", status=404)
    office.axe("group: no such list (404)")
    office.finish()


FRAGMENT_HEAD = ('<!doctype html><html lang="zh-Hans"><head><meta charset="utf-8"><title>fragment</title>'
                 "</head><body>\n")


def test_served_html_is_valid(served, tmp_path):
    """The Nu HTML checker, once, on every page and htmx fragment the walks above received."""
    if not served:
        pytest.skip("run with the walks above: they collect the pages")
    files = []
    for stem, body, is_page in served:
        path = tmp_path / f"{stem}.html"
        # A fragment is checked inside a minimal document: its line numbers are one more.
        path.write_text(body if is_page else FRAGMENT_HEAD + body + "\n</body></html>\n", encoding="utf-8")
        files.append(str(path))
    run = subprocess.run(["java", "-jar", str(VNU), "--errors-only", "--format", "json", *files],
                         capture_output=True, text=True, timeout=120)
    try:
        messages = json.loads(run.stderr or run.stdout or '{"messages": []}')["messages"]
    except ValueError:
        pytest.fail(f"vnu.jar did not run (exit {run.returncode}):\n{run.stderr[-2000:]}", pytrace=False)
    errors = [m for m in messages if m.get("type") == "error" or m.get("subType") == "fatal"]
    report = "\n".join(
        f"{m.get('url', '').rsplit('/', 1)[-1]}:{m.get('lastLine', '?')}: {m.get('message')}\n"
        f"    {m.get('extract', '').strip()}" for m in errors)
    if errors:
        pytest.fail(f"the Nu HTML checker found {len(errors)} errors in {len(files)} files ({tmp_path}):\n"
                    + report, pytrace=False)
    assert run.returncode == 0, run.stderr[-2000:]
