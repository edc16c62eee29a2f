"""`check`: the invariants over the whole database, and what breaks them."""
from __future__ import annotations

import datetime as dt

from models.booking import engine, service
from models.db.tables import Booking, Slot
from models.operations.checks import check_database
from models.rules.interval import RULES_FILE, IntervalRule, RuleBook
from tests.conftest import NOW
from tests.factories import make_resident, make_site, make_slot

FIRST = dt.date(2021, 6, 5)


async def _booked(district):
    site = await make_site()
    resident, _ = await make_resident(site, first_dose=FIRST)
    slot = await make_slot(site, dt.date(2021, 7, 2), capacity=3)
    booking, _ = await engine.book(resident, slot.id, window=district.rules.window(FIRST), now=NOW,
                                   notice=service._notice(district, resident, "confirm"))
    return site, resident, slot, booking


async def test_a_consistent_database_checks_clean(db, district):
    site, resident, slot, _ = await _booked(district)
    other, _ = await make_resident(site, first_dose=FIRST, phone="13900001111")
    await engine.hold(other, slot.id, window=district.rules.window(FIRST), now=NOW,
                      minutes=district.hold_minutes)
    report = await check_database(district.rules)
    assert report.ok and report.errors == [] and report.warnings == []


async def test_a_booked_count_that_disagrees_is_an_error(db, district):
    _, _, slot, _ = await _booked(district)
    await Slot.filter(id=slot.id).update(booked=2)
    report = await check_database(district.rules)
    assert not report.ok and "booked = 2, active and done bookings = 1" in report.errors[0]


async def test_a_held_count_without_holds_is_an_error(db, district):
    _, _, slot, _ = await _booked(district)
    await Slot.filter(id=slot.id).update(held=1)
    assert "held = 1, holds and open offers = 0" in (await check_database(district.rules)).errors[0]


async def test_a_rule_change_keeps_bookings_and_reports_them(db, district):
    _, _, _, booking = await _booked(district)
    report = await check_database(RuleBook(IntervalRule(28, 56), {}))
    assert report.ok, "a rule change is not a broken invariant"
    assert booking.code in report.warnings[0]
    assert await Booking.filter(id=booking.id, status=Booking.ACTIVE).exists()


def test_rules_come_from_the_config_file_per_product():
    book = RuleBook.from_file(RULES_FILE)
    assert book.default == IntervalRule(21, 56)
    assert book.for_vaccine("科兴") == IntervalRule(21, 56)
    assert book.for_vaccine("unknown product") == book.default
