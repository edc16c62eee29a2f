"""The counts the reports and the /metrics gauges read: GROUP BY queries over the indexes, written
once here with `?` placeholders (models/db/dialect.py makes them PostgreSQL's) and run through
Tortoise's connection; models/operations/reports.py and gauges.py turn the rows into tables.
"""
from __future__ import annotations

import datetime as dt

from tortoise import connections

from . import dialect, fast
from .tables import SmsMessage


async def rows(sql: str, params: list | None = None) -> list[dict]:
    """The rows of a query written with ? placeholders; dates go in as the database keeps them."""
    conn = connections.get("default")
    return await conn.execute_query_dict(dialect.sql(conn, sql), dialect.params(conn, params or []))


# ---- per site per day

# Per window: its places (none when closed) and its bookings by status, each a count over the
# booking index (slot_id, status); then summed per site and day.
SITE_DAYS_SQL = """
SELECT site_id, day, SUM(capacity) AS capacity, SUM(booked) AS booked,
       SUM(checked_in) AS checked_in, SUM(no_shows) AS no_shows
FROM (
  SELECT s.site_id AS site_id, s.day AS day,
         CASE WHEN s.closed_reason = '' THEN s.capacity ELSE 0 END AS capacity,
         (SELECT COUNT(*) FROM booking b
          WHERE b.slot_id = s.id AND b.status IN ('active', 'done', 'no_show')) AS booked,
         (SELECT COUNT(*) FROM booking b WHERE b.slot_id = s.id AND b.status = 'done') AS checked_in,
         (SELECT COUNT(*) FROM booking b WHERE b.slot_id = s.id AND b.status = 'no_show') AS no_shows
  FROM slot s
  WHERE s.day >= ? AND s.day <= ?{where}
) w
GROUP BY site_id, day
"""


async def site_days(from_day: dt.date, to_day: dt.date, *, site_id: int | None = None,
                    subdistrict: str | None = None) -> list[dict]:
    """Per site and day in the range: capacity, booked, checked_in, no_shows (a site's, or a
    sub-district's sites': with both, nothing unless the site is in that sub-district)."""
    where, params = "", [from_day, to_day]
    if site_id:
        where, params = " AND s.site_id = ?", params + [site_id]
    if subdistrict:
        where += " AND s.site_id IN (SELECT id FROM site WHERE subdistrict = ?)"
        params = params + [subdistrict]
    return await rows(SITE_DAYS_SQL.format(where=where), params)


# ---- the resident snapshot

RESIDENTS_SQL = """
SELECT subdistrict, vaccine, first_dose_date AS day, COUNT(*) AS people,
       COUNT(second_dose_date) AS given
FROM resident
GROUP BY subdistrict, vaccine, first_dose_date
"""

# CROSS JOIN: SQLite walks the active bookings and looks each person up (its planner otherwise
# may start from the resident index and probe the bookings: twice as slow on a million).
BOOKED_SQL = """
SELECT r.subdistrict AS subdistrict, r.vaccine AS vaccine, r.first_dose_date AS day, COUNT(*) AS people
FROM booking b CROSS JOIN resident r
WHERE r.id = b.resident_id AND b.status = 'active' AND r.second_dose_date IS NULL
GROUP BY r.subdistrict, r.vaccine, r.first_dose_date
"""

SECONDS_SQL = """
SELECT subdistrict, second_dose_date AS day, COUNT(*) AS people
FROM resident
WHERE second_dose_date IS NOT NULL
GROUP BY subdistrict, second_dose_date
"""


async def cohorts() -> list[dict]:
    """Residents per (sub-district, vaccine, first-dose day): people, given (second doses)."""
    return await rows(RESIDENTS_SQL)


async def booked_cohorts() -> list[dict]:
    """Active bookings without a second dose per (sub-district, vaccine, first-dose day): people."""
    return await rows(BOOKED_SQL)


async def second_doses() -> list[dict]:
    """Second doses given per (sub-district, day): people."""
    return await rows(SECONDS_SQL)


# ---- bookings per channel

# One GROUP BY over the bookings not cancelled; the window (its day, its site) and the person
# (where they live) are joined only when a filter needs them.
CHANNELS_SQL = """
SELECT b.channel AS channel, b.status AS status, COUNT(*) AS bookings
FROM booking b{joins}
WHERE b.status IN ('active', 'done'){where}
GROUP BY b.channel, b.status
"""


async def by_channel(from_day: dt.date | None = None, to_day: dt.date | None = None, *,
                     site_id: int | None = None, subdistrict: str | None = None) -> list[dict]:
    """Bookings active or checked in per (channel, status): bookings; the range picks them by
    their window's day, the site by where it is, the sub-district by where the person lives."""
    joins, where, params = "", "", []
    if from_day or to_day or site_id:
        joins += " JOIN slot s ON s.id = b.slot_id"
        if from_day:
            where, params = where + " AND s.day >= ?", params + [from_day]
        if to_day:
            where, params = where + " AND s.day <= ?", params + [to_day]
        if site_id:
            where, params = where + " AND s.site_id = ?", params + [site_id]
    if subdistrict:
        joins += " JOIN resident r ON r.id = b.resident_id"
        where, params = where + " AND r.subdistrict = ?", params + [subdistrict]
    return await rows(CHANNELS_SQL.format(joins=joins, where=where), params)


# ---- the outbox, for /metrics

# Every message of the outbox by kind and status, counted along the (status, kind) index alone
# (migration 0010): the sent and delivered ones grow to millions, and reading every row of the
# table at each scrape would not do. On SQLite through the read-only reader (models/db/fast.py),
# so a scrape never waits for, nor holds up, a booking.
SMS_BY_KIND = f'SELECT status, kind, COUNT(*) AS n FROM {fast.table(SmsMessage)} GROUP BY status, kind'


async def sms_by_kind() -> list[dict]:
    """The outbox's messages per (status, kind): n."""
    return await fast.rows(SMS_BY_KIND, [])
