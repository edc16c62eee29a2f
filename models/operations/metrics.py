"""What `/metrics` shows (web/metrics.py): counters the domain moves as things happen, and gauges
read from the database at scrape time.

Counters live in this process (prometheus-client). Under `run.py serve` every worker writes
them to files in one directory (the client's multiprocess mode, PROMETHEUS_MULTIPROC_DIR, made
afresh by `serve` before the workers start) and a scrape adds every worker's up. The database
gauges need no such care: whichever worker answers a scrape reads them from the database.

The domain only calls the small functions below (`booked`, `moved`, `cancelled`, `refused`,
`locked_out`); it never sees the web or the registry.
"""
from __future__ import annotations

import datetime as dt
from collections import Counter as Tally
from dataclasses import dataclass, field

from prometheus_client import CollectorRegistry, Counter

from ..clock import as_utc
from ..db import fast
from ..db.tables import Hold, SmsMessage, Slot

# Our own registry: the library's default one also holds its process and platform collectors,
# which multiprocess mode cannot add up across workers.
REGISTRY = CollectorRegistry(auto_describe=True)

BOOKINGS_MADE = Counter("booking_bookings_made", "Bookings made, by channel",
                        ["channel"], registry=REGISTRY)
BOOKINGS_MOVED = Counter("booking_bookings_moved", "Bookings moved to another window, by channel",
                         ["channel"], registry=REGISTRY)
BOOKINGS_CANCELLED = Counter(
    "booking_bookings_cancelled",
    "Bookings cancelled, by channel (the district's closures and risk areas: district)",
    ["channel"], registry=REGISTRY)
RATE_LIMIT_REFUSALS = Counter("booking_rate_limit_refusals",
                              "Requests refused by a rate limit, by limit", ["limit"],
                              registry=REGISTRY)
SIGNIN_LOCKOUTS = Counter(
    "booking_signin_lockouts",
    "Sign-ins locked out: staff (a username's wrong passwords), link (a personal link locked "
    "after wrong ID numbers)", ["who"], registry=REGISTRY)
AUDIT_CAPPED = Counter(
    "booking_audit_capped",
    "Audit rows not written because their cap was reached (refused sign-ins, bad signatures), "
    "by action", ["action"], registry=REGISTRY)


def booked(channel: str) -> None:
    BOOKINGS_MADE.labels(channel).inc()


def moved(channel: str) -> None:
    BOOKINGS_MOVED.labels(channel).inc()


def cancelled(channel: str) -> None:
    BOOKINGS_CANCELLED.labels(channel).inc()


def refused(limit: str) -> None:
    RATE_LIMIT_REFUSALS.labels(limit).inc()


def locked_out(who: str) -> None:
    SIGNIN_LOCKOUTS.labels(who).inc()


def audit_capped(action: str) -> None:
    AUDIT_CAPPED.labels(action).inc()


@dataclass(frozen=True)
class Gauges:
    """The state of the district at one moment, read from the database."""

    live_holds: int
    places_free: dict[str, int]  # "today", "tomorrow" -> places a resident could still book
    sms: dict[tuple[str, str], int] = field(default_factory=dict)  # (kind, status) -> messages


# Every message of the outbox by kind and status, counted along the (status, kind) index alone
# (migration 0010): the sent and delivered ones grow to millions, and reading every row of the
# table at each scrape would not do. On SQLite through the read-only reader (models/db/fast.py),
# so a scrape never waits for, nor holds up, a booking.
SMS_BY_KIND = f'SELECT status, kind, COUNT(*) AS n FROM {fast.table(SmsMessage)} GROUP BY status, kind'


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
    return sum(max(capacity - taken - held[sid], 0) for sid, capacity, taken in rows)


async def read_gauges(now: dt.datetime) -> Gauges:
    """Live holds, places free today and tomorrow, and the SMS outbox by kind and status."""
    today = now.date()
    sms = await fast.rows(SMS_BY_KIND, [])
    return Gauges(
        live_holds=await Hold.filter(expires_at__gt=as_utc(now)).count(),
        places_free={"today": await _places_free(today, now),
                     "tomorrow": await _places_free(today + dt.timedelta(days=1), now)},
        sms={(row["kind"], row["status"]): row["n"] for row in sms},
    )
