"""The console's invitation batches, reminders and the list of people past their due day."""
from __future__ import annotations

import asyncio
import csv
import dataclasses
import datetime as dt
import io

import pytest

from models.db.tables import AuditEntry, Link, Resident, RiskArea, SmsMessage
from models.operations import outreach
from models.operations.invitations import Scope, invite
from models.rules.interval import IntervalRule, RuleBook
from tests.conftest import NOW, TODAY, VAULT
from tests.factories import book_for, make_resident, make_site, make_slot
from tests.pages import get_page, parse, post_form, text
from tests.staff_helpers import make_staff, sign_in

DUE = dt.date(2021, 6, 1)  # 30 days before TODAY: may book, not late


async def finish_batches(client) -> None:
    """Wait for the batches the console started in the background (no sleeping, no timing)."""
    await asyncio.gather(*list(getattr(client.app.state, "outreach_tasks", ())))


@pytest.fixture
async def world(db, district):
    wushan = await make_site("TH01", "五山街", name="五山街社区卫生服务中心")
    longdong = await make_site("TH02", "龙洞街", name="龙洞街社区卫生服务中心")
    zhuji = await make_site("TH03", "珠吉街", name="珠吉街社区卫生服务中心")
    await RiskArea.create(subdistrict="珠吉街")
    phones = iter(f"139000000{n:02d}" for n in range(80))
    people = {}

    async def add(key, site, subdistrict, first_dose=DUE, **kw):
        people[key], _ = await make_resident(site, first_dose=first_dose, phone=next(phones),
                                             subdistrict=subdistrict, **kw)

    await add("wushan_1", wushan, "五山街")
    await add("wushan_2", wushan, "五山街", name="李四华")
    await add("wushan_at_longdong", longdong, "五山街")  # lives in 五山街, first dose at TH02
    await add("longdong", longdong, "龙洞街")
    await add("too_early", wushan, "五山街", first_dose=TODAY - dt.timedelta(days=10))
    await add("risk_area", zhuji, "珠吉街")
    await add("vaccinated", wushan, "五山街", first_dose=dt.date(2021, 5, 1))
    await Resident.filter(id=people["vaccinated"].id).update(second_dose_date=dt.date(2021, 5, 25))
    await add("booked", wushan, "五山街")
    await book_for(district, people["booked"], await make_slot(wushan, dt.date(2021, 7, 2)))
    await add("invited", longdong, "龙洞街")
    await Resident.filter(id=people["invited"].id).update(invited_at=NOW - dt.timedelta(days=1))
    await make_staff("admin", "boss")
    return dict(people=people, sites={"TH01": wushan, "TH02": longdong, "TH03": zhuji})


@pytest.fixture
async def admin(client, world):
    await sign_in(client, "boss")
    return client


def table(page, table_id: str) -> dict[str, int]:
    return {tr.find_all("td")[0].get_text(" ", strip=True): int(tr.find_all("td")[1].get_text())
            for tr in page.select(f"#{table_id} tbody tr")}


async def test_the_preview_counts_who_is_due_by_sub_district_and_by_first_dose_site(admin, world):
    page = await get_page(admin, "/admin/invitations")
    assert "共4位待邀请" in text(page)
    assert table(page, "by-subdistrict") == {"五山街": 3, "龙洞街": 1}
    assert table(page, "by-site") == {"TH01 五山街社区卫生服务中心": 2, "TH02 龙洞街社区卫生服务中心": 2}

    page = await get_page(admin, f"/admin/invitations?subdistrict=五山街&site={world['sites']['TH02'].id}")
    assert "共1位待邀请" in text(page)
    assert table(page, "by-site") == {"TH02 龙洞街社区卫生服务中心": 1}
    assert page.select_one("#f-subdistrict option[selected]")["value"] == "五山街"


async def test_sending_for_one_sub_district_invites_only_its_people_once_each(admin, world):
    people = world["people"]
    page = await get_page(admin, "/admin/invitations?subdistrict=五山街")
    response = await post_form(admin, "/admin/invitations/send", page,
                               {"subdistrict": "五山街", "site": "", "expected": "3"})
    progress_url = response.headers["location"]
    assert progress_url.startswith("/admin/invitations/progress?run=")
    await finish_batches(admin)

    wanted = {people[k].id for k in ("wushan_1", "wushan_2", "wushan_at_longdong")}
    messages = await SmsMessage.filter(kind="invite")
    assert sorted(m.resident_id for m in messages) == sorted(wanted)  # one SMS each, nobody else
    assert {link.resident_id for link in await Link.all()} == wanted
    assert {r.id for r in await Resident.filter(invited_at__isnull=False)} == wanted | {people["invited"].id}

    done = await get_page(admin, progress_url)
    assert done.find("meta", attrs={"http-equiv": "refresh"}) is None  # finished: stops refreshing
    assert "完成：3条短信已进入发送队列" in text(done)
    audit = {e.action: e.detail for e in await AuditEntry.filter(action__in=["invite_start", "invite"])}
    assert audit == {"invite_start": "五山街, 3 due", "invite": "五山街, 3 due: 3 sent"}

    again = await get_page(admin, "/admin/invitations?subdistrict=五山街")
    assert "共0位待邀请" in text(again) and not again.select("form[action='/admin/invitations/send']")


async def test_the_send_button_says_how_many_and_where_and_the_batch_sends_exactly_that(admin, world):
    """Issue 22: a screen is one state. The button names the count and the part of the district
    of the numbers shown; the filters update those numbers at once (htmx), and without JavaScript
    the form sends the shown scope, whatever the selects were changed to since."""
    button = "form[action='/admin/invitations/send'] button"
    whole = await get_page(admin, "/admin/invitations")
    assert text(whole.select_one(button)) == "向全区范围的4人发送邀请短信"
    narrow = await get_page(admin, f"/admin/invitations?subdistrict=五山街&site={world['sites']['TH02'].id}")
    assert text(narrow.select_one(button)) == "向五山街，第一剂在TH02的1人发送邀请短信"
    filters = whole.select_one("form[data-hx-target='#invite-batch']")
    assert filters.find("select", id="f-subdistrict") and filters["data-hx-select"] == "#invite-batch"
    assert whole.select_one("#invite-batch").select_one("form[action='/admin/invitations/send']")

    page = await get_page(admin, "/admin/invitations?subdistrict=五山街")
    assert text(page.select_one(button)) == "向五山街的3人发送邀请短信"
    form = page.select_one("form[action='/admin/invitations/send']")
    fields = {i["name"]: i.get("value", "") for i in form.find_all("input") if i["name"] != "csrftoken"}
    await post_form(admin, "/admin/invitations/send", page, fields)
    await finish_batches(admin)
    invited = await Resident.filter(id__in=await SmsMessage.filter(kind="invite").values_list(
        "resident_id", flat=True)).values_list("subdistrict", flat=True)
    assert sorted(invited) == ["五山街"] * 3  # the button's words: 3 people, in 五山街


async def test_a_send_whose_count_moved_since_the_preview_is_refused_and_sends_nothing(admin, world):
    page = await get_page(admin, "/admin/invitations")
    response = await post_form(admin, "/admin/invitations/send", page,
                               {"subdistrict": "", "site": "", "expected": "3"}, status=422)
    assert "人数在您查看之后有了变化" in text(parse(response)) and "共4位待邀请" in text(parse(response))
    response = await post_form(admin, "/admin/invitations/send", page, {}, status=422)  # an empty post
    await finish_batches(admin)
    assert await SmsMessage.filter(kind="invite").count() == 0


async def test_the_progress_page_refreshes_itself_until_the_batch_ends(admin, world):
    await get_page(admin, "/admin/invitations")
    batch = outreach.Batch("invite", 1000, "五山街")
    batch(250)
    admin.app.state.outreach_runs["run1"] = batch
    page = await get_page(admin, "/admin/invitations/progress?run=run1")
    assert page.find("meta", attrs={"http-equiv": "refresh"})["content"] == "2"
    assert page.select_one("#batch-progress")["value"] == "25"
    assert "已处理250 / 1000位（25%）" in text(page)
    assert not page.find("script", src=False)  # no inline script: the refresh is plain HTML

    missing = await get_page(admin, "/admin/invitations/progress?run=gone", status=404)
    assert "再发送一次即可继续" in text(missing)


async def test_reminders_go_once_with_a_new_link_to_people_invited_days_ago_who_have_not_booked(
        admin, world, district, clock):
    people = world["people"]
    clock.moment = NOW - dt.timedelta(days=4)  # the batch of four days ago
    await invite(district, as_of=clock.today(), scope=Scope("五山街"))
    clock.moment = NOW - dt.timedelta(days=2)  # and one two days ago: too recent for a reminder
    await invite(district, as_of=clock.today(), scope=Scope("龙洞街"))
    clock.moment = NOW
    slot = await make_slot(world["sites"]["TH01"], dt.date(2021, 7, 3))
    await book_for(district, people["wushan_2"], slot)  # booked since: no reminder
    old_links = {link.resident_id: link.id for link in await Link.all()}

    page = await get_page(admin, "/admin/invitations")
    assert "邀请已满3天、仍未预约、还没有提醒过的：2位" in text(page)
    assert text(page.select_one("form[action='/admin/invitations/remind'] button")) == "给邀请已满3天的2人发送提醒短信"
    await post_form(admin, "/admin/invitations/remind", page, {"days": "3", "expected": "2"})
    await finish_batches(admin)

    reminded = {people["wushan_1"].id, people["wushan_at_longdong"].id}
    messages = await SmsMessage.filter(kind="remind")
    assert sorted(m.resident_id for m in messages) == sorted(reminded)
    for message in messages:
        body = VAULT.decrypt(message.body_cipher)
        assert "您尚未预约" in body and "http://testserver/b/" in body
        assert (await Link.get(id=old_links[message.resident_id])).revoked  # the old link no longer works
        assert await Link.filter(resident_id=message.resident_id, revoked=False).count() == 1
    assert {r.id for r in await Resident.filter(reminded_at__isnull=False)} == reminded
    assert (await AuditEntry.get(action="remind")).detail == "invited 3+ days ago, 2 due: 2 sent"

    page = await get_page(admin, "/admin/invitations?days=3")
    assert "还没有提醒过的：0位" in text(page)
    response = await post_form(admin, "/admin/invitations/remind", page, {"days": "3", "expected": "2"},
                               status=422)
    assert "现在没有需要发送的人" in text(parse(response))
    await finish_batches(admin)
    assert await SmsMessage.filter(kind="remind").count() == 2  # once only


async def test_a_reminder_needs_a_number_of_days_from_1_to_60(admin, world):
    page = await get_page(admin, "/admin/invitations?days=0", status=422)
    assert "天数请填1到60之间的整数" in text(page)
    await post_form(admin, "/admin/invitations/remind", page, {"days": "61", "expected": "1"}, status=422)


@pytest.fixture
async def late_people(db, district):
    site = await make_site("TH01", "五山街")
    phones = iter(f"137000000{n:02d}" for n in range(80))
    people = {}

    async def add(key, days_ago, subdistrict="五山街", **kw):
        people[key], _ = await make_resident(site, first_dose=TODAY - dt.timedelta(days=days_ago),
                                             phone=next(phones), subdistrict=subdistrict, **kw)

    await add("day_100", 100, name="王小明")
    await add("day_60", 60, subdistrict="龙洞街", name="赵六")
    await add("day_57", 57)
    await add("day_56", 56)  # due today: not past it yet
    await add("vaccinated", 90)
    await Resident.filter(id=people["vaccinated"].id).update(second_dose_date=TODAY)
    await add("booked", 80)
    await book_for(district, people["booked"], await make_slot(site, TODAY + dt.timedelta(days=1)))
    await make_staff("admin", "boss")
    return people


async def test_the_overdue_list_shows_people_past_day_56_unbooked_masked_most_overdue_first(
        client, late_people):
    await sign_in(client, "boss")
    page = await get_page(client, "/admin/overdue")
    rows = [[td.get_text(" ", strip=True) for td in tr.find_all("td")][:5]
            for tr in page.select("#overdue tbody tr")]
    assert rows == [
        ["王*明", "137****0000", "五山街", "2021年3月23日", "44"],
        ["赵*", "137****0001", "龙洞街", "2021年5月2日", "4"],
        ["张*明", "137****0002", "五山街", "2021年5月5日", "1"],
    ]
    assert "共3位" in text(page)
    assert "13700000000" not in page.decode()  # no full phone anywhere

    only = await get_page(client, "/admin/overdue?subdistrict=龙洞街")
    assert [tr.td.get_text(strip=True) for tr in only.select("#overdue tbody tr")] == ["赵*"]

    response = await client.get("/admin/overdue.csv")
    assert response.status_code == 200 and response.headers["content-type"].startswith("text/csv")
    assert response.text.startswith("\ufeff")  # Excel reads it as UTF-8
    lines = list(csv.reader(io.StringIO(response.text.lstrip("\ufeff"))))
    assert lines[0] == ["市民编号", "姓名", "手机号", "街道", "第一剂日期", "超期天数"]  # the staff's words
    assert [line[1:] for line in lines[1:]] == [
        ["王*明", "137****0000", "五山街", "2021-03-23", "44"],
        ["赵*", "137****0001", "龙洞街", "2021-05-02", "4"],
        ["张*明", "137****0002", "五山街", "2021-05-05", "1"],
    ]
    assert await AuditEntry.filter(action="export_overdue").count() == 1


async def test_the_overdue_list_pages_by_keyset(client, late_people, monkeypatch):
    monkeypatch.setattr(outreach, "OVERDUE_PAGE", 2)
    await sign_in(client, "boss")
    first = await get_page(client, "/admin/overdue")
    assert len(first.select("#overdue tbody tr")) == 2
    following = first.find("a", string="下一页")["href"]
    second = await get_page(client, following)
    assert [tr.td.get_text(strip=True) for tr in second.select("#overdue tbody tr")] == ["张*明"]
    assert second.find("a", string="下一页") is None


async def test_past_the_due_day_follows_each_persons_vaccine(late_people, district):
    longer = dataclasses.replace(district, rules=RuleBook(
        IntervalRule(21, 56), {"长间隔": IntervalRule(28, 90)}))
    await Resident.filter(id=late_people["day_60"].id).update(vaccine="长间隔")
    listing = await outreach.overdue_listing(longer)
    assert [row.id for row in listing.rows] == [late_people["day_100"].id, late_people["day_57"].id]
    assert [row.days_overdue for row in listing.rows] == [44, 1]


class Terminal(io.StringIO):
    def isatty(self):
        return True


def test_the_cli_invite_draws_a_progress_bar_on_a_terminal_and_logs_counts_otherwise(caplog):
    import run

    screen = Terminal()
    bar = run.InviteProgress(4, stream=screen)
    for done in (1, 4):
        bar(done)
    assert "invite [######------------------]  25% 1/4" in screen.getvalue()
    assert screen.getvalue().endswith("invite [########################] 100% 4/4")
    bar.clear()
    assert screen.getvalue().endswith("\r\033[K")

    log = run.InviteProgress(20_000, stream=io.StringIO())
    with caplog.at_level("INFO", logger="booking.invitations"):
        for done in range(1, 20_001):
            log(done)
    assert [r.getMessage() for r in caplog.records if r.name == "booking.invitations"] == [
        "invite: 10000 of 20000 invited", "invite: 20000 of 20000 invited"]
