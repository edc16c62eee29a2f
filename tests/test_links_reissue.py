"""Personal links re-issued: for one person (the old link refused from then on), for everyone whose
link expired without a booking, and with the SMS of a booking made by the call centre."""
from __future__ import annotations

import asyncio
import dataclasses
import datetime as dt
import re

import pytest

from models.booking import service
from models.db.tables import AuditEntry, Link, Resident, Site, SmsMessage
from models.messaging import wording
from models.people.links import issue_link
from tests.conftest import NOW, VAULT
from tests.factories import book_for, make_resident, make_site, make_slot
from tests.pages import get_page, parse, post_form, text
from tests.staff_helpers import browser_at, make_staff, sign_in

FIRST = dt.date(2021, 6, 1)
LINK = re.compile(r"https?://[^/]+(/b/[A-Za-z0-9_-]+)")


def link_in(message: SmsMessage) -> str:
    """The path of the personal link an SMS carries."""
    found = LINK.search(VAULT.decrypt(message.body_cipher))
    assert found, VAULT.decrypt(message.body_cipher)
    return found.group(1)


async def opens(client, path: str, number: str) -> bool:
    """Open a link and prove who you are, as the resident would: True when it gets them in."""
    client.cookies.clear()
    response = await client.get(path)
    if response.status_code != 303:
        assert response.status_code == 404 and "链接" in response.text
        return False
    page = await get_page(client, "/booking")
    await post_form(client, "/booking/verify", page, {"id_number": number})
    return True


async def test_a_reissued_link_refuses_the_old_one_and_the_new_one_opens(client, db):
    site = await make_site("TH01")
    await make_slot(site, dt.date(2021, 7, 2))
    resident, number = await make_resident(site, first_dose=FIRST, phone="13812345678")
    old = await issue_link(resident, now=NOW)
    await make_staff("admin", "boss")
    # The resident has the old link open in their own browser while the admin re-issues it.
    async with browser_at(client.app, "198.51.100.4") as phone:
        assert await opens(phone, f"/b/{old}", number)

        await sign_in(client, "boss")
        page = await get_page(client, "/admin/links")
        response = await post_form(client, "/admin/links/search", page, {"q": "138 1234 5678"}, status=200)
        found = parse(response)
        assert [tr.td.get_text(strip=True) for tr in found.select("#link-results tbody tr")] == ["张*明"]
        assert "13812345678" not in response.text
        response = await post_form(client, "/admin/links/reissue", found, {"r": str(resident.id)})
        done = await get_page(client, response.headers["location"])
        assert "张*明（138****5678）的旧链接已作废" in text(done)

        message = await SmsMessage.get(kind="reissue")
        assert message.resident_id == resident.id
        assert len(VAULT.decrypt(message.body_cipher)) <= wording.MAX_CHARS
        refused = await phone.get("/booking")  # the session opened with the old link ends
        assert refused.status_code == 404
        assert not await opens(phone, f"/b/{old}", number)
        assert await opens(phone, link_in(message), number)
        assert (await phone.get("/booking/site")).status_code == 200

    entry = await AuditEntry.get(action="reissue_link")
    assert entry.resident_id == resident.id and number not in entry.detail


async def test_an_admin_reissues_a_link_from_the_agents_card(client, db):
    site = await make_site("TH01")
    resident, _ = await make_resident(site, first_dose=FIRST)
    await issue_link(resident, now=NOW)
    await make_staff("admin", "boss")
    await sign_in(client, "boss")
    card = await get_page(client, f"/staff/calls/resident?r={resident.id}")
    form = card.find("form", action="/admin/links/reissue")
    fields = {i["name"]: i["value"] for i in form.find_all("input") if i["name"] != "csrftoken"}
    assert fields == {"r": str(resident.id), "back": "card"}
    response = await post_form(client, "/admin/links/reissue", card, fields)
    back = await get_page(client, response.headers["location"])
    assert "新链接已通过短信发出" in text(back)
    assert await Link.filter(resident_id=resident.id, revoked=False).count() == 1
    assert await SmsMessage.filter(kind="reissue").count() == 1


async def test_reissuing_expired_links_only_touches_people_whose_link_expired_without_a_booking(
        client, db, district):
    site = await make_site("TH01")
    slot = await make_slot(site, dt.date(2021, 7, 2))
    phones = iter(f"136000000{n:02d}" for n in range(20))
    long_ago = NOW - dt.timedelta(days=70)  # links last 60 days
    people = {}
    for key in ("expired", "expired_booked", "expired_and_live", "expired_vaccinated", "live", "no_link"):
        people[key], _ = await make_resident(site, first_dose=FIRST, phone=next(phones))
        if key != "no_link":
            await issue_link(people[key], now=NOW if key == "live" else long_ago)
    await issue_link(people["expired_and_live"], now=NOW)
    await book_for(district, people["expired_booked"], slot)
    await Resident.filter(id=people["expired_vaccinated"].id).update(second_dose_date=dt.date(2021, 6, 25))
    await SmsMessage.all().delete()
    await make_staff("admin", "boss")
    await sign_in(client, "boss")

    page = await get_page(client, "/admin/links")
    assert "链接已过期、没有预约、也没有接种第二剂的：1位" in text(page)
    response = await post_form(client, "/admin/links/expired", page, {"expected": "1"})
    await asyncio.gather(*list(client.app.state.outreach_tasks))
    assert "完成：1条短信" in text(await get_page(client, response.headers["location"]))

    messages = await SmsMessage.all()
    assert [(m.kind, m.resident_id) for m in messages] == [("reissue", people["expired"].id)]
    links = await Link.filter(resident_id=people["expired"].id).order_by("id")
    assert [link.revoked for link in links] == [True, False]
    for key in ("expired_booked", "expired_vaccinated"):  # left exactly as they were
        assert [link.revoked for link in await Link.filter(resident_id=people[key].id)] == [False]
    assert (await AuditEntry.get(action="reissue_expired")).detail == "expired links, 1 due: 1 sent"
    assert "没有接种第二剂的：0位" in text(await get_page(client, "/admin/links"))


@pytest.fixture
async def phone_booking(db, district):
    """A caller booked by the call centre (they never had a link), and the SMS they get."""
    site = await make_site("TH01", name="五山街社区卫生服务中心")
    slot = await make_slot(site, dt.date(2021, 7, 2))
    resident, number = await make_resident(site, first_dose=FIRST)
    standing = await service.stand(district, resident)
    placed = await service.confirm(district, standing, slot.id, request_key="k1", channel="callcentre",
                                   chosen=slot.id)
    return placed.booking, number


async def test_a_call_centre_bookings_sms_carries_a_link_that_shows_the_booking(client, phone_booking,
                                                                                district):
    booking, number = phone_booking
    message = await SmsMessage.get(kind="confirm")
    body = VAULT.decrypt(message.body_cipher)
    assert len(body) <= wording.MAX_CHARS and "改约或取消：http://testserver/b/" in body
    assert await Link.filter(resident_id=booking.resident_id).count() == 1  # issued with the booking
    assert await opens(client, link_in(message), number)
    page = await get_page(client, "/booking")
    assert booking.code[:4] in text(page)

    # Booked through their own link instead: the SMS points to that link, no new one is issued.
    other, _ = await make_resident(await Site.get(code="TH01"), first_dose=FIRST, phone="13700000009")
    await book_for(district, other, await make_slot(await Site.get(code="TH01"), dt.date(2021, 7, 3)))
    assert "短信原链接" in VAULT.decrypt((await SmsMessage.get(resident_id=other.id)).body_cipher)
    assert await Link.filter(resident_id=other.id).count() == 0


@pytest.mark.parametrize("base_url", ["http://testserver", "https://yuyue.thwsjk.gov.cn"])
def test_the_call_centre_sms_fits_with_the_longest_site_name_and_the_link(base_url):
    link = f"{base_url}/b/{'x' * 22}"
    visit = wording.Visit(code="ACEF-7HJK", day=dt.date(2021, 12, 31), start="14:00", end="15:00",
                          site="天" * 100, address="天河区五山路371号", companion=True)
    body = wording.callcentre_confirmation(Resident(name="欧阳小明"), visit, link, moved=True).body
    assert len(body) <= wording.MAX_CHARS and body.endswith(link) and "天天…" in body


def test_a_base_url_too_long_for_the_link_falls_back_to_the_plain_confirmation():
    visit = wording.Visit(code="ACEF-7HJK", day=dt.date(2021, 7, 2), start="09:00", end="10:00",
                          site="五山街社区卫生服务中心", address="天河区五山路371号", companion=False)
    sms = wording.callcentre_confirmation(Resident(name="张三明"), visit,
                                          "https://" + "very-long-sub-domain." * 4 + "gov.cn/b/" + "x" * 22)
    assert sms is None


async def test_a_reissued_links_sms_fits_a_long_name_and_a_long_address(db, district):
    from models.operations import outreach

    site = await make_site("TH01")
    resident, _ = await make_resident(site, first_dose=dt.date(2021, 3, 1), name="阿" * 48)
    gov = dataclasses.replace(district, base_url="https://yuyue.thwsjk.gov.cn")
    await outreach.reissue_one(gov, resident.id)
    body = VAULT.decrypt((await SmsMessage.get(kind="reissue")).body_cipher)
    assert len(body) <= wording.MAX_CHARS and "阿*您好" in body
