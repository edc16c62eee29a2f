"""The resident journey over HTTP, without JavaScript: link -> ID -> site -> time -> check -> confirmation."""
from __future__ import annotations

import datetime as dt

import pytest

from models.db.tables import Booking, Link, RiskArea, Slot, SmsMessage
from models.people.links import issue_link
from tests.conftest import NOW, VAULT
from tests.factories import book_for, make_resident, make_site, make_slot
from tests.pages import get_page, parse, post_form, text

FIRST = dt.date(2021, 6, 5)


@pytest.fixture
async def world(db):
    site = await make_site("S01", "五山街", name="五山街社区卫生服务中心", address="天河区五山路1号")
    other = await make_site("S02", "五山街", name="华工医院接种点", address="天河区五山路381号")
    far = await make_site("S03", "龙洞街", name="龙洞街社区卫生服务中心", address="天河区龙洞路9号")
    resident, number = await make_resident(site, first_dose=FIRST, name="张三明")
    slots = [
        await make_slot(site, dt.date(2021, 7, 2), "09:00", "10:00", capacity=5),
        await make_slot(site, dt.date(2021, 7, 2), "10:00", "11:00", capacity=1, booked=1),
        await make_slot(site, dt.date(2021, 7, 3), "14:00", "15:00", capacity=5),
        await make_slot(other, dt.date(2021, 7, 2), "09:00", "10:00", capacity=5),
    ]
    token = await issue_link(resident, now=NOW)
    return dict(site=site, other=other, far=far, resident=resident, number=number, slots=slots, token=token)


async def open_and_verify(client, world):
    response = await client.get(f"/b/{world['token']}")
    assert response.status_code == 303 and response.headers["location"] == "/booking"
    page = await get_page(client, "/booking")
    await post_form(client, "/booking/verify", page, {"id_number": world["number"]})


async def test_link_greets_with_masked_name_and_dates_only(client, world):
    response = await client.get(f"/b/{world['token']}")
    assert response.status_code == 303
    assert world["token"] not in response.headers["location"]
    page = await get_page(client, "/booking")
    body = text(page)
    assert "张*明" in body and "张三明" not in body
    assert "第二剂" in body
    assert "6月26日 周六" in body  # first dose + 21 days
    assert "7月31日 周六" in body  # first dose + 56 days
    assert "138" not in body and world["number"][-4:] not in body


async def test_pages_send_no_referrer_and_no_store(client, world):
    response = await client.get(f"/b/{world['token']}")
    assert response.headers["referrer-policy"] == "no-referrer"
    page = await client.get("/booking")
    assert page.headers["cache-control"] == "no-store"
    assert page.headers["referrer-policy"] == "no-referrer"


async def test_opening_the_link_twice_does_not_use_it_up(client, world):
    for _ in range(3):
        assert (await client.get(f"/b/{world['token']}")).status_code == 303
    assert await Link.filter(revoked=False).count() == 1


async def test_unknown_expired_and_revoked_links_get_the_same_page(client, world):
    unknown = await client.get("/b/AAAAAAAAAAAAAAAAAAAAAA")
    token2 = await issue_link(world["resident"], now=NOW)
    await Link.filter(id__not=(await Link.first()).id).update(revoked=True)
    revoked = await client.get(f"/b/{token2}")
    await Link.all().update(expires_at=dt.datetime(2020, 1, 1, tzinfo=dt.timezone.utc))
    expired = await client.get(f"/b/{world['token']}")
    assert unknown.status_code == revoked.status_code == expired.status_code == 404
    assert parse(unknown).h1.text == parse(revoked).h1.text == parse(expired).h1.text


async def test_whole_journey_books_a_place_and_queues_the_sms(client, world):
    await open_and_verify(client, world)
    site_page = await get_page(client, "/booking/site")
    keep = site_page.find("button", attrs={"class": "keep"})
    assert keep["name"] == "site" and keep["value"] == str(world["site"].id), "keeping the first-dose site is one button"
    assert "可接种期内已约满" in text(site_page)  # S03 has no slots
    await post_form(client, "/booking/site", site_page, {"site": world["site"].id})
    slot_page = await get_page(client, "/booking/slot")
    radios = {i["value"]: i for i in slot_page.find_all("input", attrs={"name": "slot"})}
    full = world["slots"][1]
    assert radios[str(full.id)].has_attr("disabled"), "a full window cannot be chosen"
    assert "09:00-10:00" in text(slot_page)
    await post_form(client, "/booking/slot", slot_page, {"slot": world["slots"][0].id})
    check = await get_page(client, "/booking/check")
    assert "五山街社区卫生服务中心" in text(check) and "7月2日 周五" in text(check)
    key = check.find("input", attrs={"name": "key"})["value"]
    response = await post_form(client, "/booking/confirm", check, {"key": key, "slot": world["slots"][0].id})
    assert response.headers["location"] == "/booking/done"
    done = await get_page(client, "/booking/done")
    body = text(done)
    booking = await Booking.get(resident=world["resident"])
    assert booking.code[:4] in body and "天河区五山路1号" in body
    for must in ("身份证", "口罩", "健康码", "体温", "一米"):
        assert must in body
    assert (await Slot.get(id=world["slots"][0].id)).booked == 1
    assert await SmsMessage.filter(resident=world["resident"], kind="confirm").count() == 1


async def test_confirm_posted_twice_gives_one_booking(client, world):
    await open_and_verify(client, world)
    site_page = await get_page(client, "/booking/site")
    await post_form(client, "/booking/site", site_page, {"site": world["site"].id})
    slot_page = await get_page(client, "/booking/slot")
    await post_form(client, "/booking/slot", slot_page, {"slot": world["slots"][0].id})
    check = await get_page(client, "/booking/check")
    data = {"key": check.find("input", attrs={"name": "key"})["value"], "slot": world["slots"][0].id}
    first = await post_form(client, "/booking/confirm", check, data)
    again = await post_form(client, "/booking/confirm", check, data)
    assert first.headers["location"] == again.headers["location"] == "/booking/done"
    assert await Booking.filter(resident=world["resident"]).count() == 1
    assert (await Slot.get(id=world["slots"][0].id)).booked == 1


async def test_wrong_id_number_gets_a_message_and_repeated_tries_lock_the_link(client, world):
    await client.get(f"/b/{world['token']}")
    page = await get_page(client, "/booking")
    wrong = world["number"][:17] + ("1" if world["number"][17] != "1" else "2")
    response = await post_form(client, "/booking/verify", page, {"id_number": wrong}, status=422)
    assert "校验码" in text(parse(response))
    other_person = "11010519491231002X"
    for tries_left in (4, 3, 2, 1):
        response = await post_form(client, "/booking/verify", page, {"id_number": other_person}, status=422)
        assert f"还可以再试{tries_left}次" in text(parse(response))
    response = await post_form(client, "/booking/verify", page, {"id_number": other_person}, status=423)
    assert "锁定" in text(parse(response))
    # Even the right number is refused while locked.
    response = await post_form(client, "/booking/verify", page, {"id_number": world["number"]}, status=423)
    assert (await client.get("/booking/site")).headers["location"] == "/booking"


async def test_full_width_digits_and_lowercase_x_are_accepted(client, db):
    site = await make_site()
    resident, number = await make_resident(site, first_dose=FIRST, number="11010519491231002X")
    token = await issue_link(resident, now=NOW)
    await make_slot(site, dt.date(2021, 7, 2))
    await client.get(f"/b/{token}")
    page = await get_page(client, "/booking")
    typed = " １１０１０５ １９４９１２３１ ００２x "
    await post_form(client, "/booking/verify", page, {"id_number": typed})
    assert (await client.get("/booking")).headers["location"] == "/booking/site"


async def book_first_slot(client, world):
    await choose_first_slot(client, world)
    check = await get_page(client, "/booking/check")
    key = check.find("input", attrs={"name": "key"})["value"]
    await post_form(client, "/booking/confirm", check, {"key": key, "slot": world["slots"][0].id})


async def test_link_opened_later_shows_the_booking_and_moves_it(client, world):
    await book_first_slot(client, world)
    client.cookies.clear()
    await open_and_verify(client, world)
    page = await get_page(client, "/booking")
    assert "您的预约" in text(page)
    site_page = await get_page(client, "/booking/site")
    await post_form(client, "/booking/site", site_page, {"site": world["site"].id})
    slot_page = await get_page(client, "/booking/slot?day=2021-07-03")
    await post_form(client, "/booking/slot", slot_page, {"slot": world["slots"][2].id})
    check = await get_page(client, "/booking/check")
    assert "原来的名额会释放" in text(check)
    key = check.find("input", attrs={"name": "key"})["value"]
    await post_form(client, "/booking/confirm", check, {"key": key, "slot": world["slots"][2].id})
    assert (await Slot.get(id=world["slots"][0].id)).booked == 0
    assert (await Slot.get(id=world["slots"][2].id)).booked == 1
    assert await Booking.filter(resident=world["resident"]).count() == 1


async def test_cancel_gives_the_place_back(client, world):
    await book_first_slot(client, world)
    page = await get_page(client, "/booking/cancel")
    response = await post_form(client, "/booking/cancel", page, {})
    assert response.headers["location"] == "/booking/cancelled"
    assert (await Slot.get(id=world["slots"][0].id)).booked == 0
    assert (await Booking.get(resident=world["resident"])).status == Booking.CANCELLED


async def test_after_second_dose_the_link_says_done_and_books_nothing(client, world):
    await open_and_verify(client, world)
    world["resident"].second_dose_date = dt.date(2021, 6, 30)
    await world["resident"].save()
    page = await get_page(client, "/booking")
    assert "已完成第二剂" in text(page)
    assert (await client.get("/booking/site")).headers["location"] == "/booking"


async def test_too_early_says_the_first_allowed_date(client, db):
    site = await make_site()
    resident, number = await make_resident(site, first_dose=dt.date(2021, 6, 28))
    token = await issue_link(resident, now=NOW)
    await client.get(f"/b/{token}")
    page = await get_page(client, "/booking")
    await post_form(client, "/booking/verify", page, {"id_number": number})
    body = text(await get_page(client, "/booking"))
    assert "还未到预约时间" in body and "7月19日" in body


async def test_restricted_area_refuses(client, world):
    await RiskArea.create(subdistrict="五山街")
    await open_and_verify(client, world)
    assert "暂停预约" in text(await get_page(client, "/booking"))


async def test_no_room_anywhere_says_when_to_try_again(client, world):
    await Slot.all().update(booked=0, capacity=0)
    await open_and_verify(client, world)
    body = text(await get_page(client, "/booking"))
    assert "暂时没有可预约的时段" in body and "明天" in body


async def test_first_site_full_shows_alternatives_same_subdistrict_first(client, world):
    await Slot.filter(site=world["site"]).update(booked=5, capacity=5)
    await open_and_verify(client, world)
    page = await get_page(client, "/booking/site")
    assert "已约满" in text(page)
    # Issue 22: the nearest site with room is one tap at the top, like the first-dose site would be.
    keep = page.find("button", class_="keep")
    assert keep["value"] == str(world["other"].id) and "华工医院接种点" in text(keep)
    assert not page.find("details", class_="other-sites").has_attr("open")
    assert not page.find("input", attrs={"name": "site", "value": str(world["other"].id)})


async def test_post_without_csrf_token_is_refused_in_plain_words(client, world):
    await client.get(f"/b/{world['token']}")
    response = await client.post("/booking/verify", data={"id_number": world["number"]})
    assert response.status_code == 403 and "页面已过期" in response.text


async def test_post_without_any_cookie_is_still_checked(client, world):
    client.cookies.clear()
    response = await client.post("/booking/confirm", data={"slot": 1})
    assert response.status_code == 403


async def test_english_is_available_and_remembered(client, world):
    response = await client.get("/lang/en?next=/booking")
    assert response.status_code == 303
    await client.get(f"/b/{world['token']}")
    page = await get_page(client, "/booking")
    assert page.html["lang"] == "en"


async def test_slot_fragment_for_htmx_and_full_page_otherwise(client, world):
    await open_and_verify(client, world)
    site_page = await get_page(client, "/booking/site")
    await post_form(client, "/booking/site", site_page, {"site": world["site"].id})
    fragment = await client.get("/booking/slot?day=2021-07-03", headers={"HX-Request": "true"})
    assert "<html" not in fragment.text and 'id="slot-picker"' in fragment.text
    assert "HX-Request" in fragment.headers["vary"]
    boosted = await client.get("/booking/slot?day=2021-07-03",
                               headers={"HX-Request": "true", "HX-Boosted": "true"})
    assert "<html" in boosted.text


async def test_guessing_tokens_is_slowed_down(client, world):
    statuses = [(await client.get(f"/b/guess{i:018d}")).status_code for i in range(32)]
    assert statuses[:30] == [404] * 30
    assert statuses[30:] == [429, 429]
    assert "请求过于频繁" in (await client.get("/b/another")).text


async def test_healthz_answers_ok(client):
    response = await client.get("/healthz")
    assert response.status_code == 200 and response.text == "ok"


async def test_static_files_are_cached_for_a_year_and_pages_never(client, world):
    page = parse(await client.get("/"))
    css = page.find("link", rel="stylesheet")["href"]
    js = [s["src"] for s in page.find_all("script")]
    assert any("htmx-1.9.12.min.js" in src for src in js)
    assert all(s.has_attr("defer") for s in page.find_all("script"))
    response = await client.get(css)
    assert "max-age=31536000" in response.headers["cache-control"]
    assert (await client.get("/")).headers["cache-control"] == "no-store"


async def choose_first_slot(client, world):
    await open_and_verify(client, world)
    site_page = await get_page(client, "/booking/site")
    await post_form(client, "/booking/site", site_page, {"site": world["site"].id})
    slot_page = await get_page(client, "/booking/slot")
    await post_form(client, "/booking/slot", slot_page, {"slot": world["slots"][0].id})


async def test_choosing_a_window_keeps_the_place_while_checking(client, world):
    await choose_first_slot(client, world)
    assert (await Slot.get(id=world["slots"][0].id)).held == 1
    assert "名额已为您保留到" in text(await get_page(client, "/booking/check"))


async def test_a_place_lost_while_away_sends_back_to_choose_again(client, world, clock, district):
    await choose_first_slot(client, world)
    clock.advance(minutes=10)
    await Slot.filter(id=world["slots"][0].id).update(capacity=1, booked=0, held=1)
    other, _ = await make_resident(world["site"], first_dose=FIRST, phone="13900002222")
    await book_for(district, other, world["slots"][0])
    response = await client.get("/booking/check")
    assert response.headers["location"] == "/booking/slot"
    assert "刚刚约满" in text(await get_page(client, "/booking/slot"))


async def test_holding_the_last_free_place_anywhere_is_not_no_room(client, db):
    """Found by the crowd test: the person's own hold made "no room anywhere" true for them."""
    site = await make_site("S01")
    slot = await make_slot(site, dt.date(2021, 7, 2), "09:00", "10:00", capacity=1)
    resident, number = await make_resident(site, first_dose=FIRST)
    world = {"token": await issue_link(resident, now=NOW), "number": number}
    await open_and_verify(client, world)
    page = await get_page(client, "/booking/site")
    await post_form(client, "/booking/site", page, {"site": site.id})
    page = await get_page(client, "/booking/slot")
    await post_form(client, "/booking/slot", page, {"slot": slot.id})
    check = await get_page(client, "/booking/check")  # 200, not a redirect to "no room"
    key = check.find("input", attrs={"name": "key"})["value"]
    r = await post_form(client, "/booking/confirm", check, {"key": key, "slot": slot.id})
    assert r.headers["location"] == "/booking/done"
    assert await Booking.filter(slot_id=slot.id, status=Booking.ACTIVE).count() == 1


# ---- issue 22: a move says it moved; the page and the SMS write a time alike; typing is kept


async def move_to_other_day(client, world, *, twice: bool = False):
    """With a booking on 7月2日 09:00: move it to 7月3日 14:00 (the confirm sent twice when
    `twice`, as a double tap does); the confirmation page."""
    site_page = await get_page(client, "/booking/site")
    await post_form(client, "/booking/site", site_page, {"site": world["site"].id})
    slot_page = await get_page(client, "/booking/slot?day=2021-07-03")
    await post_form(client, "/booking/slot", slot_page, {"slot": world["slots"][2].id})
    check = await get_page(client, "/booking/check")
    data = {"key": check.find("input", attrs={"name": "key"})["value"], "slot": world["slots"][2].id}
    for _ in range(2 if twice else 1):
        response = await post_form(client, "/booking/confirm", check, data)
        assert response.headers["location"] == "/booking/done"
    return await get_page(client, "/booking/done")


async def test_a_move_confirms_as_moved_with_the_old_and_the_new_time(client, world):
    await book_first_slot(client, world)
    first = await get_page(client, "/booking/done")
    assert first.find("h1").get_text(strip=True) == "预约成功" and "改约" not in first.find("h1").text
    done = await move_to_other_day(client, world)
    assert done.find("h1").get_text(strip=True) == "改约成功"
    said = text(done.find(class_="moved"))
    assert "7月2日 周五 09:00-10:00" in said and "7月3日 周六 14:00-15:00" in said
    assert said.index("7月2日") < said.index("7月3日"), "from the old time to the new one"
    # The SMS of the move says it moved, not that a second booking was made.
    sms = await SmsMessage.filter(resident=world["resident"]).order_by("id")
    assert [m.kind for m in sms] == ["confirm", "move"]
    assert sms[1].template == "change" and "已改约" in VAULT.decrypt(sms[1].body_cipher)
    # Seen again later, it is just "your booking".
    assert (await get_page(client, "/booking")).find("h1").get_text(strip=True) == "您的预约"


async def test_a_move_confirmed_twice_still_says_moved(client, world):
    await book_first_slot(client, world)
    done = await move_to_other_day(client, world, twice=True)
    assert done.find("h1").get_text(strip=True) == "改约成功"
    assert await SmsMessage.filter(resident=world["resident"], kind="move").count() == 1


async def test_a_new_booking_after_a_cancel_is_not_called_a_move(client, world):
    await book_first_slot(client, world)
    await move_to_other_day(client, world)
    page = await get_page(client, "/booking/cancel")
    await post_form(client, "/booking/cancel", page, {})
    await choose_first_slot(client, world)
    check = await get_page(client, "/booking/check")
    key = check.find("input", attrs={"name": "key"})["value"]
    await post_form(client, "/booking/confirm", check, {"key": key, "slot": world["slots"][0].id})
    done = await get_page(client, "/booking/done")
    assert done.find("h1").get_text(strip=True) == "预约成功" and not done.find(class_="moved")


@pytest.mark.parametrize("lang", ["zh", "en"])
async def test_the_page_and_the_sms_write_the_time_the_same_way(client, world, lang):
    if lang == "en":
        await client.get("/lang/en?next=/")
    await book_first_slot(client, world)
    done = await get_page(client, "/booking/done")
    sms = await SmsMessage.get(resident=world["resident"], kind="confirm")
    body = VAULT.decrypt(sms.body_cipher)
    shown = done.find("dt", string="时间" if lang == "zh" else "Time").find_next("dd").get_text(strip=True)
    assert shown == "09:00-10:00" and shown in body
    assert "上午" not in text(done) and " am" not in text(done)


async def test_a_mistyped_id_number_stays_in_the_form_to_correct(client, world):
    await client.get(f"/b/{world['token']}")
    page = await get_page(client, "/booking")
    typo = world["number"][:17] + ("1" if world["number"][17] != "1" else "2")
    response = await post_form(client, "/booking/verify", page, {"id_number": typo}, status=422)
    assert parse(response).find("input", id="id_number")["value"] == typo
    again = await get_page(client, "/booking")  # a new visit of the page starts empty
    assert not again.find("input", id="id_number").has_attr("value")
