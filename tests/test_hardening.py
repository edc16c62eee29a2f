"""Each finding of the hardening review (issue 9) as a test: hostile input gets a 4xx page in the
user's language with every safety header, never a 500; logs cannot be forged; a confirmation
books only the window chosen; every 429 says when to come back; limits count failures only."""
from __future__ import annotations

import datetime as dt
import logging

import pytest

from models.db.tables import Booking
from models.people.links import issue_link
from tests.conftest import NOW
from tests.factories import id_number, make_resident, make_site, make_slot
from tests.pages import csrf, get_page, parse, post_form, text
from tests.staff_helpers import browser_at, make_staff, sign_in

HUGE = "9223372036854775808"
SAFETY = ("content-security-policy", "x-frame-options", "referrer-policy", "cache-control")


def assert_safe(response, status: int) -> None:
    assert response.status_code == status, (response.status_code, response.text[:300])
    for header in SAFETY:
        assert header in response.headers, f"{header} missing on a {status}"
    assert response.headers["cache-control"] == "no-store"
    assert "Traceback" not in response.text


@pytest.fixture
async def world(db):
    site = await make_site("S01")
    resident, number = await make_resident(site, first_dose=dt.date(2021, 6, 5))
    slots = [await make_slot(site, dt.date(2021, 7, 2), "09:00", "10:00", capacity=5),
             await make_slot(site, dt.date(2021, 7, 2), "10:00", "11:00", capacity=5)]
    return dict(site=site, resident=resident, number=number, slots=slots,
                token=await issue_link(resident, now=NOW))


async def verified(client, world):
    await client.get(f"/b/{world['token']}")
    page = await get_page(client, "/booking")
    await post_form(client, "/booking/verify", page, {"id_number": world["number"]})


async def test_an_id_beyond_the_database_integer_is_a_plain_refusal_everywhere(client, world):
    await verified(client, world)
    page = await get_page(client, "/booking/site")
    await post_form(client, "/booking/site", page, {"site": world["site"].id})
    slot_page = await get_page(client, "/booking/slot")
    for url in ("/booking/slot", "/booking/confirm"):
        r = await client.post(url, data={"csrftoken": csrf(slot_page), "slot": HUGE, "key": "k"})
        assert r.status_code in (303, 422), (url, r.status_code)
    await make_staff("admin", "boss")
    await sign_in(client, "boss")
    for url in (f"/staff/calls/resident?r={HUGE}", f"/staff/calls/book?r={HUGE}",
                f"/staff/calls/check?r={world['resident'].id}&slot={HUGE}",
                f"/staff/calls/done?b={HUGE}", f"/staff/calls/cancelled?b={HUGE}",
                f"/admin?resident={HUGE}&before={HUGE}", "/admin?resident=-1&before=1.5"):
        r = await client.get(url)
        assert r.status_code in (200, 303, 404), (url, r.status_code)
    page = await get_page(client, "/staff/calls")
    for url, data in (("/staff/calls/hold", {"r": world["resident"].id, "slot": HUGE}),
                      ("/staff/calls/confirm", {"r": HUGE, "slot": HUGE}),
                      ("/staff/calls/cancel", {"r": HUGE, "b": HUGE}),
                      ("/staff/site/check-in", {"site": "S01", "booking": HUGE})):
        r = await client.post(url, data={"csrftoken": csrf(page), **data})
        assert r.status_code in (303, 404, 422), (url, r.status_code)


async def test_filter_text_longer_than_its_column_and_impossible_days_are_refused_gently(client, db):
    await make_staff("admin", "boss")
    await sign_in(client, "boss")
    for url in ("/admin?username=" + "x" * 500, "/admin?action=" + "y" * 500,
                "/admin?day=9999-12-31", "/admin?day=0001-01-01", "/admin?day=2021-02-30",
                "/staff/site?site=" + "Z" * 500):
        r = await client.get(url)
        assert r.status_code in (200, 404), (url, r.status_code)


async def test_multipart_and_bad_bytes_never_reach_a_500(client, db):
    page = await get_page(client, "/")
    token = csrf(page)
    ok = await client.post("/text-size", files={"csrftoken": (None, token), "next": (None, "/")})
    assert ok.status_code == 303, "a correct multipart form works like an urlencoded one"
    no_boundary = await client.post("/text-size", content=b"csrftoken=x",
                                    headers={"content-type": "multipart/form-data"})
    assert_safe(no_boundary, 400)
    bad_bytes = await client.post("/text-size", content=b"csrftoken=" + token.encode() + b"&next=\xff",
                                  headers={"content-type": "application/x-www-form-urlencoded"})
    assert_safe(bad_bytes, 400)
    assert "无法处理这个请求" in text(parse(bad_bytes))
    json = await client.post("/text-size", content=b"{}", headers={"content-type": "application/json"})
    assert_safe(json, 415)
    huge = await client.post("/text-size", content=b"next=" + b"a" * 100_000,
                             headers={"content-type": "application/x-www-form-urlencoded"})
    assert_safe(huge, 413)


async def test_the_csrf_refusal_carries_every_safety_header_in_the_users_language(client, db):
    client.cookies.set("lang", "en")
    r = await client.post("/text-size", data={"csrftoken": "forged", "next": "/"})
    assert_safe(r, 403)
    assert "This page has expired" in text(parse(r))


async def test_a_500_is_a_page_with_every_safety_header_and_no_traceback(client, db, monkeypatch):
    import web.routes.public as public

    async def broken(request):
        raise RuntimeError("something broke")

    monkeypatch.setattr(public, "render", lambda *a, **kw: broken(None))
    transport = client._transport
    transport.raise_app_exceptions = False
    r = await client.get("/")
    assert_safe(r, 500)
    assert "系统暂时出现问题" in r.text and "something broke" not in r.text


async def test_unknown_addresses_and_methods_get_a_page_not_plain_text(client, db):
    assert_safe(await client.get("/no-such-page"), 404)
    assert "找不到这个页面" in (await client.get("/no-such-page")).text
    assert_safe(await client.request("OPTIONS", "/booking"), 405)
    assert_safe(await client.delete("/booking"), 403)  # the CSRF layer answers first


async def test_control_characters_in_the_path_cannot_forge_a_log_line(client, db, caplog):
    with caplog.at_level(logging.INFO, logger="booking.access"):
        await client.get("/booking%0AGET%20/admin%20200%00")
    lines = [r.getMessage() for r in caplog.records if r.name == "booking.access"]
    assert lines and all("\n" not in line and "\x00" not in line for line in lines)
    assert any("\\x0a" in line and "\\x00" in line for line in lines)


async def test_confirm_books_only_the_window_that_was_chosen(client, world):
    await verified(client, world)
    page = await get_page(client, "/booking/site")
    await post_form(client, "/booking/site", page, {"site": world["site"].id})
    page = await get_page(client, "/booking/slot")
    chosen, other = world["slots"]
    await post_form(client, "/booking/slot", page, {"slot": chosen.id})
    check = await get_page(client, "/booking/check")
    key = check.find("input", attrs={"name": "key"})["value"]
    r = await post_form(client, "/booking/confirm", check, {"key": key, "slot": other.id})
    assert r.headers["location"] == "/booking"
    assert not await Booking.exists(), "a window never chosen is never booked"
    r = await post_form(client, "/booking/confirm", check, {"key": key, "slot": chosen.id})
    assert r.headers["location"] == "/booking/done"
    again = await post_form(client, "/booking/confirm", check, {"key": key, "slot": chosen.id})
    assert again.headers["location"] == "/booking/done", "a resubmit still lands on the booking"
    assert await Booking.filter(slot_id=chosen.id).count() == 1


async def test_every_429_says_when_to_come_back(client, world):
    for i in range(30):
        await client.get(f"/b/guess{i:018d}")
    link = await client.get("/b/guess-once-more")
    assert link.status_code == 429 and 0 < int(link.headers["retry-after"]) <= 60


async def test_residents_sharing_one_address_are_never_refused_for_succeeding(client, db):
    site = await make_site("S01")
    people = []
    for i in range(80):  # far more than the 30 unknown links an address may try a minute
        resident, number = await make_resident(site, first_dose=dt.date(2021, 6, 5),
                                               phone=f"139{i:08d}")
        people.append((await issue_link(resident, now=NOW), number))
    for token, number in people:
        client.cookies.clear()
        assert (await client.get(f"/b/{token}")).status_code == 303
        page = await get_page(client, "/booking")
        await post_form(client, "/booking/verify", page, {"id_number": number})
    for i in range(30):
        assert (await client.get(f"/b/guess{i:018d}")).status_code == 404
    assert (await client.get("/b/guess-again")).status_code == 429, "a guesser is stopped"


async def test_wrong_id_numbers_count_per_address_and_lock_the_link(client, world):
    await client.get(f"/b/{world['token']}")
    page = await get_page(client, "/booking")
    wrong = id_number()  # a valid number, someone else's
    statuses = []
    for _ in range(6):
        r = await client.post("/booking/verify", data={"csrftoken": csrf(page), "id_number": wrong})
        statuses.append(r.status_code)
    assert statuses[-1] == 423, "the link locks after its five wrong numbers"


async def test_x_forwarded_for_is_believed_only_from_a_trusted_proxy(db, settings, clock):
    from web.app import create_app

    trusting = create_app(settings.with_(trusted_proxies=("10.0.0.0/8",)), manage_db=False, clock=clock)
    async with browser_at(trusting, "10.1.2.3") as via_proxy:
        for i in range(30):
            await via_proxy.get(f"/b/guess{i:018d}", headers={"X-Forwarded-For": "198.51.100.7"})
        blocked = await via_proxy.get("/b/x", headers={"X-Forwarded-For": "198.51.100.7"})
        other = await via_proxy.get("/b/x", headers={"X-Forwarded-For": "198.51.100.8"})
    assert (blocked.status_code, other.status_code) == (429, 404), "each resident behind the proxy counts alone"
    plain = create_app(settings, manage_db=False, clock=clock)
    async with browser_at(plain, "203.0.113.50") as direct:
        for i in range(30):
            await direct.get(f"/b/g{i:018d}", headers={"X-Forwarded-For": f"198.51.100.{i}"})
        assert (await direct.get("/b/x", headers={"X-Forwarded-For": "1.2.3.4"})).status_code == 429


async def test_two_apps_in_one_process_keep_their_own_templates_and_imports(db, settings, clock):
    """create_app changes no module: a debugging app built first still reloads edited templates
    after a plain one is built (it used to switch the one shared environment), and each app waits
    for and stops only its own background imports."""
    from web.app import create_app

    debugging = create_app(settings.with_(debug=True), manage_db=False, clock=clock)
    plain = create_app(settings, manage_db=False, clock=clock)
    assert debugging.state.templates.auto_reload and not plain.state.templates.auto_reload
    assert debugging.state.import_tasks is not plain.state.import_tasks
    async with browser_at(debugging, "203.0.113.9") as browser:
        assert "<form" in (await browser.get("/staff")).text  # pages draw from its own environment


async def test_wrong_id_numbers_from_one_address_are_slowed_with_retry_after(db, settings, clock):
    from web.app import create_app

    app = create_app(settings.with_(rate_limit_verify="3/minute"), manage_db=False, clock=clock)
    site = await make_site("S01")
    statuses = []
    async with browser_at(app, "198.51.100.77") as guesser:
        for i in range(2):  # two links, so no single link's own lock is what stops them
            resident, _ = await make_resident(site, first_dose=dt.date(2021, 6, 5), phone=f"1390000{i:04d}")
            guesser.cookies.clear()
            await guesser.get(f"/b/{await issue_link(resident, now=NOW)}")
            page = await get_page(guesser, "/booking")
            for _ in range(2):
                r = await guesser.post("/booking/verify", data={"csrftoken": csrf(page), "id_number": id_number()})
                statuses.append(r.status_code)
    assert statuses == [422, 422, 422, 429]
    assert 0 < int(r.headers["retry-after"]) <= 60
