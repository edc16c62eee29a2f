"""The resident's side of the waiting list over HTTP, without JavaScript: joining where the journey
finds no room, where they stand, leaving; the offer link, its page, confirm and "not for me"; dead
and gone offers. On SQLite and PostgreSQL."""
from __future__ import annotations

import datetime as dt
import logging
import re

import pytest

from models.booking import service, waitlist
from models.channel import Channel
from models.db.tables import Booking, Slot, SmsMessage, WaitlistEntry, WaitlistOffer
from models.people.links import issue_link
from tests.conftest import NOW, VAULT
from tests.factories import book_for, make_resident, make_site, make_slot
from tests.pages import csrf, get_page, parse, post_form, text

FIRST = dt.date(2021, 6, 5)  # may come from 6-26; day 56 is 7-31
DAY = dt.date(2021, 7, 2)  # a Friday
OFFER_LINK = re.compile(r"/o/([A-Za-z0-9_-]+)")


@pytest.fixture
async def world(db, district):
    """Every site full: the first-dose site's one window (its place booked by `owner`) and a
    window of another site in the same sub-district."""
    site = await make_site("S01", "五山街", name="五山街社区卫生服务中心", address="天河区五山路1号")
    other = await make_site("S02", "五山街", name="华工医院接种点", address="天河区五山路381号")
    slot = await make_slot(site, DAY, "09:00", "10:00", capacity=1)
    await make_slot(other, DAY, "14:00", "15:00", capacity=1, booked=1)
    owner, _ = await make_resident(site, first_dose=FIRST, name="占位人", phone="13900000009")
    booking = await book_for(district, owner, slot)
    people = {}
    for key, name, phone in (("waiting", "张三明", "13812345678"), ("second", "李四华", "13812340002"),
                             ("third", "王五芳", "13812340003")):
        resident, number = await make_resident(site, first_dose=FIRST, name=name, phone=phone)
        people[key] = (resident, number, await issue_link(resident, now=NOW))
    return dict(site=site, other=other, slot=slot, booking=booking, owner=owner, people=people)


async def verified(client, world, key="waiting"):
    resident, number, token = world["people"][key]
    response = await client.get(f"/b/{token}")
    assert response.status_code == 303 and response.headers["location"] == "/booking"
    page = await get_page(client, "/booking")
    await post_form(client, "/booking/verify", page, {"id_number": number})
    return resident


def form_values(form) -> dict:
    """What a browser sends for this form untouched: its hidden fields and checked radios."""
    values = {}
    for field in form.find_all("input"):
        if field.get("type") == "radio" and not field.has_attr("checked"):
            continue
        values[field["name"]] = field.get("value", "")
    return values


async def join_with_defaults(client, page) -> None:
    form = page.find("form", attrs={"action": "/booking/waitlist"})
    assert form is not None, "no join form on the page"
    response = await client.post("/booking/waitlist", data=form_values(form))
    assert response.status_code == 303 and response.headers["location"] == "/booking/waitlist"


async def offer_token(resident) -> str:
    sms = await SmsMessage.filter(resident_id=resident.id, kind="offer").order_by("-id").first()
    return OFFER_LINK.search(VAULT.decrypt(sms.body_cipher)).group(1)


async def test_join_from_the_no_room_page_in_one_tap_with_the_defaults(client, world):
    resident = await verified(client, world)
    page = await get_page(client, "/booking")
    assert "暂时没有可预约的时段" in text(page)
    form = page.find("form", attrs={"action": "/booking/waitlist"})
    assert form_values(form) == {"csrftoken": csrf(page), "scope": "site", "days": "any", "part": "any"}
    await join_with_defaults(client, page)
    entry = await WaitlistEntry.get(resident_id=resident.id)
    assert (entry.status, entry.scope, entry.days, entry.part) == ("waiting", "site", "any", "any")
    assert entry.channel == Channel.SMS
    status = text(await get_page(client, "/booking/waitlist"))
    assert "您已在候补名单上" in status and "只在第一剂接种点（五山街社区卫生服务中心）" in status
    assert "您排在最前面" in status and "138****5678" in status and "张*明" in status
    # back by the same link: the booking home says they are on the list
    home = await get_page(client, "/booking")
    assert home.find("a", attrs={"href": "/booking/waitlist"}) is not None
    assert home.find("form", attrs={"action": "/booking/waitlist"}) is None


async def test_join_with_choices_and_again_changes_the_one_entry(client, world):
    resident = await verified(client, world)
    page = await get_page(client, "/booking")
    token = csrf(page)
    for scope, days, part in (("any", "weekends", "afternoon"), ("subdistrict", "weekdays", "morning")):
        response = await client.post("/booking/waitlist", data={
            "csrftoken": token, "scope": scope, "days": days, "part": part})
        assert response.status_code == 303
    (entry,) = await WaitlistEntry.filter(resident_id=resident.id)
    assert (entry.scope, entry.days, entry.part) == ("subdistrict", "weekdays", "morning")
    status = await get_page(client, "/booking/waitlist")
    body = text(status)
    assert "五山街的任一接种点" in body and "只在工作日" in body and "只在上午" in body
    change = status.find("form", attrs={"action": "/booking/waitlist"})
    assert form_values(change)["scope"] == "subdistrict", "the change form starts from their choice"
    nonsense = await client.post("/booking/waitlist", data={"csrftoken": token, "scope": "x", "days": "", "part": "9"})
    assert nonsense.status_code == 303
    entry = await WaitlistEntry.get(resident_id=resident.id)
    assert (entry.scope, entry.days, entry.part) == ("site", "any", "any")


async def test_the_status_page_counts_who_is_ahead(client, world, district, clock):
    for key in ("second", "third"):
        standing = await service.stand(district, world["people"][key][0])
        await waitlist.join(district, standing, waitlist.Choice())
        clock.advance(minutes=1)
    await verified(client, world)
    await join_with_defaults(client, await get_page(client, "/booking"))
    assert "约2人" in text(await get_page(client, "/booking/waitlist"))


async def test_refused_with_the_journeys_words(client, world, district):
    site = world["site"]
    early, number = await make_resident(site, first_dose=NOW.date() - dt.timedelta(days=5), name="赵早早",
                                        phone="13812340005")
    world["people"]["early"] = (early, number, await issue_link(early, now=NOW))
    await verified(client, world, "early")
    journey = await get_page(client, "/booking")
    response = await client.post("/booking/waitlist", data={"csrftoken": csrf(journey)})
    refused = parse(response)
    assert refused.h1.text == journey.h1.text == "还未到预约时间"
    assert not await WaitlistEntry.filter(resident_id=early.id).exists()


async def test_a_booked_person_joining_is_shown_their_booking(client, world, district):
    resident = await verified(client, world)
    page = await get_page(client, "/booking")
    await client.post("/booking/waitlist", data={"csrftoken": csrf(page)})
    await service.cancel(district, world["owner"].id, world["booking"].id)  # the offer is theirs
    offer = await WaitlistOffer.get(resident_id=resident.id)
    await service.confirm_offer(district, offer.id, request_key="k")
    response = await client.post("/booking/waitlist", data={"csrftoken": csrf(page)})
    assert response.status_code == 303 and response.headers["location"] == "/booking"
    assert (await WaitlistEntry.get(resident_id=resident.id)).status == WaitlistEntry.BOOKED
    assert "您的预约" in text(await get_page(client, "/booking"))


async def test_leave_and_rejoin(client, world):
    resident = await verified(client, world)
    await join_with_defaults(client, await get_page(client, "/booking"))
    status = await get_page(client, "/booking/waitlist")
    response = await post_form(client, "/booking/waitlist/leave", status, {})
    assert response.headers["location"] == "/booking/waitlist?after=left"
    off = await get_page(client, response.headers["location"])
    assert "您已退出候补名单" in text(off)
    assert (await WaitlistEntry.get(resident_id=resident.id)).status == WaitlistEntry.LEFT
    await join_with_defaults(client, off)  # the way back on
    assert (await WaitlistEntry.get(resident_id=resident.id)).status == WaitlistEntry.WAITING


async def test_the_site_and_a_full_day_offer_the_list(client, world):
    await make_slot(world["other"], DAY, "16:00", "17:00", capacity=5)  # room elsewhere only
    await verified(client, world)
    site_page = await get_page(client, "/booking/site")
    assert "您第一剂的接种点在可预约期内已约满" in text(site_page)
    assert site_page.find("form", attrs={"action": "/booking/waitlist"}) is not None
    await post_form(client, "/booking/site", site_page, {"site": world["other"].id})
    slot_page = await get_page(client, f"/booking/slot?day={DAY.isoformat()}")
    assert slot_page.find("form", attrs={"action": "/booking/waitlist"}) is None, "this day has room"
    await make_slot(world["other"], DAY + dt.timedelta(days=1), "09:00", "10:00", capacity=1, booked=1)
    full_day = await get_page(client, f"/booking/slot?day={(DAY + dt.timedelta(days=1)).isoformat()}")
    await join_with_defaults(client, full_day)
    for url in ("/booking/site", f"/booking/slot?day={(DAY + dt.timedelta(days=1)).isoformat()}"):
        again = await get_page(client, url)  # on the list now: where they stand, not the form
        assert again.find("a", attrs={"href": "/booking/waitlist"}) is not None, url
        assert again.find("form", attrs={"action": "/booking/waitlist"}) is None, url


async def _offered(client, world, district, key="waiting"):
    """`key` on the list, the owner cancels: the offer and its token."""
    resident = await verified(client, world, key)
    await join_with_defaults(client, await get_page(client, "/booking"))
    client.cookies.clear()
    await service.cancel(district, world["owner"].id, world["booking"].id)
    return resident, await offer_token(resident)


async def test_the_offer_link_opens_the_window_and_confirm_books_it(client, world, district, caplog):
    caplog.set_level(logging.INFO)
    resident, token = await _offered(client, world, district)
    opened = await client.get(f"/o/{token}")
    assert opened.status_code == 303 and opened.headers["location"] == "/booking/offer"
    page = await get_page(client, "/booking/offer")
    body = text(page)
    assert "张*明" in body and "张三明" not in body and "五山街社区卫生服务中心" in body
    assert "天河区五山路1号" in body and "7月2日 周五" in body and "09:00-10:00" in body
    offer = await WaitlistOffer.get(resident_id=resident.id)
    held = offer.expires_at.astimezone(NOW.tzinfo).strftime("%H:%M")
    assert f"为您保留到{held}" in body
    assert page.find("input", attrs={"name": "id_number"}) is None, "no ID number asked"
    key = page.find("input", attrs={"name": "key"})["value"]
    response = await post_form(client, "/booking/offer", page, {"action": "confirm", "key": key})
    assert response.headers["location"] == "/booking/done"
    again = await post_form(client, "/booking/offer", page, {"action": "confirm", "key": key})
    assert again.headers["location"] == "/booking/done", "a double tap books once"
    done = await get_page(client, "/booking/done")
    assert done.h1.text == "预约成功" and "09:00-10:00" in text(done)
    assert done.find("a", attrs={"href": "/booking/cancel"}) is None, "changes ask for the ID number"
    (booking,) = await Booking.filter(resident_id=resident.id, status="active")
    assert booking.channel == Channel.WAITLIST and booking.slot_id == world["slot"].id
    slot = await Slot.get(id=world["slot"].id)
    assert (slot.booked, slot.held) == (1, 0)
    assert (await WaitlistOffer.get(id=offer.id)).status == WaitlistOffer.TAKEN
    # the used link is a dead link now, like a bad /b/ token
    dead = await client.get(f"/o/{token}")
    bad_b = await client.get("/b/AAAAAAAAAAAAAAAAAAAAAA")
    assert dead.status_code == bad_b.status_code == 404
    assert parse(dead).h1.text == parse(bad_b).h1.text
    served = "\n".join(r.getMessage() for r in caplog.records if r.name.startswith("booking"))
    assert token not in served and "GET /o/… 303" in served  # (the test client's own log has it)


async def test_not_for_me_offers_the_place_to_the_next_person(client, world, district, clock):
    second = world["people"]["second"][0]
    resident, token = await _offered(client, world, district)
    clock.advance(minutes=1)
    await waitlist.join(district, await service.stand(district, second), waitlist.Choice())
    await client.get(f"/o/{token}")
    page = await get_page(client, "/booking/offer")
    response = await post_form(client, "/booking/offer", page, {"action": "decline"})
    assert response.headers["location"] == "/booking/waitlist?after=declined"
    kept = await get_page(client, response.headers["location"])
    assert "我们会继续为您候补" in text(kept)
    assert kept.find("form", attrs={"action": "/booking/waitlist/leave"}) is not None
    assert (await WaitlistEntry.get(resident_id=resident.id)).status == WaitlistEntry.WAITING
    (next_offer,) = await WaitlistOffer.filter(resident_id=second.id)
    assert next_offer.status == WaitlistOffer.OPEN and next_offer.slot_id == world["slot"].id
    assert (await client.get(f"/o/{token}")).status_code == 404, "a declined offer's link is dead"
    # leaving from the offer's browser, without the ID number
    response = await post_form(client, "/booking/waitlist/leave", kept, {})
    assert (await WaitlistEntry.get(resident_id=resident.id)).status == WaitlistEntry.LEFT


async def test_forged_token_is_the_dead_link_page(client, world):
    forged = await client.get("/o/AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA")
    bad_b = await client.get("/b/AAAAAAAAAAAAAAAAAAAAAA")
    assert forged.status_code == bad_b.status_code == 404
    assert parse(forged).h1.text == parse(bad_b).h1.text
    assert (await client.get("/booking/offer")).status_code == 404
    page = await get_page(client, "/")
    posted = await client.post("/booking/offer", data={"csrftoken": csrf(page), "action": "confirm"})
    assert posted.status_code == 404
    assert not await Booking.filter(channel=Channel.WAITLIST).exists()


async def test_an_expired_offer_is_the_gone_page_and_says_they_are_still_on_the_list(client, world, district, clock):
    resident, token = await _offered(client, world, district)
    clock.advance(minutes=district.offer_minutes + 1)
    assert await waitlist.sweep(district) == 1
    opened = await client.get(f"/o/{token}")
    assert opened.status_code == 303 and token not in opened.headers["location"]
    gone = await client.get("/booking/offer")
    assert gone.status_code == 410
    body = text(parse(gone))
    assert "保留时间" in body and "您仍在候补名单上" in body
    page = parse(gone)
    posted = await client.post("/booking/offer", data={"csrftoken": csrf(page), "action": "confirm", "key": "k"})
    assert posted.status_code == 410
    assert not await Booking.filter(resident_id=resident.id).exists()


async def test_a_verified_person_reaches_their_offer_from_the_list_page(client, world, district):
    resident = await verified(client, world)
    await join_with_defaults(client, await get_page(client, "/booking"))
    await service.cancel(district, world["owner"].id, world["booking"].id)
    status = await get_page(client, "/booking/waitlist")
    assert status.find("a", attrs={"href": "/booking/offer"}) is not None
    page = await get_page(client, "/booking/offer")
    key = page.find("input", attrs={"name": "key"})["value"]
    await post_form(client, "/booking/offer", page, {"action": "confirm", "key": key})
    done = await get_page(client, "/booking/done")
    assert done.h1.text == "预约成功"
    assert done.find("a", attrs={"href": "/booking/cancel"}) is not None, "proved by ID: may change it"
    assert await Booking.filter(resident_id=resident.id, channel=Channel.WAITLIST).count() == 1
