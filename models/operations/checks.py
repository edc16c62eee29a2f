"""Invariants over the whole database: what `python run.py check` and the tests verify."""
from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field

from ..db.tables import Booking, Hold, Slot, WaitlistEntry, WaitlistOffer
from ..rules.interval import RuleBook


@dataclass
class Report:
    errors: list[str] = field(default_factory=list)  # a broken invariant: must never happen
    warnings: list[str] = field(default_factory=list)  # kept as is, for staff to look at

    @property
    def ok(self) -> bool:
        return not self.errors


async def check_database(rules: RuleBook) -> Report:
    """Booked counts equal active bookings, held counts equal holds and open waiting-list offers,
    no slot over capacity,
    at most one active booking per person; bookings the current interval rules would refuse
    are reported as warnings (a rule change keeps existing bookings)."""
    report = Report()
    active = await Booking.filter(status=Booking.ACTIVE).values(
        "id", "code", "resident_id", "slot_id", "slot__day",
        "resident__first_dose_date", "resident__vaccine",
    )
    # A place stays taken once its booking is done (checked in); a no-show gives it back.
    per_slot = Counter(b["slot_id"] for b in active)
    per_slot.update(await Booking.filter(status=Booking.DONE).values_list("slot_id", flat=True))
    # A place is held by a hold (the journey's check page) or by an open waiting-list offer.
    holds = Counter(await Hold.all().values_list("slot_id", flat=True))
    holds.update(await WaitlistOffer.filter(status=WaitlistOffer.OPEN).values_list("slot_id", flat=True))
    for slot in await Slot.all().values("id", "capacity", "booked", "held"):
        sid = slot["id"]
        if slot["booked"] != per_slot[sid]:
            report.errors.append(
                f"slot {sid}: booked = {slot['booked']}, active and done bookings = {per_slot[sid]}")
        if slot["held"] != holds[sid]:
            report.errors.append(f"slot {sid}: held = {slot['held']}, holds and open offers = {holds[sid]}")
        if min(slot["booked"], slot["held"]) < 0 or slot["booked"] + slot["held"] > slot["capacity"]:
            report.errors.append(
                f"slot {sid}: booked {slot['booked']} + held {slot['held']} outside 0..{slot['capacity']}")
    for resident_id, n in Counter(b["resident_id"] for b in active).items():
        if n > 1:
            report.errors.append(f"resident {resident_id}: {n} active bookings")
    # The waiting list: one open offer per person, and only while their entry says `offered`.
    open_offers = await WaitlistOffer.filter(status=WaitlistOffer.OPEN).values("resident_id", "entry__status")
    for resident_id, n in Counter(o["resident_id"] for o in open_offers).items():
        if n > 1:
            report.errors.append(f"resident {resident_id}: {n} open waiting-list offers")
    for o in open_offers:
        if o["entry__status"] != WaitlistEntry.OFFERED:
            report.errors.append(f"resident {o['resident_id']}: an open offer while {o['entry__status']}")
    for b in active:
        window = rules.window(b["resident__first_dose_date"], b["resident__vaccine"])
        if b["slot__day"] < window.earliest:
            report.warnings.append(
                f"booking {b['code']}: {b['slot__day']} is before the earliest day allowed now "
                f"({window.earliest}); kept, contact the resident")
    return report
