"""Opening slots (never below bookings) and invitation batches (one SMS each, within two parts)."""
from __future__ import annotations

import dataclasses
import datetime as dt
import re

import pytest

from models.booking import service
from models.db.tables import Link, Resident, RiskArea, SmsMessage, Slot
from models.messaging import wording
from models.people.links import resolve_token
from models.operations import invitations
from models.operations.invitations import InviteError, invite
from models.operations.slots import SlotError, open_slots, parse_times
from tests.conftest import TODAY, VAULT
from tests.factories import book_for, make_resident, make_site, make_slot

DAY = dt.date(2021, 7, 5)
AS_OF = TODAY
TIMES = [("08:30", "09:30"), ("14:00", "15:00")]
# 48 characters: masked in full it would not fit in two SMS parts with a real address.
LONG_NAME = "阿卜杜热合曼·买买提艾力·吐尔逊江·阿不都热依木·艾合买提·克热木·吐尔洪·买买提·艾力·吐尔逊"


async def test_open_slots_creates_missing_slots_and_a_second_run_changes_nothing(db):
    await make_site("TH01")
    first = await open_slots("TH01", DAY, DAY + dt.timedelta(days=2), TIMES, 20)
    again = await open_slots("TH01", DAY, DAY + dt.timedelta(days=2), TIMES, 20)
    assert (first.created, again.created, again.unchanged) == (6, 0, 6)
    assert await Slot.filter(capacity=20).count() == 6


async def test_open_slots_raises_and_lowers_capacity_but_never_below_what_is_booked(db):
    site = await make_site("TH01")
    busy = await make_slot(site, DAY, "08:30", "09:30", capacity=10, booked=8)
    quiet = await make_slot(site, DAY, "14:00", "15:00", capacity=10, booked=2)
    result = await open_slots("TH01", DAY, DAY, TIMES, 5)
    assert (await Slot.get(id=busy.id)).capacity == 8
    assert (await Slot.get(id=quiet.id)).capacity == 5
    assert [(h.start, h.requested, h.booked) for h in result.held] == [("08:30", 5, 8)]
    assert (result.lowered, result.raised) == (2, 0)
    raised = await open_slots("TH01", DAY, DAY, TIMES, 30)
    assert raised.raised == 2 and (await Slot.get(id=busy.id)).capacity == 30


async def test_lowering_capacity_keeps_places_held_by_people_checking_their_answers(db, district):
    site = await make_site("TH01")
    slot = await make_slot(site, DAY, "08:30", "09:30", capacity=10, booked=3)
    resident, _ = await make_resident(site, first_dose=dt.date(2021, 6, 1))
    await service.choose(district, await service.stand(district, resident), slot.id)
    await open_slots("TH01", DAY, DAY, TIMES[:1], 2)
    assert (await Slot.get(id=slot.id)).capacity == 4  # 3 booked + 1 held


async def test_open_slots_leaves_an_overlapping_existing_window_alone(db):
    site = await make_site("TH01")
    await make_slot(site, DAY, "08:00", "09:00", capacity=10)
    result = await open_slots("TH01", DAY, DAY, TIMES, 20)
    assert result.conflicts == [(DAY, "08:30-09:30", "08:00-09:00")]
    assert result.created == 1


@pytest.mark.parametrize("text, message", [
    ("8:30-9:30", "not HH:MM-HH:MM"), ("09:30-08:30", "ends before it starts"),
    ("08:30-09:30,09:00-10:00", "overlap"), ("", "not HH:MM-HH:MM"), ("24:00-24:30", "not HH:MM"),
])
def test_time_windows_are_checked(text, message):
    with pytest.raises(SlotError, match=message):
        parse_times(text)


async def test_open_slots_refuses_an_unknown_site_and_a_reversed_range(db):
    await make_site("TH01")
    with pytest.raises(SlotError, match="unknown site code X01"):
        await open_slots("X01", DAY, DAY, TIMES, 20)
    with pytest.raises(SlotError, match="before"):
        await open_slots("TH01", DAY, DAY - dt.timedelta(days=1), TIMES, 20)
    assert await Slot.all().count() == 0


def _at(district, base_url: str):
    """The district with another public address (BASE_URL) for the links in SMS."""
    return dataclasses.replace(district, base_url=base_url)


async def _population(district):
    """One resident per case, as of AS_OF; returns {case: resident}."""
    site = await make_site("TH01")
    zhuji = await make_site("TH11", subdistrict="珠吉街")
    await RiskArea.create(subdistrict="珠吉街")
    people = {}
    phones = iter(f"138000000{n:02d}" for n in range(50))

    async def add(case, first_dose, at=site, **kw):
        people[case], _ = await make_resident(at, first_dose=first_dose, name=kw.pop("name", "张三明"),
                                              phone=next(phones), **kw)

    await add("eligible", dt.date(2021, 6, 1))
    await add("late", dt.date(2021, 3, 1), name="李四华")
    await add("day_21", AS_OF - dt.timedelta(days=21))
    await add("day_20", AS_OF - dt.timedelta(days=20))
    await add("too_early", AS_OF - dt.timedelta(days=3))
    await add("restricted", dt.date(2021, 6, 1), at=zhuji)
    await add("vaccinated", dt.date(2021, 5, 1))
    await Resident.filter(id=people["vaccinated"].id).update(second_dose_date=dt.date(2021, 5, 25))
    await add("booked", dt.date(2021, 6, 1))
    slot = await make_slot(site, dt.date(2021, 7, 2))
    await book_for(district, people["booked"], slot)
    await add("long_name", dt.date(2021, 6, 2), name=LONG_NAME)
    return people


async def test_invite_queues_one_sms_for_each_eligible_resident_and_nobody_else(db, district):
    people = await _population(district)
    gov = _at(district, "https://yuyue.thwsjk.gov.cn")
    result = await invite(gov, as_of=AS_OF)
    invited = {people[c].id for c in ("eligible", "late", "day_21", "long_name")}
    assert result.count == 4
    messages = await SmsMessage.filter(kind="invite")
    assert {m.resident_id for m in messages} == invited and len(messages) == 4
    assert {r.id for r in await Resident.filter(invited_at__isnull=False)} == invited
    assert await Link.filter(resident_id__in=invited).count() == 4
    for message in messages:
        body = VAULT.decrypt(message.body_cipher)
        assert len(body) <= wording.MAX_CHARS
        assert body.startswith(f"【{wording.SIGNATURE}】") and "https://yuyue.thwsjk.gov.cn/b/" in body
    bodies = {m.resident_id: VAULT.decrypt(m.body_cipher) for m in messages}
    assert "张*明您好" in bodies[people["eligible"].id] and "7月27日前" in bodies[people["eligible"].id]
    assert "阿*您好" in bodies[people["long_name"].id]  # too long to mask in full: shortened

    again = await invite(gov, as_of=AS_OF)
    assert again.count == 0 and await SmsMessage.filter(kind="invite").count() == 4


async def test_a_dry_run_counts_and_writes_nothing_and_limit_takes_the_most_overdue(db, district):
    people = await _population(district)
    local = _at(district, "http://127.0.0.1:8000")
    dry = await invite(local, as_of=AS_OF, dry_run=True)
    assert dry.count == 4 and dry.dry_run
    assert await SmsMessage.filter(kind="invite").count() == 0 and await Link.all().count() == 0
    limited = await invite(local, as_of=AS_OF, limit=1)
    assert limited.count == 1
    assert (await SmsMessage.get(kind="invite")).resident_id == people["late"].id


async def test_a_base_url_too_long_for_two_sms_parts_is_refused_before_anything_is_written(db, district):
    await _population(district)
    with pytest.raises(InviteError, match="BASE_URL .* too long"):
        await invite(_at(district, "https://" + "very-long-sub-domain." * 4 + "gov.cn"), as_of=AS_OF)
    assert await SmsMessage.filter(kind="invite").count() == 0
    assert await Resident.filter(invited_at__isnull=False).count() == 0


async def test_a_batch_goes_in_pages_most_overdue_first_and_skips_whom_another_batch_invited(
        db, district, monkeypatch):
    # Small pages: 3 residents read at a time, 2 invited per transaction.
    monkeypatch.setattr(invitations, "READ_PAGE", 3)
    monkeypatch.setattr(invitations, "BATCH", 2)
    site = await make_site("TH01")
    people = []
    for n in range(7):  # first doses a day apart: people[0] is the most overdue
        resident, _ = await make_resident(site, first_dose=dt.date(2021, 5, 1) + dt.timedelta(days=n),
                                          phone=f"1380000{n:04d}")
        people.append(resident)
    told = []

    def progress(done: int) -> None:
        told.append(done)
        if done == 2:  # another batch invites people[3] meanwhile: it must not get a second SMS
            invited_elsewhere.append(people[3].id)

    invited_elsewhere: list[int] = []
    real_prepare = invitations._prepare_page

    async def prepare_page(d, residents, as_of):
        write = await real_prepare(d, residents, as_of)

        async def invited_meanwhile_then_write():
            for resident_id in invited_elsewhere:
                await Resident.filter(id=resident_id).update(invited_at=d.clock.now())
            return await write()
        return invited_meanwhile_then_write

    monkeypatch.setattr(invitations, "_prepare_page", prepare_page)
    result = await invite(_at(district, "http://127.0.0.1:8000"), as_of=AS_OF, progress=progress)
    assert result.count == 6 and told == [1, 2, 3, 4, 5, 6]
    messages = await SmsMessage.filter(kind="invite").order_by("id")
    expected = [p.id for p in people if p.id != people[3].id]
    assert [m.resident_id for m in messages] == expected  # one each, most overdue first
    links = await Link.filter(resident_id__in=[p.id for p in people])
    assert sorted(link.resident_id for link in links) == sorted(expected)
    for message in messages:  # each message carries its own resident's live link
        token = re.search(r"/b/([A-Za-z0-9_-]{22})", VAULT.decrypt(message.body_cipher)).group(1)
        link = await resolve_token(token, district.clock.now())
        assert link is not None and link.resident_id == message.resident_id
        assert message.phone_hash == (await Resident.get(id=message.resident_id)).phone_hash
    assert await Resident.filter(invited_at__isnull=True).count() == 0
    assert (await invite(_at(district, "http://127.0.0.1:8000"), as_of=AS_OF)).count == 0
