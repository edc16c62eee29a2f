"""The district's wall clock (Asia/Shanghai), as an object handed to whatever needs the time.

The running service uses SystemClock; tests hand in a clock fixed at a moment they choose.
"""
from __future__ import annotations

import datetime as dt
from zoneinfo import ZoneInfo

TZ = ZoneInfo("Asia/Shanghai")


class SystemClock:
    """The real time, in Beijing time."""

    def now(self) -> dt.datetime:
        return dt.datetime.now(TZ)

    def today(self) -> dt.date:
        return self.now().date()

    def utc(self) -> dt.datetime:
        return self.now().astimezone(dt.timezone.utc)


class FixedClock(SystemClock):
    """A clock that shows one moment until moved on (tests, and the demo loaded as of a day)."""

    def __init__(self, moment: dt.datetime):
        self.moment = moment.astimezone(TZ)

    def now(self) -> dt.datetime:
        return self.moment

    def advance(self, **delta: float) -> None:
        """Move the clock on, e.g. advance(minutes=6)."""
        self.moment += dt.timedelta(**delta)


def as_utc(moment: dt.datetime) -> dt.datetime:
    return moment.astimezone(dt.timezone.utc)


def as_date(value) -> dt.date:
    """A DATE column read through an aggregate comes back as text on SQLite: make it a date."""
    return value if isinstance(value, dt.date) else dt.date.fromisoformat(str(value)[:10])
