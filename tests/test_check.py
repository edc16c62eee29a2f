"""`check`: the invariants over the whole database, and what breaks them."""
from __future__ import annotations

import datetime as dt

from models import booking as engine
from models import rules
from models.check import check_database
from models.rules import IntervalRule, RuleBook, interval_window
from models.tables import Booking, Slot
from tests.factories import make_resident, make_site, make_slot

TZ = dt.timezone(dt.timedelta(hours=8))
NOW = dt.datetime(2021, 7, 1, 8, 0, tzinfo=TZ)
FIRST = dt.date(2021, 6, 5)


async def _booked():
    site = await make_site()
    resident, _ = await make_resident(site, first_dose=FIRST)
    slot = await make_slot(site, dt.date(2021, 7, 2), capacity=3)
    booking, _ = await engine.book(resident, slot.id, window=interval_window(FIRST), now=NOW)
    return site, resident, slot, booking


async def test_a_consistent_database_checks_clean(db):
    site, resident, slot, _ = await _booked()
    other, _ = await make_resident(site, first_dose=FIRST, phone="13900001111")
    await engine.hold(other, slot.id, window=interval_window(FIRST), now=NOW)
    report = await check_database()
    assert report.ok and report.errors == [] and report.warnings == []


async def test_a_booked_count_that_disagrees_is_an_error(db):
    _, _, slot, _ = await _booked()
    await Slot.filter(id=slot.id).update(booked=2)
    report = await check_database()
    assert not report.ok and "booked = 2, active and done bookings = 1" in report.errors[0]


async def test_a_held_count_without_holds_is_an_error(db):
    _, _, slot, _ = await _booked()
    await Slot.filter(id=slot.id).update(held=1)
    assert "held = 1, holds = 0" in (await check_database()).errors[0]


async def test_a_rule_change_keeps_bookings_and_reports_them(db):
    _, _, _, booking = await _booked()
    try:
        rules.use_rules(RuleBook(IntervalRule(28, 56), {}))
        report = await check_database()
    finally:
        rules.use_rules(RuleBook.from_file(rules.RULES_FILE))
    assert report.ok, "a rule change is not a broken invariant"
    assert booking.code in report.warnings[0]
    assert await Booking.filter(id=booking.id, status=Booking.ACTIVE).exists()


def test_rules_come_from_the_config_file_per_product():
    book = RuleBook.from_file(rules.RULES_FILE)
    assert book.default == IntervalRule(21, 56)
    assert book.for_vaccine("科兴") == IntervalRule(21, 56)
    assert book.for_vaccine("unknown product") == book.default
