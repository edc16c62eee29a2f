"""The district's wall clock (Asia/Shanghai). Tests replace `local_now` to travel in time."""
from __future__ import annotations

import datetime as dt
from zoneinfo import ZoneInfo

TZ = ZoneInfo("Asia/Shanghai")


def local_now() -> dt.datetime:
    return dt.datetime.now(TZ)


def today() -> dt.date:
    return local_now().date()


def utc_now() -> dt.datetime:
    return dt.datetime.now(dt.timezone.utc)
