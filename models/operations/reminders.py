"""The day-before reminder: one SMS for every booking of a day, however often it is run.

Each message carries a dedupe key made of the booking and its day, so a second run (a scheduler
retrying, an operator running it by hand) queues nothing new, while a booking moved to another
day gets its own reminder for that day. Bookings go a keyset page at a time, so a day with tens
of thousands of bookings never sits in memory at once.
"""
from __future__ import annotations

import datetime as dt

from tortoise.exceptions import IntegrityError
from tortoise.expressions import Q, Subquery
from tortoise.transactions import in_transaction

from ..db.tables import Booking, RiskArea
from ..district import District
from ..messaging import wording
from ..messaging.outbox import queue
from ..people.residents import birth_date_of

PAGE = 500
KIND = "day_before"


def dedupe_key(booking: Booking, day: dt.date) -> str:
    return f"{KIND}:{booking.id}:{day.isoformat()}"


def _due(day: dt.date):
    """Active bookings on open windows of `day`, of people not in a risk area in force that day
    (their bookings are refused at the door and cancelled by the district)."""
    risky = RiskArea.filter(Q(since__isnull=True) | Q(since__lte=day)).values("subdistrict")
    return (Booking.filter(status=Booking.ACTIVE, slot__day=day, slot__closed_reason="")
            .exclude(resident__subdistrict__in=Subquery(risky)))


async def queue_day_before(district: District, day: dt.date | None = None) -> int:
    """Queue the reminder for every active booking on `day` (default: tomorrow); how many were
    queued now (those already queued by an earlier run are not counted again)."""
    day = day or district.clock.today() + dt.timedelta(days=1)
    count, last_id = 0, 0
    while True:
        page = await (_due(day).filter(id__gt=last_id).order_by("id").limit(PAGE)
                      .select_related("resident", "slot__site"))
        for booking in page:
            count += await _remind(district, booking, day)
        if len(page) < PAGE:
            return count
        last_id = page[-1].id


async def _remind(district: District, booking: Booking, day: dt.date) -> bool:
    """Queue one reminder if the booking is still active in its window (cancelled or moved since
    the page was read: none); False when it was already queued, by this run or another."""
    sms = wording.day_before_sms(booking.resident, booking, booking.slot,
                                 born=birth_date_of(district.vault, booking.resident))
    try:
        async with in_transaction() as conn:
            still = await Booking.filter(id=booking.id, status=Booking.ACTIVE,
                                         slot_id=booking.slot_id).using_db(conn).exists()
            queued = still and await queue(district.vault, booking.resident, sms, kind=KIND,
                                           dedupe_key=dedupe_key(booking, day), using_db=conn)
    except IntegrityError:  # another run queued it between our look and our write
        return False
    return bool(queued)
