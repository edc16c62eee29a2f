"""The day-before reminder: one SMS per active booking of the day, in the person's language; run
twice, queued once; cancelled bookings and bookings of other days are not reminded."""
from __future__ import annotations

import argparse
import datetime as dt
import itertools

import pytest

import run
from models.booking import service
from models.db.tables import AuditEntry, Booking, Resident, RiskArea, Slot, SmsMessage
from models.messaging import wording
from models.operations import reminders
from models.people.residents import prefer_language
from tests.conftest import TODAY, VAULT
from tests.factories import book_for, make_resident, make_site, make_slot

TOMORROW = TODAY + dt.timedelta(days=1)
FIRST = dt.date(2021, 6, 1)
_codes = itertools.count(1)


async def booked(district, n: int, day: dt.date = TOMORROW, *, subdistrict: str = "五山街") -> list[Booking]:
    """`n` people with a booking on `day` at TH01 (or a site of `subdistrict`)."""
    site = await make_site(f"T{next(_codes):02d}", subdistrict, name="五山街社区卫生服务中心",
                           address="天河区五山路371号")
    slot = await make_slot(site, day, "09:00", "10:00", capacity=50)
    bookings = []
    for _ in range(n):
        resident, _ = await make_resident(site, first_dose=FIRST, phone=f"139{len(bookings):08d}",
                                          subdistrict=subdistrict)
        bookings.append(await book_for(district, resident, slot))
    return bookings


async def reminded() -> dict[int, list[SmsMessage]]:
    """The day-before messages queued, by booking resident."""
    found: dict[int, list[SmsMessage]] = {}
    for message in await SmsMessage.filter(kind="day_before").order_by("id"):
        found.setdefault(message.resident_id, []).append(message)
    return found


async def test_one_reminder_per_booking_of_tomorrow_and_running_twice_queues_nothing_more(db, district):
    tomorrow = await booked(district, 3)
    later = await booked(district, 1, TOMORROW + dt.timedelta(days=1))
    assert await reminders.queue_day_before(district) == 3
    assert await reminders.queue_day_before(district) == 0
    messages = await reminded()
    assert sorted(messages) == sorted(b.resident_id for b in tomorrow)
    assert all(len(m) == 1 for m in messages.values())
    assert later[0].resident_id not in messages
    message = messages[tomorrow[0].resident_id][0]
    assert message.template == "day_before" and message.lang == "zh" and message.priority == 2
    assert message.dedupe_key == f"day_before:{tomorrow[0].id}:{TOMORROW.isoformat()}"
    body = VAULT.decrypt(message.body_cipher)
    for part in ("7月2日（周五）09:00-10:00", "五山街社区卫生服务中心", "天河区五山路371号", "身份证", "口罩",
                 "健康码", "体温", "一米", tomorrow[0].code[:4]):
        assert part in body
    assert len(body) <= wording.MAX_CHARS


async def test_cancelled_bookings_are_not_reminded_and_a_moved_booking_gets_its_own(db, district):
    cancelled, moved, kept = await booked(district, 3)
    await service.cancel(district, cancelled.resident_id, cancelled.id)
    assert await reminders.queue_day_before(district, TOMORROW) == 2
    assert set(await reminded()) == {moved.resident_id, kept.resident_id}

    # Moved to the day after: reminded again, for that day, and only once.
    resident = await Resident.get(id=moved.resident_id)
    after = await make_slot(await make_site("TH09"), TOMORROW + dt.timedelta(days=1))
    standing = await service.stand(district, resident)
    await service.confirm(district, standing, after.id, request_key=None, channel="sms", chosen=after.id)
    assert await reminders.queue_day_before(district, TOMORROW + dt.timedelta(days=1)) == 1
    assert await reminders.queue_day_before(district, TOMORROW + dt.timedelta(days=1)) == 0
    keys = [m.dedupe_key for m in (await reminded())[moved.resident_id]]
    assert keys == [f"day_before:{moved.id}:{TOMORROW.isoformat()}",
                    f"day_before:{moved.id}:{(TOMORROW + dt.timedelta(days=1)).isoformat()}"]


async def test_bookings_of_a_closed_window_or_a_risk_area_are_not_reminded(db, district):
    (plain,) = await booked(district, 1)
    await booked(district, 1, subdistrict="石牌街")
    await RiskArea.create(subdistrict="石牌街", level="high", since=TODAY)
    (closed,) = await booked(district, 1)
    await Slot.filter(id=closed.slot_id).update(closed_reason="疫苗未到货")
    assert await reminders.queue_day_before(district) == 1
    assert set(await reminded()) == {plain.resident_id}


async def test_a_resident_who_chose_english_is_reminded_in_english(db, district):
    (booking,) = await booked(district, 1)
    resident = await Resident.get(id=booking.resident_id)
    await prefer_language(resident, "en")
    assert (await Resident.get(id=resident.id)).lang == "en"
    assert await reminders.queue_day_before(district) == 1
    (message,) = (await reminded())[resident.id]
    body = VAULT.decrypt(message.body_cipher)
    assert message.lang == "en" and "Fri 2 Jul 09:00-10:00" in body and "Bring ID" in body
    assert len(body) <= wording.MAX_CHARS_EN
    await prefer_language(resident, "zh")  # back to Chinese when they verify in Chinese
    assert (await Resident.get(id=resident.id)).lang == "zh"


async def test_a_large_day_goes_a_page_at_a_time(db, district, monkeypatch):
    monkeypatch.setattr(reminders, "PAGE", 2)
    await booked(district, 5)
    assert await reminders.queue_day_before(district) == 5
    assert await reminders.queue_day_before(district) == 0
    assert await SmsMessage.filter(kind="day_before").count() == 5


async def test_the_command_queues_them_says_how_many_and_leaves_it_in_the_audit_trail(db, district, settings,
                                                                                      capsys):
    await booked(district, 2)
    args = run.build_parser().parse_args(["send-reminders", "--day", TOMORROW.isoformat()])
    assert await run.cmd_send_reminders(settings, district, args) == run.OK
    assert await run.cmd_send_reminders(settings, district, argparse.Namespace(day=None)) == run.OK
    out = capsys.readouterr().out
    assert f"send-reminders: 2 reminder(s) queued for {TOMORROW.isoformat()}" in out
    assert f"send-reminders: 0 reminder(s) queued for {TOMORROW.isoformat()}" in out
    entries = await AuditEntry.filter(action="send_reminders").order_by("id").values_list("username", "detail")
    assert entries == [("cli", f"2 day-before SMS queued day={TOMORROW.isoformat()}"),
                       ("cli", f"0 day-before SMS queued day={TOMORROW.isoformat()}")]
    past = argparse.Namespace(day=TODAY - dt.timedelta(days=1))
    assert await run.cmd_send_reminders(settings, district, past) == run.REJECTED


@pytest.mark.parametrize("cookie, lang", [("en", "en"), ("zh", "zh")])
async def test_verifying_with_the_site_in_english_records_english(client, db, district, cookie, lang):
    from models.people.links import issue_link
    from tests.pages import get_page, post_form

    site = await make_site("TH01")
    resident, number = await make_resident(site, first_dose=FIRST)
    await Resident.filter(id=resident.id).update(lang="zh" if lang == "en" else "en")
    token = await issue_link(resident, now=district.clock.now())
    client.cookies.set("lang", cookie)
    assert (await client.get(f"/b/{token}")).status_code == 303
    page = await get_page(client, "/booking")
    await post_form(client, "/booking/verify", page, {"id_number": number})
    assert (await Resident.get(id=resident.id)).lang == lang
