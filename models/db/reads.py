"""The reads of every resident page, each written once in SQL and run by models/db/fast.py (the
SQLite reader beside Tortoise's connection; rows become the model objects Tortoise makes).

Who asks: people/links.py (the link, its resident and first-dose site), people/residents.py (the
active booking with its slot and site, a marked risk area), booking/availability.py (open sites,
days and windows, whether any place is free). The rules a slot's row is judged by — it has room,
its window has not started — are models/db/places.py's.
"""
from __future__ import annotations

import datetime as dt
from functools import lru_cache

from . import dialect, fast, places
from .tables import Booking, Link, Resident, RiskArea, Site, Slot


# ---- links and residents


@lru_cache(maxsize=1)
def _link_sql() -> str:
    return (f"SELECT {fast.columns(Link, 'l')}, {fast.columns(Resident, 'r')}, "
            f"{fast.columns(Site, 's')} FROM {fast.table(Link)} l "
            f"JOIN {fast.table(Resident)} r ON r.id = l.resident_id "
            f"LEFT JOIN {fast.table(Site)} s ON s.id = r.first_site_id WHERE l.id = ?")


async def link_with_resident(link_id: int) -> Link | None:
    """The link by row id, its resident and their first-dose site loaded (live or not)."""
    found = await fast.rows(_link_sql(), [link_id])
    if not found:
        return None
    link = fast.load(Link, found[0], "l")
    resident = fast.load(Resident, found[0], "r")
    fast.attach(resident, "first_site", fast.load(Site, found[0], "s"))
    fast.attach(link, "resident", resident)
    return link


@lru_cache(maxsize=1)
def _booking_sql() -> str:
    return (f"SELECT {fast.columns(Booking, 'b')}, {fast.columns(Slot, 'sl')}, "
            f"{fast.columns(Site, 's')} FROM {fast.table(Booking)} b "
            f"JOIN {fast.table(Slot)} sl ON sl.id = b.slot_id "
            f"JOIN {fast.table(Site)} s ON s.id = sl.site_id "
            # The status as a literal, not a parameter: so SQLite can use the partial index
            # booking_one_active_per_resident (with `status = ?` it reads every active booking).
            f"WHERE b.resident_id = ? AND b.status = '{Booking.ACTIVE}' LIMIT 1")


async def active_booking(resident_id: int) -> Booking | None:
    """The resident's active booking, slot and site loaded."""
    found = await fast.rows(_booking_sql(), [resident_id])
    if not found:
        return None
    booking = fast.load(Booking, found[0], "b")
    slot = fast.load(Slot, found[0], "sl")
    fast.attach(slot, "site", fast.load(Site, found[0], "s"))
    fast.attach(booking, "slot", slot)
    return booking


async def risk_marked(subdistrict: str, today: dt.date) -> bool:
    """Whether the sub-district is marked a risk area as of `today`."""
    conn = fast.db()
    return bool(await fast.rows(
        f"SELECT 1 AS hit FROM {fast.table(RiskArea)} WHERE subdistrict = ? "
        "AND (since IS NULL OR since <= ?) LIMIT 1",
        [subdistrict, dialect.day(conn, today)], conn))


# ---- what is free


async def open_site(site_id: int) -> Site | None:
    """The site if it is open for booking."""
    found = await fast.rows(f"SELECT {fast.columns(Site, 's')} FROM {fast.table(Site)} s "
                            "WHERE s.id = ? AND s.active = ?", [site_id, True])
    return fast.load(Site, found[0], "s") if found else None


async def slot_at(site_id: int, slot_id: int) -> Slot | None:
    """One of the site's windows by id."""
    found = await fast.rows(f"SELECT {fast.columns(Slot, 'sl')} FROM {fast.table(Slot)} sl "
                            "WHERE sl.id = ? AND sl.site_id = ?", [slot_id, site_id])
    return fast.load(Slot, found[0], "sl") if found else None


# A slot `sl` with a free place, on or after a day, open, not begun; the parameters:
# _open_params(). (availability's _open_slots is the same as a Tortoise filter.)
OPEN_SLOT = (f"sl.\"day\" >= ? AND {places.has_room_sql('sl')} AND sl.closed_reason = '' "
             f"AND {places.not_started_sql('sl')}")


def _open_params(conn, from_day: dt.date, now: dt.datetime) -> list:
    return [dialect.day(conn, from_day), *places.not_started_params(conn, now)]


@lru_cache(maxsize=1)
def _sites_sql() -> str:
    # Each active site with its first day that has a free place: asked per site in day order
    # along the slot index (site_id, day, start), so it stops at the first such slot instead of
    # grouping every open slot of the district (10 ms for 100 sites of 14 days).
    return (f"SELECT {fast.columns(Site, 's')}, (SELECT sl.\"day\" FROM {fast.table(Slot)} sl "
            f"WHERE sl.site_id = s.id AND {OPEN_SLOT} ORDER BY sl.\"day\" LIMIT 1) AS first_day "
            f"FROM {fast.table(Site)} s WHERE s.active = ? ORDER BY s.subdistrict, s.code")


async def sites_with_first_free_day(from_day: dt.date, now: dt.datetime) -> list[tuple[Site, object]]:
    """Every active site, with the first day on or after `from_day` it has a free place on (as
    the database gives the day; None when it has none)."""
    conn = fast.db()
    rows = await fast.rows(_sites_sql(), [*_open_params(conn, from_day, now), True], conn)
    return [(fast.load(Site, row, "s"), row["first_day"]) for row in rows]


@lru_cache(maxsize=2)
def _room_sql(one_site: bool) -> str:
    return (f"SELECT 1 AS hit FROM {fast.table(Slot)} sl JOIN {fast.table(Site)} s ON s.id = sl.site_id "
            f"WHERE {'sl.site_id = ? AND ' if one_site else ''}s.active = ? AND {OPEN_SLOT} LIMIT 1")


async def any_open_slot(from_day: dt.date, now: dt.datetime, site_id: int | None = None) -> bool:
    """Whether an active site (or this one) has a free place on or after `from_day`: the first
    open slot found, however many there are."""
    conn = fast.db()
    first = [site_id] if site_id is not None else []
    return bool(await fast.rows(_room_sql(site_id is not None),
                                [*first, True, *_open_params(conn, from_day, now)], conn))


async def site_slot_rows(site_id: int, from_day: dt.date) -> list[dict]:
    """The site's open windows from a day on, as plain rows (day, start, capacity, booked, held):
    two weeks of a site are 100 or more, no model object each."""
    conn = fast.db()
    return await fast.rows(
        f'SELECT "day", "start", capacity, booked, held FROM {fast.table(Slot)} '
        "WHERE site_id = ? AND \"day\" >= ? AND closed_reason = '' ORDER BY \"day\", \"start\"",
        [site_id, dialect.day(conn, from_day)], conn)


async def day_windows(site_id: int, day: dt.date) -> list[Slot]:
    """The site's open windows of one day, by start."""
    conn = fast.db()
    rows = await fast.rows(
        f"SELECT {fast.columns(Slot, 'sl')} FROM {fast.table(Slot)} sl WHERE sl.site_id = ? "
        "AND sl.\"day\" = ? AND sl.closed_reason = '' ORDER BY sl.\"start\"",
        [site_id, dialect.day(conn, day)], conn)
    return [fast.load(Slot, row, "sl") for row in rows]
