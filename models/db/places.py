"""Two rules about a slot, each defined here once in its three forms — Python, a Tortoise filter
and SQL — and tested against each other (tests/test_sql_fence.py):

- it has room: booked + held < capacity (the engine takes a place only with an UPDATE under
  `HAS_ROOM`; a row count of 0 means full);
- its window has started: "09:00" on a day has begun by a moment (rules.interval.has_started,
  the Python form): nobody can book it any more.
"""
from __future__ import annotations

import datetime as dt

from tortoise.expressions import F, Q

from . import dialect


def has_room(capacity: int, booked: int, held: int) -> bool:
    return booked + held < capacity


def free(capacity: int, booked: int, held: int) -> int:
    """The places left to take (never below 0)."""
    return max(capacity - booked - held, 0)


def has_room_sql(alias: str = "") -> str:
    """has_room as an SQL condition on the slot row (`alias`: the table's name in the query)."""
    t = f"{alias}." if alias else ""
    return f"{t}held < {t}capacity - {t}booked"


HAS_ROOM = has_room_sql()


def has_room_filter() -> Q:
    """has_room as a Tortoise filter on Slot."""
    return Q(held__lt=F("capacity") - F("booked"))


def not_started_sql(alias: str = "") -> str:
    """`not has_started` as an SQL condition on the slot row: days after today, and today's
    windows not begun. Its parameters: not_started_params()."""
    t = f"{alias}." if alias else ""
    return f'({t}"day" > ? OR ({t}"day" = ? AND {t}"start" > ?))'


def not_started_params(conn, now: dt.datetime) -> list:
    today = dialect.day(conn, now.date())
    return [today, today, now.strftime("%H:%M")]


def not_started_filter(now: dt.datetime) -> Q:
    """`not has_started` as a Tortoise filter on Slot."""
    return Q(day__gt=now.date()) | Q(day=now.date(), start__gt=now.strftime("%H:%M"))
