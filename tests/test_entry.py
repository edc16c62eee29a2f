"""The public way in without a link: phone -> SMS code -> everyone on that phone -> ID number ->
the SMS link's journey; find my booking; every refusal, and an unknown number answered exactly
like a known one."""
from __future__ import annotations

import datetime as dt
import json
import re

import httpx
import pytest

from models.db.tables import Booking, Link, LoginCode, SmsMessage
from models.channels import entry
from tests.conftest import NOW, VAULT
from tests.factories import make_resident, make_site, make_slot
from tests.pages import csrf, get_page, parse, post_form, text

FIRST = dt.date(2021, 6, 5)
FAMILY_PHONE = "13912345678"
UNKNOWN_PHONE = "13787654321"


@pytest.fixture
async def world(db):
    """A grandmother, her son and his wife registered with one phone; a neighbour on another."""
    site = await make_site("S01", "五山街", name="五山街社区卫生服务中心", address="天河区五山路1号")
    slots = [await make_slot(site, dt.date(2021, 7, 2), "09:00", "10:00", capacity=5),
             await make_slot(site, dt.date(2021, 7, 3), "14:00", "15:00", capacity=5)]
    people = {}
    for key, name, born in (("grandma", "黄桂英", dt.date(1945, 2, 3)),
                            ("son", "李建国", dt.date(1970, 8, 9)),
                            ("wife", "陈丽华", dt.date(1972, 11, 20))):
        people[key] = await make_resident(site, first_dose=FIRST, name=name, born=born,
                                          phone=FAMILY_PHONE)
    people["neighbour"] = await make_resident(site, first_dose=FIRST, name="王五芳",
                                              phone="13800000002")
    return {"site": site, "slots": slots, "people": people}


def browser(client, address: str = "203.0.113.7") -> httpx.AsyncClient:
    """Another browser on the same app (its own cookies; its own address for the limits)."""
    transport = httpx.ASGITransport(app=client.app, client=(address, 5000))
    return httpx.AsyncClient(transport=transport, base_url="http://testserver")


async def sent_code(phone: str) -> str:
    """The code in the newest log-in SMS to the phone, as the outbox holds it."""
    msg = await SmsMessage.filter(phone_hash=VAULT.keyed_hash(phone), template="login_code").order_by("-id").first()
    assert msg is not None, "no log-in code SMS in the outbox"
    return json.loads(VAULT.decrypt(msg.params_cipher))["code"]


async def ask_code(c, phone: str, status: int = 303):
    page = await get_page(c, "/entry")
    return await post_form(c, "/entry", page, {"phone": phone}, status=status)


async def type_code(c, code: str, status: int = 303):
    page = await get_page(c, "/entry/code")
    return await post_form(c, "/entry/code", page, {"code": code}, status=status)


def wrong(code: str) -> str:
    return f"{(int(code) + 1) % 10 ** 6:06d}"


async def sign_in(c, phone: str = FAMILY_PHONE):
    await ask_code(c, phone)
    response = await type_code(c, await sent_code(phone))
    assert response.headers["location"] == "/entry/family"


def normalised(response) -> str:
    """A page's text with what names the number itself (the masked phone) taken out."""
    return re.sub(r"1[3-9]\d\*{4}\d{4}", "PHONE", text(parse(response)))


# ---- the code: sent, refused, and the same answers for a number nobody registered


async def test_a_known_number_gets_its_code_by_sms_in_the_outbox(client, world):
    response = await ask_code(client, " 139 1234 5678 ")
    assert response.headers["location"] == "/entry/code"
    msg = await SmsMessage.get(template="login_code")
    assert msg.resident_id is None and msg.phone_masked == "139****5678" and msg.priority == 0
    code = await sent_code(FAMILY_PHONE)
    assert re.fullmatch(r"\d{6}", code) and code in VAULT.decrypt(msg.body_cipher)
    assert FAMILY_PHONE not in response.headers.get("set-cookie", ""), "the number is sealed"
    page = await get_page(client, "/entry/code")
    assert "139****5678" in text(page) and FAMILY_PHONE not in str(page)
    row = await LoginCode.get()
    assert code not in row.code_hash and row.expires_at - row.created_at == dt.timedelta(minutes=5)


async def test_not_a_mobile_number_is_refused_in_plain_words(client, world):
    for typed in ("", "12345", "02012345678", "1391234567x"):
        response = await ask_code(client, typed, status=422)
        assert "11位" in text(parse(response))
    assert await LoginCode.all().count() == 0 and await SmsMessage.all().count() == 0


async def walk_every_refusal(c, clock, phone: str, code_of) -> list[tuple[int, str]]:
    """Ask, mistype, wait too little, guess wrong until dead, let a code expire: every answer."""
    seen = []

    async def note(response):
        seen.append((response.status_code, normalised(response) if response.status_code != 303
                     else response.headers["location"]))

    await note(await ask_code(c, phone))
    await note(await c.get("/entry/code"))
    await note(await ask_code(c, phone))  # again within the minute: that code is on its way
    await note(await c.get("/entry/code?wait=60"))
    await note(await type_code(c, "12a45", status=422))  # a typo does not use a try
    first = await code_of(phone)
    for _ in range(4):
        await note(await type_code(c, wrong(first), status=422))
    await note(await type_code(c, wrong(first), status=422))  # the fifth: dead
    await note(await type_code(c, first, status=422))  # even the right one, now
    clock.advance(seconds=61)
    page = await get_page(c, "/entry/code")
    await note(await post_form(c, "/entry/resend", page, {}))
    second = await code_of(phone)
    clock.advance(minutes=5, seconds=1)
    await note(await type_code(c, second, status=422))  # expired
    return seen


async def test_an_unknown_number_gets_exactly_the_answers_a_known_one_does(client, world, clock):
    async def real_code(phone):
        return await sent_code(phone)

    async def some_code(phone):  # nobody can know an unknown number's code: there is none
        return "314159"

    known = browser(client, "198.51.100.1")
    unknown = browser(client, "198.51.100.2")
    start = clock.moment
    known_answers = await walk_every_refusal(known, clock, FAMILY_PHONE, real_code)
    clock.moment = start
    unknown_answers = await walk_every_refusal(unknown, clock, UNKNOWN_PHONE, some_code)
    assert known_answers == unknown_answers
    statuses = [status for status, _ in known_answers]
    assert statuses == [303, 200, 303, 200, 422, 422, 422, 422, 422, 422, 422, 303, 422]
    pages = [page for _, page in known_answers]
    assert "6位数字" in pages[4]
    assert [f"还可以再试{n}次" in pages[5 + i] for i, n in enumerate((4, 3, 2, 1))] == [True] * 4
    assert "次数过多" in pages[9] and "次数过多" in pages[10]
    assert "秒后再试" in pages[3]
    assert "已过期" in pages[12]
    # Only the known number got SMS; both have the same code rows, which tell nothing apart.
    assert await SmsMessage.filter(phone_hash=VAULT.keyed_hash(UNKNOWN_PHONE)).count() == 0
    assert await SmsMessage.filter(phone_hash=VAULT.keyed_hash(FAMILY_PHONE)).count() == 2
    for phone in (FAMILY_PHONE, UNKNOWN_PHONE):
        rows = await LoginCode.filter(phone_hash=VAULT.keyed_hash(phone)).order_by("id")
        assert [(r.tries, r.used) for r in rows] == [(5, False), (0, False)]
        assert all(len(r.code_hash) == 64 for r in rows)
    for c in (known, unknown):
        await c.aclose()


async def test_one_code_a_minute_per_phone_even_from_another_browser(client, world, clock):
    await ask_code(client, FAMILY_PHONE)
    other = browser(client, "198.51.100.9")
    response = await ask_code(other, FAMILY_PHONE)
    assert response.headers["location"] == "/entry/code?wait=60"
    page = await get_page(other, response.headers["location"])
    assert "60秒后再试" in text(page)
    assert await SmsMessage.filter(template="login_code").count() == 1
    clock.advance(seconds=59)
    await ask_code(other, FAMILY_PHONE)
    assert await SmsMessage.filter(template="login_code").count() == 1
    clock.advance(seconds=2)
    await ask_code(other, FAMILY_PHONE)
    assert await SmsMessage.filter(template="login_code").count() == 2
    await other.aclose()


async def test_only_the_newest_code_counts_and_each_is_good_once(client, world, clock):
    await ask_code(client, FAMILY_PHONE)
    old = await sent_code(FAMILY_PHONE)
    clock.advance(seconds=61)
    page = await get_page(client, "/entry/code")
    await post_form(client, "/entry/resend", page, {})
    new = await sent_code(FAMILY_PHONE)
    if old != new:
        response = await type_code(client, old, status=422)
        assert "不正确" in text(parse(response))
    await type_code(client, new)
    other = browser(client, "198.51.100.3")
    await ask_code(other, FAMILY_PHONE)  # within the minute: no new code, the code page all the same
    response = await type_code(other, new, status=422)
    assert "已经用过" in text(parse(response))
    await other.aclose()


async def test_guesses_sent_all_at_once_get_no_more_than_five_tries(db, district):
    await make_resident(await make_site(), first_dose=FIRST, phone=FAMILY_PHONE)
    await entry.request_code(district, FAMILY_PHONE, now=NOW)
    code = await sent_code(FAMILY_PHONE)
    guesses = [f"{n:06d}" for n in range(20) if f"{n:06d}" != code]
    import asyncio

    results = await asyncio.gather(*(entry.check_code(district, FAMILY_PHONE, g, now=NOW)
                                     for g in guesses), return_exceptions=True)
    assert all(isinstance(r, entry.EntryRefused) for r in results)
    assert (await LoginCode.get()).tries == 5
    with pytest.raises(entry.EntryRefused) as refused:
        await entry.check_code(district, FAMILY_PHONE, code, now=NOW)
    assert refused.value.reason == "too_many"


async def test_the_code_and_its_sms_roll_back_together(db, district, monkeypatch):
    await make_resident(await make_site(), first_dose=FIRST, phone=FAMILY_PHONE)

    async def broken(*args, **kw):
        raise RuntimeError("outbox unavailable")

    monkeypatch.setattr(entry, "queue", broken)
    with pytest.raises(RuntimeError):
        await entry.request_code(district, FAMILY_PHONE, now=NOW)
    assert await LoginCode.all().count() == 0, "no code row without its SMS"


# ---- the family on one phone


async def book_through_the_journey(c, slot_id: int) -> str:
    """From the booking home (verified) to the confirmation; the booking code shown."""
    assert (await c.get("/booking")).headers["location"] == "/booking/site"
    site_page = await get_page(c, "/booking/site")
    await post_form(c, "/booking/site", site_page,
                    {"site": site_page.find("button", class_="keep")["value"]})
    slot_page = await get_page(c, "/booking/slot")
    await post_form(c, "/booking/slot", slot_page, {"slot": slot_id})
    check = await get_page(c, "/booking/check")
    await post_form(c, "/booking/confirm", check,
                    {"key": check.find("input", attrs={"name": "key"})["value"], "slot": slot_id})
    done = await get_page(c, "/booking/done")
    assert "预约成功" in text(done)
    return done


async def test_a_family_of_three_on_one_phone_each_book_with_their_own_id(client, world):
    await sign_in(client)
    family = await get_page(client, "/entry/family")
    body = text(family)
    assert ["黄*英", "李*国", "陈*华"] == [p.find(class_="person-name").contents[0].strip()
                                         for p in family.find_all(class_="person")]
    assert "王*芳" not in body, "only the people of this phone"
    assert FAMILY_PHONE not in body and "139****5678" not in body
    for key in ("grandma", "son", "wife"):
        resident, number = world["people"][key]
        family = await get_page(client, "/entry/family")
        link = family.find("a", href=f"/entry/person?r={resident.id}")
        assert link is not None and "未预约" in text(link.find_parent("li"))
        person = await get_page(client, link["href"])
        assert "确认" in text(person)
        response = await post_form(client, "/entry/person", person, {"r": resident.id, "id_number": number})
        assert response.headers["location"] == "/booking"
        done = await book_through_the_journey(client, world["slots"][0].id)
        assert done.find("a", href="/entry/family"), "the done page offers the next person"
    family = await get_page(client, "/entry/family")
    assert text(family).count("已预约") == 3
    assert await Booking.filter(status=Booking.ACTIVE).count() == 3
    for key in ("grandma", "son", "wife"):
        resident, _ = world["people"][key]
        confirmations = await SmsMessage.filter(resident_id=resident.id, kind="confirm")
        assert len(confirmations) == 1
        # they came in without a link: the confirmation carries one, to see, move or cancel
        assert "/b/" in VAULT.decrypt(confirmations[0].body_cipher)
        assert await Booking.filter(resident_id=resident.id, channel="phone").count() == 1


async def test_wrong_id_numbers_lock_the_asker_out_not_the_persons_sms_link(client, world):
    await sign_in(client)
    resident, number = world["people"]["son"]
    person = await get_page(client, f"/entry/person?r={resident.id}")
    typo = number[:17] + ("1" if number[17] != "1" else "2")
    response = await post_form(client, "/entry/person", person, {"r": resident.id, "id_number": typo}, status=422)
    assert "校验码" in text(parse(response))
    _, someone_else = world["people"]["wife"]
    for left in (4, 3, 2, 1):
        response = await post_form(client, "/entry/person", person,
                                   {"r": resident.id, "id_number": someone_else}, status=422)
        assert f"还可以再试{left}次" in text(parse(response))
    response = await post_form(client, "/entry/person", person,
                               {"r": resident.id, "id_number": someone_else}, status=423)
    assert "锁定" in text(parse(response))
    response = await post_form(client, "/entry/person", person,
                               {"r": resident.id, "id_number": number}, status=423)
    # Issue 21: the asker (this phone, for this person) is locked out; the person's own SMS
    # link is not: whoever holds the phone cannot lock a family member out of their booking.
    assert all(link.locked_until is None and link.failures == 0
               for link in await Link.filter(resident_id=resident.id))


async def test_nobody_outside_the_phone_can_be_chosen(client, world):
    await sign_in(client)
    neighbour, number = world["people"]["neighbour"]
    assert (await client.get(f"/entry/person?r={neighbour.id}")).headers["location"] == "/entry/family"
    page = await get_page(client, "/entry/family")
    response = await client.post("/entry/person", data={"csrftoken": csrf(page), "r": neighbour.id,
                                                       "id_number": number})
    assert response.headers["location"] == "/entry/family"
    assert (await client.get("/booking")).status_code == 404, "no journey was started"


async def test_without_a_proved_phone_the_family_pages_send_you_to_the_start(client, world, clock):
    for url in ("/entry/family", "/entry/person?r=1", "/entry/code"):
        assert (await client.get(url)).headers["location"] == "/entry"
    await sign_in(client)
    clock.advance(minutes=entry.PHONE_SESSION_MINUTES)
    assert (await client.get("/entry/family")).headers["location"] == "/entry"
    start = await get_page(client, "/entry")
    assert not start.find("a", href="/entry/family")


async def test_leaving_forgets_the_phone(client, world):
    await sign_in(client)
    page = await get_page(client, "/entry/family")
    response = await post_form(client, "/entry/leave", page, {})
    assert response.headers["location"] == "/"
    assert (await client.get("/entry/family")).headers["location"] == "/entry"


async def test_an_sms_link_opened_later_keeps_the_phone_for_the_family(client, world):
    from models.people.links import issue_link

    await sign_in(client)
    resident, number = world["people"]["grandma"]
    token = await issue_link(resident, now=NOW)
    await client.get(f"/b/{token}")
    page = await get_page(client, "/booking")
    await post_form(client, "/booking/verify", page, {"id_number": number})
    assert (await client.get("/entry/family")).status_code == 200


# ---- find my booking


async def booked(world, key: str, district) -> Booking:
    from tests.factories import book_for

    resident, _ = world["people"][key]
    return await book_for(district, resident, world["slots"][0], NOW)


async def test_find_my_booking_shows_moves_and_cancels_it(client, world, district):
    booking = await booked(world, "son", district)
    _, number = world["people"]["son"]
    page = await get_page(client, "/find")
    typed = f" {booking.code[:4].lower()}-{booking.code[4:]} "
    response = await post_form(client, "/find", page, {"booking_code": typed, "id_number": number})
    assert response.headers["location"] == "/booking"
    home = await get_page(client, "/booking")
    assert "您的预约" in text(home) and booking.code[:4] in text(home)
    # Move it to the other day.
    site_page = await get_page(client, "/booking/site")
    await post_form(client, "/booking/site", site_page, {"site": world["site"].id})
    slot_page = await get_page(client, "/booking/slot?day=2021-07-03")
    await post_form(client, "/booking/slot", slot_page, {"slot": world["slots"][1].id})
    check = await get_page(client, "/booking/check")
    await post_form(client, "/booking/confirm", check,
                    {"key": check.find("input", attrs={"name": "key"})["value"], "slot": world["slots"][1].id})
    moved = await Booking.get(id=booking.id)
    assert moved.slot_id == world["slots"][1].id and moved.code == booking.code
    cancel = await get_page(client, "/booking/cancel")
    await post_form(client, "/booking/cancel", cancel, {})
    assert (await Booking.get(id=booking.id)).status == Booking.CANCELLED


async def test_no_such_code_and_someone_elses_id_number_get_the_same_answer(client, world, district):
    booking = await booked(world, "son", district)
    _, wife_number = world["people"]["wife"]
    page = await get_page(client, "/find")
    mismatch = await post_form(client, "/find", page, {"booking_code": booking.code,
                                                      "id_number": wife_number}, status=422)
    other = "".join("A" if ch != "A" else "C" for ch in booking.code)
    unknown = await post_form(client, "/find", page, {"booking_code": other, "id_number": wife_number},
                              status=422)
    assert text(parse(mismatch)) == text(parse(unknown))
    assert "没有找到" in text(parse(unknown))
    bad = await post_form(client, "/find", page, {"booking_code": "OO00-1111", "id_number": wife_number},
                          status=422)
    assert "8位" in text(parse(bad))
    typo = await post_form(client, "/find", page, {"booking_code": booking.code,
                                                  "id_number": wife_number[:17] + "Y"}, status=422)
    assert "身份证" in text(parse(typo))
    assert (await client.get("/booking")).status_code == 404


async def test_a_cancelled_booking_is_not_found(client, world, district):
    from models.booking import service

    booking = await booked(world, "son", district)
    resident, number = world["people"]["son"]
    await service.cancel(district, resident.id, booking.id)
    page = await get_page(client, "/find")
    response = await post_form(client, "/find", page, {"booking_code": booking.code, "id_number": number},
                               status=422)
    assert "没有找到" in text(parse(response))


# ---- limits per address


def browser_on(app, address: str) -> httpx.AsyncClient:
    return httpx.AsyncClient(transport=httpx.ASGITransport(app=app, client=(address, 1)),
                             base_url="http://testserver")


async def test_code_requests_and_wrong_codes_are_limited_per_address(world, settings, clock):
    from web.app import create_app

    app = create_app(settings.with_(rate_limit_sms_code="2/hour", rate_limit_entry="3/minute"),
                     manage_db=False, clock=clock)
    asker = browser_on(app, "198.51.100.50")
    await ask_code(asker, FAMILY_PHONE)
    await ask_code(asker, UNKNOWN_PHONE)  # unknown or not, each request counts
    response = await ask_code(asker, "13800000002", status=429)
    assert int(response.headers["retry-after"]) > 60 and "分钟后再试" in text(parse(response))
    assert await LoginCode.all().count() == 2
    await ask_code(browser_on(app, "198.51.100.51"), "13800000002")  # another address is not held up

    guesser = browser_on(app, "198.51.100.52")
    await ask_code(guesser, UNKNOWN_PHONE)
    await type_code(guesser, "12 3", status=422)  # a typo is not counted
    for _ in range(3):
        await type_code(guesser, "000000", status=422)
    response = await type_code(guesser, "000000", status=429)
    assert int(response.headers["retry-after"]) >= 1
    for c in (asker, guesser):
        await c.aclose()


# ---- pages people open first


async def test_the_start_page_leads_to_the_phone_way_in_and_to_find_my_booking(client, db):
    start = await get_page(client, "/")
    assert start.find("a", href="/entry") and start.find("a", href="/find")
    page = await get_page(client, "/entry")
    assert page.find("input", attrs={"name": "phone", "inputmode": "tel"})
    assert page.find("a", href="/find")


# ---- issue 22: the family link only when there is family; what was typed stays in the form


async def test_someone_alone_on_the_phone_is_not_offered_to_book_for_others(client, world):
    neighbour, number = world["people"]["neighbour"]
    await sign_in(client, "13800000002")
    person = await get_page(client, f"/entry/person?r={neighbour.id}")
    await post_form(client, "/entry/person", person, {"r": neighbour.id, "id_number": number})
    done = await book_through_the_journey(client, world["slots"][0].id)
    assert not done.find("a", href="/entry/family") and "为这个手机号的其他人预约" not in text(done)
    page = await get_page(client, "/booking/cancel")
    await post_form(client, "/booking/cancel", page, {})
    assert not (await get_page(client, "/booking/cancelled")).find("a", href="/entry/family")


async def test_the_family_link_is_offered_beside_a_refusal_and_a_cancel_too(client, world, district):
    await booked(world, "son", district)
    await sign_in(client)
    resident, number = world["people"]["son"]
    person = await get_page(client, f"/entry/person?r={resident.id}")
    await post_form(client, "/entry/person", person, {"r": resident.id, "id_number": number})
    home = await get_page(client, "/booking")
    assert "您的预约" in text(home) and home.find("a", href="/entry/family")
    page = await get_page(client, "/booking/cancel")
    await post_form(client, "/booking/cancel", page, {})
    assert (await get_page(client, "/booking/cancelled")).find("a", href="/entry/family")


def typed(response, field: str) -> str | None:
    return parse(response).find("input", id=field).get("value")


async def test_find_keeps_the_code_and_the_id_number_after_every_error(client, world, district):
    booking = await booked(world, "son", district)
    _, number = world["people"]["son"]
    page = await get_page(client, "/find")
    # A mistyped code: the right ID number is not lost, and the page says which letters never occur.
    bad = await post_form(client, "/find", page, {"booking_code": "OO00-1111", "id_number": number},
                          status=422)
    assert typed(bad, "booking_code") == "OO00-1111" and typed(bad, "id_number") == number
    said = text(parse(bad).find(class_="error-summary"))
    assert "3、4、7、9" in said and "O" in said and "I" in said and "B、D、G、I、L、O" in said
    # Not found: both stay, to check one character at a time.
    other = "".join("A" if ch != "A" else "C" for ch in booking.code)
    missing = await post_form(client, "/find", page, {"booking_code": other, "id_number": number},
                              status=422)
    assert typed(missing, "booking_code") == other and typed(missing, "id_number") == number
    # A mistyped ID number: the code stays too.
    typo = await post_form(client, "/find", page, {"booking_code": booking.code,
                                                  "id_number": number[:17] + "Y"}, status=422)
    assert typed(typo, "booking_code") == booking.code and typed(typo, "id_number") == number[:17] + "Y"
    assert number not in str(missing.headers) and number not in str(missing.url)
    assert not (await get_page(client, "/find")).find("input", id="id_number").get("value")


async def test_find_says_which_letters_a_code_never_has_in_english_too(client, world):
    await client.get("/lang/en?next=/")
    page = await get_page(client, "/find")
    bad = await post_form(client, "/find", page, {"booking_code": "OOOO-1111", "id_number": "x"},
                          status=422)
    said = text(parse(bad).find(class_="error-summary"))
    assert "3, 4, 7, 9" in said and "B, D, G, I, L, O, Q, S, U, V, Z" in said


async def test_the_phone_code_and_id_number_forms_keep_what_was_typed(client, world):
    response = await ask_code(client, "1391234567x", status=422)
    assert typed(response, "phone") == "1391234567x"
    await ask_code(client, FAMILY_PHONE)
    response = await type_code(client, "12a45", status=422)
    assert typed(response, "code") == "12a45"
    code = await sent_code(FAMILY_PHONE)
    response = await type_code(client, wrong(code), status=422)
    assert typed(response, "code") == wrong(code)
    await type_code(client, code)
    resident, number = world["people"]["son"]
    person = await get_page(client, f"/entry/person?r={resident.id}")
    mistyped = number[:17] + ("1" if number[17] != "1" else "2")
    response = await post_form(client, "/entry/person", person,
                               {"r": resident.id, "id_number": mistyped}, status=422)
    assert typed(response, "id_number") == mistyped
    _, wife_number = world["people"]["wife"]
    response = await post_form(client, "/entry/person", person,
                               {"r": resident.id, "id_number": wife_number}, status=422)
    assert typed(response, "id_number") == wife_number
