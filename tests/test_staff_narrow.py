"""Every staff page on a 360 px phone (issue 22): signed in as each role, every page that role may
open, with content on it (a group list, an import run with rejects, audit rows, a closing preview
with a target …), is no wider than the screen. A table may scroll inside its own box; the page may
not. A new staff page without an entry in PAGES fails test_every_staff_page_is_measured."""
from __future__ import annotations

import datetime as dt

import pytest
from starlette.routing import Route

from models.clock import SystemClock
from models.db.tables import RiskArea, StaffUser
from models.channels import groups
from models.operations import imports
from tests.conftest import TEST_SECRET, VAULT
from tests.factories import book_for, id_number, make_resident, make_site, make_slot
from tests.realserver import SCREENSHOT_DIR, Server, seed
from tests.staff_helpers import PASSWORD, make_staff
from web.app import ROUTES
from web.settings import Settings, build_district

pytestmark = pytest.mark.browser
playwright_api = pytest.importorskip("playwright.sync_api")

WIDTH = 360
STAFF_PREFIXES = ("/staff", "/group", "/admin")
# Pages by route path: the address to open (filled from the world) and who may open it.
CALLS = {"callcentre", "subdistrict", "clinic", "admin"}
PAGES = {
    "/staff": ("/staff", {"stranger"}),
    "/staff/calls": ("/staff/calls", CALLS),
    "/staff/calls/resident": ("/staff/calls/resident?r={caller}", CALLS),
    "/staff/calls/book": ("/staff/calls/book?r={caller}", CALLS),
    "/staff/calls/check": ("/staff/calls/check?r={booked}&slot={later_slot}", CALLS),
    "/staff/calls/done": ("/staff/calls/done?b={booking}", CALLS),
    "/staff/calls/cancel": ("/staff/calls/cancel?r={booked}", CALLS),
    "/staff/calls/cancelled": ("/staff/calls/cancelled?b={cancelled}", CALLS),
    "/staff/calls/callbacks": ("/staff/calls/callbacks", CALLS),
    "/staff/site": ("/staff/site?site=TH01", {"site", "admin"}),
    "/staff/site/close": ("/staff/site/close?site=TH01", {"site", "admin"}),
    "/staff/site/leftovers": ("/staff/site/leftovers?site=TH01", {"site", "admin"}),
    "/staff/site/leftovers/check": ("/staff/site/leftovers/check?site=TH01&count=3&until=23:55", {"site", "admin"}),
    "/group": ("/group", {"subdistrict", "admin"}),
    "/group/{list_id}": ("/group/{group}", {"subdistrict", "admin"}),
    "/group/{list_id}/move": ("/group/{group}/move", {"subdistrict", "admin"}),
    "/group/{list_id}/cancel": ("/group/{group}/cancel", {"subdistrict", "admin"}),
    "/group/{list_id}/row": ("/group/{group}/row?m={member}", {"subdistrict", "admin"}),
    "/group/{list_id}/result": ("/group/{group}/result", {"subdistrict", "admin"}),
    "/admin": ("/admin", {"admin"}),
    "/admin/sites": ("/admin/sites", {"admin"}),
    "/admin/sites/new": ("/admin/sites/new", {"admin"}),
    "/admin/sites/edit": ("/admin/sites/edit?site={home}", {"admin"}),
    "/admin/sites/template": ("/admin/sites/template?site={home}", {"admin"}),
    "/admin/sites/slots": ("/admin/sites/slots?site={home}", {"admin"}),
    "/admin/closing": ("/admin/closing", {"admin"}),
    "/admin/closing/preview": ("/admin/closing/preview?site={home}&day={day}&reason=停电&to={other}:{day}",
                               {"admin"}),
    "/admin/closing/done": ("/admin/closing/done?site={home}&day={day}&moved=2&cancelled=1&closed=3",
                            {"admin"}),
    "/admin/risk": ("/admin/risk", {"admin"}),
    "/admin/risk/bookings": ("/admin/risk/bookings?a={risk}", {"admin"}),
    "/admin/imports": ("/admin/imports", {"admin"}),
    "/admin/imports/{run_id}": ("/admin/imports/{run}", {"admin"}),
    "/admin/invitations": ("/admin/invitations", {"admin"}),
    "/admin/invitations/progress": ("/admin/invitations/progress?run=none", {"admin"}),
    "/admin/links": ("/admin/links", {"admin"}),
    "/admin/overdue": ("/admin/overdue", {"admin"}),
    "/admin/messages": ("/admin/messages", {"admin"}),
    "/admin/accounts": ("/admin/accounts", {"admin"}),
    "/admin/accounts/account": ("/admin/accounts/account?u={agent}", {"admin"}),
    "/admin/reports": ("/admin/reports", {"admin"}),
    "/admin/reports/sites": ("/admin/reports/sites", {"admin"}),
    "/admin/reports/completion": ("/admin/reports/completion", {"admin"}),
    "/admin/reports/channels": ("/admin/reports/channels", {"admin"}),
    "/admin/reports/waitlist": ("/admin/reports/waitlist", {"admin"}),
}
WHO = {"callcentre": "agent1", "site": "door1", "subdistrict": "wushan1", "clinic": "clinic1",
       "admin": "boss1"}

# The README's staff screenshots at 360 px (`make screenshots`): (role, page) -> file name.
SHOTS = {
    ("callcentre", "/staff/calls/resident"): "staff-phone-1-calls-card",
    ("callcentre", "/staff/calls/book"): "staff-phone-2-calls-book",
    ("site", "/staff/site"): "staff-phone-3-site",
    ("subdistrict", "/group/{list_id}"): "staff-phone-4-group",
    ("admin", "/admin"): "staff-phone-5-audit",
    ("admin", "/admin/closing/preview"): "staff-phone-6-closing",
    ("admin", "/admin/imports/{run_id}"): "staff-phone-7-import",
    ("admin", "/admin/reports"): "staff-phone-8-reports",
    ("callcentre", "/staff/calls/callbacks"): "staff-phone-9-callbacks",
    ("site", "/staff/site/leftovers"): "staff-phone-10-leftovers",
    ("admin", "/admin/reports/waitlist"): "staff-phone-11-waitlist",
}

# The widest elements, to say what overflows.
WIDEST = """w => [...document.querySelectorAll('body *')]
  .filter(e => e.getBoundingClientRect().right > w + 1 && !e.closest('.scroll, [data-scroll]'))
  .slice(0, 3).map(e => e.tagName.toLowerCase() + (e.className ? '.' + String(e.className).split(' ')[0] : '')
                     + ' ' + Math.round(e.getBoundingClientRect().right) + 'px')"""


def test_every_staff_page_is_measured():
    pages = {r.path for r in ROUTES if isinstance(r, Route) and r.path.startswith(STAFF_PREFIXES)
             and "GET" in (r.methods or ()) and not r.path.endswith(".csv")}
    assert pages == set(PAGES), f"add to PAGES: {sorted(pages - set(PAGES))}; gone: {sorted(set(PAGES) - pages)}"


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    folder = tmp_path_factory.mktemp("narrow")
    url = f"sqlite://{folder}/narrow.sqlite3"
    today = SystemClock().today()
    day = today + dt.timedelta(days=3)
    district = build_district(Settings(database_url=url, secret_key=TEST_SECRET))
    doses = folder / "doses.csv"
    doses.write_text("\ufeffname,id_number,phone,first_dose_date,site_code,vaccine,subdistrict\n"
                     f"周一平,{id_number(dt.date(1961, 3, 4))},13912340001,{today - dt.timedelta(days=25)},TH01,,五山街\n"
                     "错一行,440106198001010000,13900000000,2021-02-30,TH01,,\n"
                     f"周二平,{id_number(dt.date(1962, 3, 4))},13912340002,{today - dt.timedelta(days=25)},TH99,,\n",
                     encoding="utf-8")

    async def build():
        home = await make_site("TH01", "五山街", name="五山街社区卫生服务中心", address="天河区五山路71号")
        other = await make_site("TH05", "石牌街", name="石牌街社区卫生服务中心", address="天河区石牌东路9号")
        for offset in range(0, 8):
            for site in (home, other):
                for start, end in (("08:30", "09:30"), ("14:00", "15:00"), ("23:00", "23:30")):
                    await make_slot(site, today + dt.timedelta(days=offset), start, end, capacity=30)
        first = today - dt.timedelta(days=30)
        caller, _ = await make_resident(home, first_dose=first, name="欧阳娜娜", phone="13712345678",
                                        subdistrict="五山街", born=dt.date(1950, 2, 3))
        people = []
        for i, name in enumerate(("司马光明", "诸葛孔明亮", "李大华", "王五")):
            resident, number = await make_resident(home, first_dose=first, name=name, phone=f"1370000000{i}",
                                                   subdistrict="五山街")
            people.append((resident, number))
        slot_today = (await home.slots.filter(day=today, start="23:00").first())
        slot_day = await home.slots.filter(day=day, start="08:30").first()
        later = await home.slots.filter(day=day, start="14:00").first()
        booked = [await book_for(district, r, slot_today if i % 2 else slot_day) for i, (r, _) in enumerate(people)]
        gone = await book_for(district, caller, slot_day)
        from models.booking import service
        await service.cancel(district, caller.id, gone.id)
        owner = await make_staff("subdistrict", "wushan1", subdistrict="五山街")
        rows = "".join(f"{r.name},{n},1370000000{i}\n" for i, (r, n) in enumerate(people))
        rows += "王小明,440106198001010000,13800000000\n"  # a row that cannot be booked
        group = await groups.create_list(VAULT, owner, "五山街第一居委会·十二月第二批", rows.encode())
        member = await group.members.all().first()
        for role, name, kw in (("callcentre", "agent1", {}), ("site", "door1", {"site_code": "TH01"}),
                               ("clinic", "clinic1", {"subdistrict": "五山街"}), ("admin", "boss1", {})):
            await make_staff(role, name, **kw)
        run = await imports.start_run(imports.FIRST_DOSES, "doses.csv")
        await imports.import_first_doses(VAULT, doses, today=today, run=run)
        away, _ = await make_resident(other, first_dose=first, name="刘八妹", phone="13600000009",
                                      subdistrict="石牌街")
        await book_for(district, away, await other.slots.filter(day=day, start="08:30").first())
        from models.booking import waitlist
        for i, name in enumerate(("陈候补", "林等位", "黄回电")):  # on the list; the last one without a mobile
            person, _ = await make_resident(home, first_dose=first - dt.timedelta(days=i), name=name,
                                            phone=f"1350000000{i}", subdistrict="五山街")
            await waitlist.join(district, await service.stand(district, person),
                                waitlist.Choice(scope="subdistrict" if i == 1 else "site"),
                                channel="callcentre", callback=i == 2)
        risk = await RiskArea.create(subdistrict="石牌街")
        agent = await StaffUser.get(username="agent1")
        return {"caller": caller.id, "booked": people[0][0].id, "booking": booked[0].id,
                "cancelled": gone.id, "later_slot": later.id, "group": group.id, "member": member.id,
                "home": home.id, "other": other.id, "day": day.isoformat(), "run": run.id,
                "risk": risk.id, "agent": agent.id}

    ids = seed(url, build)
    server = Server(url, TEST_SECRET)
    yield {**ids, "base": server.base_url}
    server.stop()


def phone_shot(page, name: str) -> None:
    """The first two screens of the page, 360 px wide (small enough to keep in the repository)."""
    SCREENSHOT_DIR.mkdir(parents=True, exist_ok=True)
    height = min(page.evaluate("document.documentElement.scrollHeight"), 2 * 640)
    page.screenshot(path=str(SCREENSHOT_DIR / f"{name}.png"), full_page=True,
                    clip={"x": 0, "y": 0, "width": WIDTH, "height": height})


def sign_in(page, base: str, username: str) -> None:
    page.goto(f"{base}/staff")
    page.fill("#username", username)
    page.fill("#password", PASSWORD)
    page.press("#password", "Enter")
    page.wait_for_url(lambda u: not u.rstrip("/").endswith("/staff"))


@pytest.mark.parametrize("role", ["stranger", *WHO])
def test_every_staff_page_fits_a_phone(world, browser, role):
    context = browser.new_context(viewport={"width": WIDTH, "height": 640}, locale="zh-CN",
                                  is_mobile=True, has_touch=True)
    page = context.new_page()
    if role != "stranger":
        sign_in(page, world["base"], WHO[role])
    wide = []
    for path, (address, roles) in PAGES.items():
        if role not in roles:
            continue
        address = address.format(**world)
        response = page.goto(world["base"] + address)
        assert response.status < 500, (address, response.status)
        width = page.evaluate("document.documentElement.scrollWidth")
        if (role, path) in SHOTS:
            phone_shot(page, SHOTS[role, path])
        if width > WIDTH:
            wide.append(f"{address}: {width} px ({', '.join(page.evaluate(WIDEST, WIDTH))})")
    context.close()
    assert not wide, f"{role}: wider than {WIDTH} px:\n" + "\n".join(wide)
