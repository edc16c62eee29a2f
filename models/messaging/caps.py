"""How many SMS one phone number may be sent on demand: log-in codes and link re-sends.

Anyone may type anyone's number on the public way in, and a caller may ask the call centre for
their link again and again; each of those asks for an SMS to a number. So, per number, at most
`per_hour` in any 60 minutes and `per_day` in any 24 hours (5 and 10 by default: Alibaba Cloud's
own default for verification codes to one number, so no request we let through is one the
gateway would refuse, and a real person who lost two codes still gets a third and a fourth).
Booking news, reminders and invitations are ours, not asked for by an outsider: they are not
capped here and do not count here, so no confirmation can use up a resident's log-in codes.

Counted in the database, in the very transaction that queues the message: the number's row in
`sms_quota` is taken with INSERT … ON CONFLICT DO UPDATE (PostgreSQL locks the row until the
transaction ends; SQLite has one writer at a time, BEGIN IMMEDIATE), its moments read, the new
one checked against both caps and written. Two requests for one number, from two workers or two
hosts, count one after the other; a refused or rolled-back request counts nothing. Unknown
numbers count exactly as registered ones (models/channels/entry.py: nobody learns which is which).
"""
from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

from ..clock import as_utc
from ..db import counters
from ..db.tables import SmsQuota

HOUR = 3600
DAY = 24 * HOUR


@dataclass(frozen=True)
class SmsCaps:
    """SMS asked for on demand to one number: at most per_hour in any hour, per_day in any day."""

    per_hour: int = 5
    per_day: int = 10


class CapReached(Exception):
    """This number has had all the SMS it may be sent on demand for now; `until`: when the next
    may be asked for (aware, UTC); `window`: hour or day, the cap that refused."""

    def __init__(self, until: dt.datetime, window: str):
        super().__init__(f"SMS cap for this number ({window}) until {until.isoformat()}")
        self.until = until
        self.window = window


def _seconds(moment: dt.datetime) -> int:
    return int(as_utc(moment).timestamp())


def _moment(seconds: int) -> dt.datetime:
    return dt.datetime.fromtimestamp(seconds, dt.timezone.utc)


def next_allowed(times: list[int], now: int, caps: SmsCaps) -> tuple[int, str] | None:
    """None when one more may go now; else (the moment one may, in seconds, and which cap)."""
    refusals = []
    for window, cap in (("day", caps.per_day), ("hour", caps.per_hour)):
        length = DAY if window == "day" else HOUR
        within = sorted(t for t in times if t > now - length)
        if len(within) >= cap:
            # The oldest message that must fall out of the window before another may go.
            refusals.append((within[len(within) - cap] + length if cap > 0 else now + length, window))
    return max(refusals) if refusals else None


class Quota:
    """A number's row, locked for the caller's transaction: its moments of the last day."""

    def __init__(self, phone_hash: str, times: list[int], moment: int):
        self.phone_hash, self.times, self.moment = phone_hash, times, moment

    def check(self, caps: SmsCaps) -> None:
        """CapReached when one more may not go now."""
        refused = next_allowed(self.times, self.moment, caps)
        if refused is not None:
            raise CapReached(_moment(refused[0]), refused[1])

    async def count(self, conn) -> None:
        """Count one more, in the transaction that locked the row."""
        self.times = sorted([*self.times, self.moment])
        await SmsQuota.filter(phone_hash=self.phone_hash).using_db(conn).update(
            times=",".join(str(t) for t in self.times), last_at=self.moment)


async def lock(conn, phone_hash: str, *, now: dt.datetime) -> Quota:
    """The number's row, taken (created when new) and locked for the caller's transaction `conn`;
    whoever asks for the same number meanwhile waits until that transaction ends."""
    if not phone_hash:
        raise ValueError("a phone number's hash is needed")
    moment = _seconds(now)
    text = await counters.lock_quota(conn, phone_hash, moment)
    times = [int(t) for t in text.split(",") if t.strip().isdigit()]
    return Quota(phone_hash, [t for t in times if t > moment - DAY], moment)  # older: forgotten


async def take(conn, phone_hash: str, *, now: dt.datetime, caps: SmsCaps) -> None:
    """Count one SMS asked for to this number, in the caller's transaction `conn` (which queues
    it): CapReached when the number has had its share, and then nothing is counted (the caller
    lets the exception roll its transaction back)."""
    quota = await lock(conn, phone_hash, now=now)
    quota.check(caps)
    await quota.count(conn)


async def forget(now: dt.datetime) -> int:
    """Delete the numbers with nothing asked for in the last day (the purge runs it): how many.
    Their counts are over anyway, and a keyed hash of a number is kept no longer than it is used."""
    return await SmsQuota.filter(last_at__lte=_seconds(now) - DAY).delete()
