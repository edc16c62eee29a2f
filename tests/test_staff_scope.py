"""Staff see only what their role needs (issue 21, finding 6 and part of 9).

- A site account's look-up at the door shows its own site's bookings for today and nothing else:
  a booking at another site or on another day (whatever its status), a made-up code, a number
  nobody booked with — one answer, with no site, day, time, name or ID number of anyone.
- Look-ups are limited per account (counted before anything is looked up, from any address, by
  every worker together, with or without Redis) and audited with a cap.
- A sub-district's group list answers "not found" alike for a number nobody has and for another
  sub-district's resident.
- A clinic account names its sub-district or is made district-wide on purpose; accounts made
  before without one are marked district-wide by migration 0013.
"""
from __future__ import annotations

import asyncio
import csv
import datetime as dt
import io
import os
import re
import secrets
import sqlite3
import sys

import httpx
import pytest
from tortoise.backends.base.executor import EXECUTOR_CACHE

from models.booking import service
from models.db.setup import close_db, init_db, tortoise_config
from models.db.tables import AuditEntry, Booking, GroupList, Resident, StaffUser
from models.channels import groups
from models.staff.accounts import StaffError, create_user
from models.staff.scope import Area
from tests.conftest import DB_BACKENDS, NOW, PG_URL, TEST_SECRET, VAULT, reset_postgres
from tests.factories import book_for, id_number, make_resident, make_site, make_slot
from tests.pages import csrf, get_page, parse, post_form, text
from tests.staff_helpers import PASSWORD, make_staff, sign_in
from web.limits import RateLimits
from web.routes import site as site_routes
from web.settings import rate_limit_rules

REDIS_URL = os.environ.get("TEST_REDIS_URL", "")
FIRST = dt.date(2021, 6, 5)


# ---- the site console: only its own site's bookings today


@pytest.fixture
async def door(db, district, clock):
    """Site S01 (where door1 works) and S02; the working day is 2021-07-02. Bookings: at S01
    today and tomorrow, at S02 today (active, cancelled), and someone vaccinated at S02."""
    clock.moment = NOW + dt.timedelta(days=1)
    today = clock.today()
    a = await make_site("S01", "五山街", name="五山街社区卫生服务中心", address="天河区五山路1号")
    b = await make_site("S02", "龙洞街", name="龙洞街社区卫生服务中心", address="天河区龙洞路9号")
    here = await make_slot(a, today, "09:00", "10:00", capacity=5)
    later = await make_slot(a, today + dt.timedelta(days=1), "14:00", "15:00", capacity=5)
    there = await make_slot(b, today, "10:00", "11:00", capacity=5)
    people = {}
    for key, name, slot in [("mine", "张三明", here), ("tomorrow", "王五芳", later),
                            ("theirs", "赵六军", there), ("cancelled", "钱七伟", there),
                            ("vaccinated", "孙八丽", None), ("unbooked", "周九成", None)]:
        resident, number = await make_resident(a, first_dose=FIRST, name=name)
        booking = await book_for(district, resident, slot, NOW) if slot else None
        people[key] = dict(resident=resident, number=number, booking=booking)
    await service.cancel(district, people["cancelled"]["resident"].id, people["cancelled"]["booking"].id)
    await Resident.filter(id=people["vaccinated"]["resident"].id).update(
        second_dose_date=today - dt.timedelta(days=2), second_dose_site_id=b.id)
    door1 = await make_staff("site", "door1", site_code="S01")
    await make_staff("admin", "boss")
    return dict(a=a, b=b, door1=door1, **people)


def refusal_words(page) -> tuple[str, str]:
    """The refusal's heading and advice: everything but the line that echoes what was typed."""
    box = page.select_one(".refusal")
    assert box is not None, text(page)[:500]
    advice = " ".join(text(p) for p in box.select("p") if "hint" not in (p.get("class") or []))
    return text(box.select_one("h2")), advice


async def look_up(client, token: str, query: str, status: int | None = None):
    response = await client.post("/staff/site/lookup", data={"csrftoken": token, "q": query})
    if status is not None:
        assert response.status_code == status, response.text[:500]
    return response


async def test_a_site_account_gets_one_answer_for_everything_not_its_own_today(client, door):
    await sign_in(client, "door1")
    token = csrf(await get_page(client, "/staff/site"))
    theirs, tomorrow = door["theirs"], door["tomorrow"]
    queries = {
        "another site's code": theirs["booking"].code,
        "another site's ID number": theirs["number"],
        "another day's code": tomorrow["booking"].code,
        "a cancelled booking elsewhere": door["cancelled"]["booking"].code,
        "vaccinated elsewhere": door["vaccinated"]["number"],
        "a made-up code": "ACEF-7HJK",
        "a number nobody has": id_number(dt.date(1990, 1, 2)),
        "on record, never booked": door["unbooked"]["number"],
    }
    answers = {}
    for what, query in queries.items():
        response = await look_up(client, token, query, status=422)
        page = parse(response)
        answers[what] = refusal_words(page)
        body = str(page.select_one("#lookup"))  # the page's own list (today, this site) aside
        leaks = ["龙洞", "天河区龙洞路9号", "10:00", "7月3日", "6月30日", "赵*军", "王*芳", "钱*伟", "孙*丽", "周*成"]
        if len(query) < 15:  # a code: no ID number of anyone (one typed is echoed masked, as typed)
            leaks += [p["resident"].id_masked for p in (theirs, tomorrow, door["cancelled"])]
        for leak in leaks:
            assert leak not in body, f"{what}: {leak} shown"
    assert len(set(answers.values())) == 1, answers
    heading, advice = answers["another site's code"]
    assert "不是本接种点今天的预约" in heading and "预约短信" in advice
    details = await AuditEntry.filter(action="check_in_refused").order_by("id").values_list("detail", "resident_id")
    assert [d.split()[0] for d, _ in details] == ["elsewhere"] * len(queries)
    assert details[0][1] == theirs["resident"].id  # the audit trail still says whom it was about
    # Its own booking today is found as before.
    found = parse(await look_up(client, token, door["mine"]["booking"].code, status=200))
    assert "找到预约" in text(found) and "张*明" in text(found)


async def test_a_site_account_cannot_learn_another_days_booking_by_its_row_id_either(client, door):
    await sign_in(client, "door1")
    page = await get_page(client, "/staff/site")
    response = await post_form(client, "/staff/site/check-in", page,
                               {"booking": str(door["tomorrow"]["booking"].id)}, status=422)
    assert "7月3日" not in response.text and "王*芳" not in response.text
    assert refusal_words(parse(response))[0].endswith("不是本接种点今天的预约")
    assert (await Booking.get(id=door["tomorrow"]["booking"].id)).status == Booking.ACTIVE


async def test_an_admin_at_the_console_still_gets_the_detailed_reason(client, door):
    await sign_in(client, "boss")
    page = await get_page(client, "/staff/site?site=S01")
    response = await post_form(client, "/staff/site/lookup", page,
                               {"site": "S01", "q": door["theirs"]["booking"].code}, status=422)
    said = text(parse(response).select_one(".refusal"))
    assert "不是本接种点的预约" in said and "龙洞街社区卫生服务中心" in said


def _apps(settings, clock, count: int):
    from web.app import create_app

    return [create_app(settings, manage_db=False, clock=clock) for _ in range(count)]


@pytest.mark.parametrize("store", ["database", pytest.param("redis", marks=pytest.mark.skipif(
    not REDIS_URL, reason="TEST_REDIS_URL is not set"))])
async def test_look_ups_are_limited_per_account_across_workers_and_addresses(door, settings, clock, store):
    """Two workers (two apps on one database, or on one Redis), two addresses, one account:
    30 look-ups at once with a limit of 5 a minute -> exactly 5 looked up, 25 refused with
    Retry-After before anything is looked up or audited."""
    settings = settings.with_(rate_limit_site_lookup="5/minute",
                              redis_url=REDIS_URL if store == "redis" else "",
                              redis_prefix=f"test-{secrets.token_hex(6)}")
    browsers = []
    for n, app in enumerate(_apps(settings, clock, 2)):
        transport = httpx.ASGITransport(app=app, client=(f"198.51.100.{n + 1}", 5000))
        browser = httpx.AsyncClient(transport=transport, base_url="http://testserver")
        await sign_in(browser, "door1")
        browsers.append((browser, csrf(await get_page(browser, "/staff/site"))))
    try:
        query = door["theirs"]["booking"].code
        responses = await asyncio.gather(*(look_up(browsers[n % 2][0], browsers[n % 2][1], query)
                                           for n in range(30)))
    finally:
        for browser, _ in browsers:
            await browser.aclose()
    statuses = sorted(r.status_code for r in responses)
    assert statuses == [422] * 5 + [429] * 25
    refused = next(r for r in responses if r.status_code == 429)
    assert int(refused.headers["Retry-After"]) >= 1 and "查找得太频繁" in refused.text
    assert await AuditEntry.filter(action="check_in_refused").count() == 5
    # Another site account is not held up by door1's look-ups.
    await make_staff("site", "door2", site_code="S02")
    transport = httpx.ASGITransport(app=_apps(settings, clock, 1)[0], client=("198.51.100.1", 5000))
    async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as other:
        await sign_in(other, "door2")
        await look_up(other, csrf(await get_page(other, "/staff/site")), query, status=200)


async def test_look_up_audit_rows_are_capped_with_a_count(client, door, settings, monkeypatch):
    """The first LOOKUPS_AUDITED_PER_HOUR look-ups of an hour are audited one by one; then one row
    with the hour's count every SUMMARY_EVERY: 40 look-ups -> 10 + 1 + 3 rows, not 40."""
    monkeypatch.setattr(site_routes, "LOOKUPS_AUDITED_PER_HOUR", 10)
    monkeypatch.setattr(site_routes, "SUMMARY_EVERY", 10)
    frozen = 1_625_180_000.0  # one moment: the look-ups all fall in one clock hour
    client.app.state.limits = RateLimits(rate_limit_rules(settings.with_(rate_limit_site_lookup="100/minute")),
                                         secret=TEST_SECRET, store="memory", clock=lambda: frozen)
    await sign_in(client, "door1")
    token = csrf(await get_page(client, "/staff/site"))
    for n in range(40):
        query = door["mine"]["booking"].code if n % 2 else door["theirs"]["booking"].code
        await look_up(client, token, query)
    itemised = await AuditEntry.filter(action__in=["check_in_lookup", "check_in_refused"]).count()
    counted = await AuditEntry.filter(action="site_lookups_counted").order_by("id").values_list("detail", flat=True)
    assert itemised == 10
    assert [d.split()[0] for d in counted] == ["11", "20", "30", "40"]
    assert all("site=S01" in d for d in counted)


# ---- group lists: "not found" is one answer


@pytest.fixture
async def street(db, client):
    home = await make_site("S01", "五山街")
    people = {"slot": await make_slot(home, dt.date(2021, 7, 2), "09:00", "10:00", capacity=5)}
    for key, sub in (("here", "五山街"), ("elsewhere", "龙洞街")):
        people[key] = await make_resident(home, first_dose=FIRST, name="陈小红", subdistrict=sub)
    await make_staff("subdistrict", "wushan", subdistrict="五山街")
    await sign_in(client, "wushan")
    return people


async def test_a_group_list_answers_alike_for_nobody_and_another_sub_districts_resident(client, street):
    elsewhere = street["elsewhere"][1]
    nobody = id_number(dt.date(1950, 1, 1))
    rows = f"陈小红,{elsewhere},\n陈小红,{nobody},\n".encode()
    page = await get_page(client, "/group")
    response = await client.post("/group/new", data={"csrftoken": csrf(page), "name": "一居"},
                                 files={"file": ("list.csv", rows, "text/csv")})
    assert response.status_code == 303, response.text[:500]
    group = await GroupList.get(name="一居")
    listing = await get_page(client, f"/group/{group.id}")
    rows = [(tr["class"], text(tr.find_all("td")[4])) for tr in listing.select("#rows tbody tr")]
    assert rows[0] == rows[1], rows
    assert rows[0][0] == ["status-not_found"] and "五山街" in rows[0][1] and "查无第一剂接种记录" in rows[0][1]
    assert "other_area" not in listing.decode() and "不是本街道的居民" not in text(listing)
    # Booking the list (nobody on it can be booked, so its page offers no booking form: the
    # domain's action), then its result page and CSV: the two rows alike too.
    await groups.book(client.app.state.district, await StaffUser.get(username="wushan"), group.id,
                      [street["slot"].id], key="abcdefgh12")
    result = await get_page(client, f"/group/{group.id}/result")
    outcomes = [(tr["class"], text(tr.find_all("td")[-1])) for tr in result.select("#result tbody tr")]
    assert len(outcomes) == 2 and outcomes[0] == outcomes[1], outcomes
    table = list(csv.reader(io.StringIO((await client.get(f"/group/{group.id}/result.csv")).content.decode("utf-8-sig"))))
    assert table[1][4:] == table[2][4:] and table[1][4] == "查无记录", table


async def test_the_group_row_for_another_area_is_still_audited_for_the_admin(street, district):
    user = await StaffUser.get(username="wushan")
    data = f"陈小红,{street['elsewhere'][1]},\n".encode()
    group = await groups.create_list(VAULT, user, "二居", data, "list.csv")
    page = await groups.list_page(district, user, group.id)
    assert [(r.status, r.outside) for r in page.rows] == [(groups.NOT_FOUND, True)]
    done = await groups.book(district, user, group.id, [street["slot"].id], key="abcdefgh")
    assert [m.id for m in done.outside] == [page.rows[0].member.id]


# ---- clinic accounts: a sub-district, or the whole district on purpose


async def test_a_clinic_account_without_an_area_is_refused(db):
    with pytest.raises(StaffError) as refused:
        await create_user(role="clinic", username="doctors", password=PASSWORD)
    assert refused.value.reason == "clinic_area" and "--district-wide" in str(refused.value)
    with pytest.raises(StaffError) as both:
        await create_user(role="clinic", username="doctors", password=PASSWORD, subdistrict="五山街",
                          district_wide=True)
    assert both.value.reason == "clinic_area"
    with pytest.raises(StaffError) as other_role:
        await create_user(role="subdistrict", username="street", password=PASSWORD, subdistrict="五山街",
                          district_wide=True)
    assert other_role.value.reason == "district_wide"
    assert not await StaffUser.exists()
    wide = await create_user(role="clinic", username="all-doctors", password=PASSWORD, district_wide=True)
    bound = await create_user(role="clinic", username="wushan-doctors", password=PASSWORD, subdistrict="五山")
    assert Area.of(wide).everyone and Area.of(bound) == Area(subdistrict="五山街")
    # One with neither (as rows could be written by hand) sees nobody, never the whole district.
    assert Area.of(StaffUser(role="clinic", subdistrict="", district_wide=False)) == Area(subdistrict="")


async def test_the_admin_page_refuses_a_clinic_account_without_an_area(client, db):
    await make_staff("admin", "boss")
    await sign_in(client, "boss")
    page = await get_page(client, "/admin/accounts")
    assert page.select_one("input[name=district_wide][type=checkbox]") is not None
    response = await post_form(client, "/admin/accounts/create", page, {
        "role": "clinic", "username": "doctors", "subdistrict": "",
        "password": "a long enough password", "password2": "a long enough password"}, status=422)
    assert "须选择所服务的街道，或勾选“全区”" in text(parse(response).select_one(".error-summary"))
    assert not await StaffUser.exists(username="doctors")


def test_create_user_refuses_a_clinic_account_without_an_area(tmp_path):
    import subprocess
    from pathlib import Path

    root = Path(__file__).resolve().parent.parent
    env = {**os.environ, "DATABASE_URL": f"sqlite://{tmp_path}/x.sqlite3", "SECRET_KEY": TEST_SECRET,
           "BASE_URL": "http://127.0.0.1:8000", "SMS_BACKEND": "console"}
    done = subprocess.run([sys.executable, "run.py", "create-user", "--role", "clinic", "--username", "doctors"],
                          cwd=root, env=env, input="a long enough password\n", capture_output=True,
                          text=True, timeout=60)
    assert done.returncode == 1 and "--district-wide" in done.stderr, done.stderr


@pytest.mark.parametrize("backend", DB_BACKENDS)
async def test_migration_marks_existing_clinic_accounts_without_an_area_district_wide(tmp_path, backend):
    """Made before issue 21 without a sub-district, a clinic account served the whole district:
    it keeps doing so, now explicitly; one bound to a sub-district stays bound."""
    from tortoise import Tortoise
    from tortoise.migrations.api.migrate import migrate

    url = PG_URL if backend == "postgres" else f"sqlite://{tmp_path}/old.sqlite3"
    if backend == "postgres":
        await reset_postgres(url)
    EXECUTOR_CACHE.clear()
    try:
        await migrate(config=tortoise_config(url), target="models.0012_security_pii")
        await Tortoise.close_connections()
        await Tortoise.init(config=tortoise_config(url))
        conn = Tortoise.get_connection("default")
        for name, sub in (("old-doctors", ""), ("old-wushan", "五山街")):
            await conn.execute_query(
                "INSERT INTO staff_user (username, password_hash, role, subdistrict, active, created_at, "
                f"failed_logins) VALUES ('{name}', 'x', 'clinic', '{sub}', TRUE, CURRENT_TIMESTAMP, 0)")
        await Tortoise.close_connections()
        EXECUTOR_CACHE.clear()
        await init_db(url)
        users = {u.username: u for u in await StaffUser.all()}
        assert users["old-doctors"].district_wide and Area.of(users["old-doctors"]).everyone
        assert not users["old-wushan"].district_wide
        assert Area.of(users["old-wushan"]) == Area(subdistrict="五山街")
    finally:
        await close_db()
        if backend == "postgres":
            await reset_postgres(url)  # the next test migrates it afresh
