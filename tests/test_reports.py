"""Reports (/admin/reports): the numbers against a small world counted by hand, the filters and
their refusals, the CSV downloads against the tables, the SVG charts and their labels, the
resident snapshot's freshness, and nobody but an admin.

The world, as of TODAY (2021-07-01; every product 21..56 days, config/vaccines.toml):

  site  day    windows                         bookings (resident: status)
  A     06-29  09:00 x10, 14:00 x10 (closed)   r1 done, r2 no-show
  A     06-30  09:00 x5                        r8 done, r9 active (the day closed without close-day)
  B     06-30  09:00 x8                        r6 cancelled, r7 done
  C     07-01  09:00 x4                        r3 active

  resident  lives in  first dose  second dose     so, as of TODAY
  r1        五山街    05-01       06-29 (A)       given
  r2        五山街    05-10       -               due (day 52)
  r3        五山街    05-20       -               booked
  r4        五山街    04-20       -               overdue (day 72)
  r5        五山街    06-20       -               not yet due (day 11)
  r6        五山街    05-05       -               overdue (day 57: due by 06-30), its booking cancelled
  r7        五山街    05-02       06-30 (B)       given
  r8        石牌街    05-15       06-30 (A)       given
  r9        石牌街    05-25       -               booked
  r11       石牌街    05-06       -               due (day 56, the last day)
  r12       石牌街    06-10       -               due (day 21, the first day)
  r13       石牌街    04-25       06-20 (C)       given (before the service: no booking)
"""
from __future__ import annotations

import asyncio
import csv
import datetime as dt
import io
import itertools

import pytest

from models.db.tables import AuditEntry, Booking, Resident
from models.district import District
from models.operations import outreach, reports
from models.rules.interval import IntervalRule, RuleBook
from models.rules.tianhe import SUBDISTRICTS
from tests.conftest import NOW, VAULT
from tests.factories import make_resident, make_site, make_slot
from models.clock import TZ
from tests.pages import get_page, parse
from tests.staff_helpers import make_staff, sign_in

D = lambda month, day: dt.date(2021, month, day)  # noqa: E731
_codes = itertools.count(1)


async def _book(resident, slot, status):
    await Booking.create(code=f"T{next(_codes):07d}", resident=resident, slot=slot, status=status)


@pytest.fixture
async def world(db):
    a = await make_site("S01", "五山街", name="五山街社区卫生服务中心")
    b = await make_site("S02", "五山街", name="五山街茶山站")
    c = await make_site("S03", "石牌街", name="石牌街社区卫生服务中心")
    a29 = await make_slot(a, D(6, 29), "09:00", "10:00", capacity=10, booked=1)
    closed = await make_slot(a, D(6, 29), "14:00", "15:00", capacity=10)
    closed.closed_reason = "停电"
    await closed.save()
    a30 = await make_slot(a, D(6, 30), "09:00", "10:00", capacity=5, booked=2)
    b30 = await make_slot(b, D(6, 30), "09:00", "10:00", capacity=8, booked=1)
    c01 = await make_slot(c, D(7, 1), "09:00", "10:00", capacity=4, booked=1)
    people = {}
    for key, site, sub, first in (
            ("r1", a, "五山街", D(5, 1)), ("r2", a, "五山街", D(5, 10)), ("r3", a, "五山街", D(5, 20)),
            ("r4", b, "五山街", D(4, 20)), ("r5", b, "五山街", D(6, 20)), ("r6", b, "五山街", D(5, 5)),
            ("r7", b, "五山街", D(5, 2)), ("r8", c, "石牌街", D(5, 15)), ("r9", c, "石牌街", D(5, 25)),
            ("r11", c, "石牌街", D(5, 6)), ("r12", c, "石牌街", D(6, 10)), ("r13", c, "石牌街", D(4, 25))):
        people[key], _ = await make_resident(site, first_dose=first, subdistrict=sub)
    p = people
    await _book(p["r1"], a29, Booking.DONE)
    await _book(p["r2"], a29, Booking.NO_SHOW)
    await _book(p["r8"], a30, Booking.DONE)
    await _book(p["r9"], a30, Booking.ACTIVE)
    await _book(p["r6"], b30, Booking.CANCELLED)
    await _book(p["r7"], b30, Booking.DONE)
    await _book(p["r3"], c01, Booking.ACTIVE)
    for key, day, site in (("r1", D(6, 29), a), ("r7", D(6, 30), b), ("r8", D(6, 30), a), ("r13", D(6, 20), c)):
        await Resident.filter(id=p[key].id).update(second_dose_date=day, second_dose_site=site)
    await make_staff("admin", "boss")
    return {"a": a, "b": b, "c": c}


def table(soup, table_id: str) -> list[list[str]]:
    """A table's body and foot rows as cell texts."""
    found = soup.find("table", id=table_id)
    return [[" ".join(cell.get_text(" ").split()) for cell in row.find_all(["th", "td"])]
            for part in found.find_all(["tbody", "tfoot"]) for row in part.find_all("tr")]


def rows_of(response) -> list[list[str]]:
    assert response.headers["content-type"].startswith("text/csv")
    assert "attachment" in response.headers["content-disposition"]
    body = response.content.decode("utf-8")
    assert body.startswith("\ufeff"), "Excel needs the BOM to read UTF-8"
    return list(csv.reader(io.StringIO(body[1:])))


def assert_chart(soup, chart_id: str, marks: str, count: int) -> None:
    svg = soup.find("svg", attrs={"aria-labelledby": f"{chart_id}-title {chart_id}-desc"})
    assert svg is not None and svg["role"] == "img"
    assert svg.find("title", id=f"{chart_id}-title").get_text().strip()
    assert svg.find("desc", id=f"{chart_id}-desc").get_text().strip()
    assert len(svg.find_all(marks)) == count, (marks, len(svg.find_all(marks)))
    assert svg.find_parent("figure") is not None


# ---- per sub-district and the district's totals


WUSHAN = ["五山街", "7", "2", "1", "1", "1", "2", "28.6%"]
SHIPAI = ["石牌街", "5", "2", "1", "0", "2", "0", "40.0%"]
TOTAL = ["全区合计", "12", "4", "2", "1", "3", "2", "33.3%"]


async def test_per_subdistrict_counts_everyone_once_as_counted_by_hand(client, world):
    await sign_in(client, "boss")
    soup = await get_page(client, "/admin/reports")
    rows = table(soup, "areas")
    assert [r[0] for r in rows[:-1]] == list(SUBDISTRICTS)  # every sub-district, in the notice's order
    by_name = {r[0]: r for r in rows}
    assert by_name["五山街"] == WUSHAN
    assert by_name["石牌街"] == SHIPAI
    assert by_name["龙洞街"] == ["龙洞街", "0", "0", "0", "0", "0", "0", "—"]
    assert rows[-1] == TOTAL
    # Overdue is the overdue list's count (/admin/overdue): past day 56, neither given nor booked.
    assert await outreach.overdue_count(client.app.state.district) == 2
    assert "数据截至" in soup.get_text()
    assert_chart(soup, "chart-areas", "rect", len(SUBDISTRICTS))


async def test_per_subdistrict_filters_by_area_and_by_first_dose_days(client, world):
    await sign_in(client, "boss")
    soup = await get_page(client, "/admin/reports?subdistrict=五山")  # 五山 is 五山街
    assert table(soup, "areas") == [WUSHAN, ["合计", *WUSHAN[1:]]]
    # First doses 05-01..05-10: r1 (given), r2 (due), r6 (overdue), r7 (given); r11 (due).
    soup = await get_page(client, "/admin/reports?from_day=2021-05-01&to_day=2021-05-10")
    by_name = {r[0]: r for r in table(soup, "areas")}
    assert by_name["五山街"] == ["五山街", "4", "2", "0", "0", "1", "1", "50.0%"]
    assert by_name["石牌街"] == ["石牌街", "1", "0", "0", "0", "1", "0", "0.0%"]
    assert by_name["全区合计"] == ["全区合计", "5", "2", "0", "0", "2", "1", "40.0%"]


async def test_a_product_with_its_own_interval_is_classed_by_its_own_rule(db, world, clock):
    rules = RuleBook(IntervalRule(21, 56), {"长间隔": IntervalRule(28, 84)})
    district = District(rules=rules, vault=VAULT, clock=clock)
    await Resident.filter(subdistrict="五山街", first_dose_date__in=[D(4, 20), D(6, 20)]).update(vaccine="长间隔")
    report = await reports.by_area(district, reports.Snapshots(), reports.Asked(subdistrict="五山街"))
    row = report.rows[0]
    # r4 (day 72) is within 84 days: due, not overdue; r5 (day 11) is still before day 28.
    assert (row.first_doses, row.not_yet_due, row.due, row.overdue) == (7, 1, 2, 1)


# ---- per site per day


SITE_ROWS = [
    ["2021-06-29", "S01 五山街社区卫生服务中心", "五山街", "10", "2", "1", "1", "20.0%"],
    ["2021-06-30", "S01 五山街社区卫生服务中心", "五山街", "5", "2", "1", "0", "40.0%"],
    ["2021-06-30", "S02 五山街茶山站", "五山街", "8", "1", "1", "0", "12.5%"],
    ["2021-07-01", "S03 石牌街社区卫生服务中心", "石牌街", "4", "1", "0", "0", "25.0%"],
]
RANGE = "from_day=2021-06-29&to_day=2021-07-01"


async def test_per_site_per_day_as_counted_by_hand(client, world):
    await sign_in(client, "boss")
    soup = await get_page(client, f"/admin/reports/sites?{RANGE}")
    assert table(soup, "sites") == [*SITE_ROWS, ["合计（全部4行）", "27", "6", "3", "1", "22.2%"]]
    assert table(soup, "days") == [["2021-06-29", "10", "2", "1", "1", "20.0%"],
                                   ["2021-06-30", "13", "3", "2", "0", "23.1%"],
                                   ["2021-07-01", "4", "1", "0", "0", "25.0%"]]
    assert_chart(soup, "chart-sites", "rect", 3)  # one bar a day
    # Default: the 7 days to today.
    soup = await get_page(client, "/admin/reports/sites")
    assert soup.find("input", id="f-from_day")["value"] == "2021-06-25"
    assert soup.find("input", id="f-to_day")["value"] == "2021-07-01"
    assert len(table(soup, "days")) == 7 and len(table(soup, "sites")) == 5


async def test_per_site_per_day_filters_by_site_and_subdistrict(client, world):
    await sign_in(client, "boss")
    soup = await get_page(client, f"/admin/reports/sites?{RANGE}&site={world['a'].id}")
    assert table(soup, "sites")[:-1] == SITE_ROWS[:2]
    soup = await get_page(client, f"/admin/reports/sites?{RANGE}&subdistrict=石牌街")
    assert table(soup, "sites")[:-1] == SITE_ROWS[3:]
    soup = await get_page(client, f"/admin/reports/sites?{RANGE}&site={world['a'].id}&subdistrict=石牌街")
    assert table(soup, "sites")[0] == ["这些日期没有时段。"]


async def test_the_per_site_table_is_paged_and_the_download_has_every_row(client, world, monkeypatch):
    monkeypatch.setattr(reports, "PAGE_ROWS", 3)
    await sign_in(client, "boss")
    soup = await get_page(client, f"/admin/reports/sites?{RANGE}")
    assert table(soup, "sites")[:-1] == SITE_ROWS[:3]
    soup = await get_page(client, f"/admin/reports/sites?{RANGE}&page=2")
    assert table(soup, "sites")[:-1] == SITE_ROWS[3:]
    assert (await get_page(client, f"/admin/reports/sites?{RANGE}&page=99")).find(string="上一页")
    rows = rows_of(await client.get(f"/admin/reports/sites.csv?{RANGE}"))
    assert rows[0] == ["日期", "接种点编码", "接种点名称", "街道", "名额", "已预约", "已签到", "未到", "使用率（百分比）"]
    assert len(rows) == 1 + 4 + 1


# ---- the completion rate over time


async def test_completion_rate_per_day_as_counted_by_hand(client, world):
    await sign_in(client, "boss")
    soup = await get_page(client, "/admin/reports/completion?from_day=2021-06-28&to_day=2021-07-01")
    assert table(soup, "completion") == [["2021-06-28", "12", "0", "1", "8.3%"],
                                         ["2021-06-29", "12", "1", "2", "16.7%"],
                                         ["2021-06-30", "12", "2", "4", "33.3%"],
                                         ["2021-07-01", "12", "0", "4", "33.3%"]]
    assert_chart(soup, "chart-completion", "polyline", 1)
    soup = await get_page(client, "/admin/reports/completion?from_day=2021-06-19&to_day=2021-06-21")
    assert table(soup, "completion") == [["2021-06-19", "11", "0", "0", "0.0%"],
                                         ["2021-06-20", "12", "1", "1", "8.3%"],
                                         ["2021-06-21", "12", "0", "1", "8.3%"]]
    soup = await get_page(client, "/admin/reports/completion?from_day=2021-06-28&to_day=2021-07-01&subdistrict=五山街")
    assert [r[-1] for r in table(soup, "completion")] == ["0.0%", "14.3%", "28.6%", "28.6%"]
    soup = await get_page(client, "/admin/reports/completion")  # default: the 30 days to today
    assert len(table(soup, "completion")) == 30


# ---- CSV downloads match the tables


async def test_every_download_matches_its_table(client, world):
    await sign_in(client, "boss")
    plain = lambda cell: "" if cell == "—" else cell.replace(",", "").rstrip("%")  # noqa: E731
    for page, download, table_id, query, numbers in (
            ("/admin/reports", "/admin/reports/subdistricts.csv", "areas", "subdistrict=石牌街", 7),
            ("/admin/reports/sites", "/admin/reports/sites.csv", "sites", RANGE, 5),
            ("/admin/reports/completion", "/admin/reports/completion.csv", "completion", RANGE, 4)):
        soup = await get_page(client, f"{page}?{query}")
        link = soup.find("a", href=lambda h: h and h.startswith(download))
        assert link is not None, f"{page} has no download link"
        rows = rows_of(await client.get(link["href"]))
        shown = table(soup, table_id)
        assert len(rows) == 1 + len(shown)
        for got, want in zip(rows[1:], shown):
            assert got[-numbers:] == [plain(c) for c in want[-numbers:]], (got, want)
            assert want[0] == got[0] or got[0] == "合计" and want[0].startswith("合计"), (got, want)
    exports = await AuditEntry.filter(action="export_report").values_list("detail", flat=True)
    assert sorted(d.split()[0] for d in exports) == ["completion", "sites", "subdistricts"]


# ---- refusals: bad filters are explained, nobody else may look


REFUSED = [
    ("from_day=2021-13-01", "from_day", "开始日期格式不正确"),
    ("to_day=yesterday", "to_day", "结束日期格式不正确"),
    ("from_day=2021-07-01&to_day=2021-06-01", "to_day", "结束日期不能早于开始日期"),
    ("from_day=2021-01-01&to_day=2021-07-01", "to_day", "日期范围最长92天"),
    ("site=999", "site", "请从列表中选择接种点"),
    ("site=-1", "site", "请从列表中选择接种点"),
    ("subdistrict=越秀区", "subdistrict", "请从列表中选择天河区的一个街道"),
]


async def test_filters_that_cannot_be_used_are_explained(client, world):
    await sign_in(client, "boss")
    for query, field, words in REFUSED:
        for path in ("/admin/reports/sites", "/admin/reports/sites.csv"):
            response = await client.get(f"{path}?{query}")
            assert response.status_code == 422, (path, query)
            soup = parse(response)
            summary = soup.find(class_="error-summary")
            assert words in summary.get_text() and summary.find("a")["href"] == f"#f-{field}", query
            assert soup.find(id=f"f-{field}")["aria-invalid"] == "true"
            assert soup.find("table", id="sites") is None
    # Several at once: each named, in the form's order.
    soup = parse(await client.get("/admin/reports/completion?from_day=x&subdistrict=y&site=z"))
    assert [a["href"] for a in soup.find(class_="error-summary").find_all("a")] == ["#f-from_day", "#f-subdistrict"]
    # A page without a site filter ignores one.
    assert (await client.get(f"/admin/reports/completion?site={world['a'].id}")).status_code == 200


async def test_only_admins_see_reports(client, world):
    await make_staff("site", "door", site_code="S01")
    await make_staff("callcentre", "agent")
    await make_staff("subdistrict", "office", subdistrict="五山街")
    paths = ["/admin/reports", "/admin/reports/sites", "/admin/reports/completion",
             "/admin/reports/subdistricts.csv", "/admin/reports/sites.csv", "/admin/reports/completion.csv"]
    for path in paths:
        response = await client.get(path)
        assert response.status_code == 303 and response.headers["location"].startswith("/staff")
    for username in ("door", "agent", "office"):
        client.cookies.clear()
        await sign_in(client, username)
        for path in paths:
            response = await client.get(path)
            assert response.status_code == 403, (username, path)
            assert "text/csv" not in response.headers["content-type"]
    client.cookies.clear()
    await sign_in(client, "boss")
    nav = (await get_page(client, "/admin")).find("nav", class_="prefs")
    assert nav.find("a", href="/admin/reports")


# ---- the resident snapshot: at most a minute old


async def test_the_snapshot_is_reused_for_a_minute_then_the_page_waits_for_a_fresh_one(db, world, district, clock):
    # Issue 22: a page opened at 04:53 said "数据截至04:46": an older snapshot was answered at once
    # and the fresh one kept for the next page. Now the page itself gets the fresh one.
    ticks = [0.0]
    snapshots = reports.Snapshots(monotonic=lambda: ticks[0])
    first = await snapshots.get(district)
    assert first.as_of == NOW and sum(c[0] for c in first.cohorts.values()) == 12
    await make_resident(world["c"], first_dose=D(6, 1), subdistrict="石牌街")
    clock.advance(seconds=59)
    ticks[0] = 59.0
    assert await snapshots.get(district) is first  # still fresh: the same counts
    clock.advance(minutes=7, seconds=1)
    ticks[0] = 480.0
    fresh = await snapshots.get(district)
    assert fresh.as_of == NOW + dt.timedelta(minutes=8)  # the time the page shows is the data's
    assert sum(c[0] for c in fresh.cohorts.values()) == 13


async def test_a_slow_database_answers_the_older_snapshot_and_the_next_page_gets_the_fresh_one(
        db, world, district, clock, monkeypatch):
    ticks = [0.0]
    snapshots = reports.Snapshots(monotonic=lambda: ticks[0], wait_seconds=0)
    first = await snapshots.get(district)
    release, take = asyncio.Event(), reports.take_snapshot

    async def slow(d):
        await release.wait()
        return await take(d)

    monkeypatch.setattr(reports, "take_snapshot", slow)
    clock.advance(minutes=2)
    ticks[0] = 120.0
    assert await snapshots.get(district) is first  # not waited for past wait_seconds
    release.set()
    await snapshots.task
    assert (await snapshots.get(district)).as_of == NOW + dt.timedelta(minutes=2)


async def test_the_report_page_shows_the_time_of_its_data(client, world, clock):
    await sign_in(client, "boss")
    app_snapshots = client.app.state.report_snapshots = reports.Snapshots()
    as_of = lambda soup: next(p.get_text() for p in soup.find_all("p") if "数据截至" in p.get_text())  # noqa: E731
    assert f"{NOW.astimezone(TZ):%H:%M}" in as_of(await get_page(client, "/admin/reports"))
    clock.advance(minutes=7)
    app_snapshots.taken_at -= 7 * 60  # seven quiet minutes on this process's clock too
    shown = as_of(await get_page(client, "/admin/reports"))
    assert f"{(NOW + dt.timedelta(minutes=7)).astimezone(TZ):%H:%M}" in shown, shown
