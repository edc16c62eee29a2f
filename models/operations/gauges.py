"""The gauges `/metrics` shows (web/metrics.py), read from the database at scrape time: live
holds, places free today and tomorrow, the SMS outbox by kind and status, the waiting list (people
waiting or offered a place, offers by status). They need no
multiprocess care: whichever worker answers a scrape reads them from the database. (The counters
the domain moves as things happen are models/metrics.py.)
"""
from __future__ import annotations

import datetime as dt
from collections import Counter as Tally
from dataclasses import dataclass, field

from ..clock import as_utc
from ..db import places, tallies
from tortoise.functions import Count

from ..db.tables import Hold, Slot, WaitlistEntry, WaitlistOffer


@dataclass(frozen=True)
class Gauges:
    """The state of the district at one moment, read from the database."""

    live_holds: int
    places_free: dict[str, int]  # "today", "tomorrow" -> places a resident could still book
    sms: dict[tuple[str, str], int] = field(default_factory=dict)  # (kind, status) -> messages
    waitlist: dict[str, int] = field(default_factory=dict)  # "waiting", "offered" -> people on the list
    offers: dict[str, int] = field(default_factory=dict)  # open, taken, declined, expired, withdrawn -> offers


async def _places_free(day: dt.date, now: dt.datetime) -> int:
    """Free places in the day's open windows at active sites (today: windows not begun yet),
    less the live holds on them: what residents could still book that day."""
    slots = Slot.filter(day=day, closed_reason="", site__active=True)
    if day == now.date():
        slots = slots.filter(start__gt=now.strftime("%H:%M"))
    rows = await slots.values_list("id", "capacity", "booked")
    if not rows:
        return 0
    held = Tally(await Hold.filter(slot__day=day, expires_at__gt=as_utc(now))
                 .values_list("slot_id", flat=True))
    return sum(places.free(capacity, taken, held[sid]) for sid, capacity, taken in rows)


async def _by_status(model, statuses: tuple[str, ...]) -> dict[str, int]:
    """Rows of `model` per status, every status named (0 when there is none)."""
    rows = await (model.filter(status__in=statuses).annotate(n=Count("id")).group_by("status")
                  .values("status", "n"))
    found = {row["status"]: row["n"] for row in rows}
    return {status: found.get(status, 0) for status in statuses}


async def read_gauges(now: dt.datetime) -> Gauges:
    """Live holds, places free today and tomorrow, the SMS outbox by kind and status, and the
    waiting list: people on it (waiting, offered) and the offers made, by status."""
    today = now.date()
    sms = await tallies.sms_by_kind()  # along the (status, kind) index alone: models/db/tallies.py
    return Gauges(
        live_holds=await Hold.filter(expires_at__gt=as_utc(now)).count(),
        places_free={"today": await _places_free(today, now),
                     "tomorrow": await _places_free(today + dt.timedelta(days=1), now)},
        sms={(row["kind"], row["status"]): row["n"] for row in sms},
        waitlist=await _by_status(WaitlistEntry, WaitlistEntry.ACTIVE),
        offers=await _by_status(WaitlistOffer, WaitlistOffer.STATUSES),
    )
