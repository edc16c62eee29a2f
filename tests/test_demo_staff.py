"""The demo data set (idempotent, one showcase person per case) and staff accounts."""
from __future__ import annotations

import dataclasses
import datetime as dt

import pytest

from models.booking import availability, service
from models.clock import TZ
from models.db.tables import Booking, Link, Resident, RiskArea, Site, Slot, SmsMessage, StaffUser
from models.demo.loader import NotADemoDatabase, load_demo
from models.people import pii
from models.people.links import resolve_token
from models.people.residents import birth_date_of
from models.rules.eligibility import Refusal, age_on
from models.staff.accounts import StaffError, authenticate, create_user, verify_password
from tests.conftest import TODAY, VAULT
from tests.factories import make_site


@pytest.fixture(autouse=True)
def demo_morning(clock):
    """The demo is loaded as of 07:00 on TODAY, before the day's first window opens."""
    clock.moment = dt.datetime.combine(TODAY, dt.time(7, 0), TZ)


async def _counts() -> dict[str, int]:
    return {
        "sites": await Site.all().count(), "residents": await Resident.all().count(),
        "slots": await Slot.all().count(), "risk": await RiskArea.all().count(),
        "active": await Booking.filter(status=Booking.ACTIVE).count(),
        "staff": await StaffUser.all().count(), "sms": await SmsMessage.all().count(),
    }


async def test_demo_twice_adds_nothing_but_fresh_links(db, district):
    first = await load_demo(district)
    counts = await _counts()
    second = await load_demo(district)
    assert await _counts() == counts
    assert (second.residents_created, second.slots_created, second.bookings_made) == (0, 0, 0)
    assert counts["sites"] == 11 and 190 <= counts["residents"] <= 230
    assert counts["slots"] == 10 * 6 * 14 + 14 and counts["staff"] == 5
    assert counts["sms"] == 0  # made-up phones: nothing is left queued for them
    assert {link.url for link in first.links}.isdisjoint(link.url for link in second.links)
    assert await Link.all().count() == 2 * len(first.links)


async def test_demo_has_one_showcase_person_for_each_case(db, district, clock):
    result = await load_demo(dataclasses.replace(district, base_url="http://demo"))
    now = clock.now()
    people = {}
    for link in result.links:
        assert pii.validate_id(link.id_number) == link.id_number
        resolved = await resolve_token(link.url.removeprefix("http://demo/b/"), now)
        people[link.case] = await Resident.get(id=resolved.resident_id)
        assert people[link.case].id_hash == VAULT.keyed_hash(link.id_number)
    today = now.date()
    standing = {case: await service.stand(district, r) for case, r in people.items()}
    refusals = {case: s.refusal for case, s in standing.items()}
    assert refusals == {
        "eligible": None, "late": None, "opens_soon": None, "too_early": Refusal.TOO_EARLY,
        "vaccinated": Refusal.VACCINATED, "booked": Refusal.BOOKED, "restricted": Refusal.RESTRICTED,
        "elderly": None, "site_full": None, "elsewhere": None, "family": None,
    }
    assert standing["late"].window.due_by < today
    assert standing["opens_soon"].window.earliest > today
    assert age_on(birth_date_of(VAULT, people["elderly"]), today) >= 70
    assert not VAULT.decrypt(people["elsewhere"].id_cipher).startswith("440106")

    full = people["site_full"]
    choices = await availability.site_choices(full, standing["site_full"].window, now)
    assert choices[0].is_first_site and choices[0].first_free_day is None
    assert choices[1].site.subdistrict == choices[0].site.subdistrict and choices[1].first_free_day
    assert all(s.booked == s.capacity for s in await Slot.filter(site_id=full.first_site_id))


async def test_demo_stays_out_of_a_database_with_other_sites(db, district):
    await make_site("X99")
    with pytest.raises(NotADemoDatabase):
        await load_demo(district)
    assert await Resident.all().count() == 0 and await StaffUser.all().count() == 0


async def test_create_user_keeps_only_an_argon2_hash_of_the_password(db):
    user = await create_user(role="admin", username="Admin.Li", password="correct horse 1")
    stored = await StaffUser.get(id=user.id)
    assert stored.username == "admin.li" and stored.active
    assert stored.password_hash.startswith("$argon2id$") and "correct horse" not in stored.password_hash
    assert verify_password(stored, "correct horse 1") and not verify_password(stored, "wrong horse 1")
    assert (await authenticate("admin.li", "correct horse 1")).id == user.id
    assert await authenticate("admin.li", "wrong horse 1") is None
    assert await authenticate("nobody", "correct horse 1") is None


async def test_create_user_checks_role_scope_password_and_duplicates(db):
    site = await make_site("TH01")
    with pytest.raises(StaffError, match="at least 10"):
        await create_user(role="admin", username="boss", password="short")
    with pytest.raises(StaffError, match="needs --site"):
        await create_user(role="site", username="door1", password="long enough pw")
    with pytest.raises(StaffError, match="unknown site code X01"):
        await create_user(role="site", username="door1", password="long enough pw", site_code="X01")
    with pytest.raises(StaffError, match="needs --subdistrict"):
        await create_user(role="subdistrict", username="jd1", password="long enough pw",
                          subdistrict="越秀街")
    with pytest.raises(StaffError, match="role must be"):
        await create_user(role="root", username="jd1", password="long enough pw")
    door = await create_user(role="site", username="door1", password="long enough pw", site_code="TH01")
    area = await create_user(role="subdistrict", username="jd1", password="long enough pw",
                             subdistrict="五山")
    assert door.site_id == site.id and area.subdistrict == "五山街"
    with pytest.raises(StaffError, match="already taken"):
        await create_user(role="admin", username="DOOR1", password="long enough pw")


async def test_the_demo_has_a_family_on_one_phone_to_book_for_at_entry(db, district, client):
    """Issue 22: the family feature can be tried on the demo: 黄桂英, her son and his wife share
    a phone, and each showcase person's phone is printed for /entry."""
    import json

    from tests.pages import get_page, post_form, text

    result = await load_demo(district)
    phones = {link.name: link.phone for link in result.links}
    assert all(pii.normalise_phone(p) == p for p in phones.values())
    family = [name for name, phone in phones.items() if phone == phones["黄桂英"]]
    assert sorted(family) == sorted(["黄桂英", "林建国", "何丽华"])
    page = await get_page(client, "/entry")
    await post_form(client, "/entry", page, {"phone": phones["黄桂英"]})
    sms = await SmsMessage.filter(template="login_code").order_by("-id").first()
    code = json.loads(VAULT.decrypt(sms.params_cipher))["code"]
    page = await get_page(client, "/entry/code")
    await post_form(client, "/entry/code", page, {"code": code})
    listed = text(await get_page(client, "/entry/family"))
    assert all(pii.mask_name(name) in listed for name in family)
    alone = [name for name, phone in phones.items() if list(phones.values()).count(phone) == 1]
    assert len(alone) == 9, "everyone else is alone on their phone"
