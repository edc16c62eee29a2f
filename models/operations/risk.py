"""Risk areas: sub-districts marked medium or high risk from a day, and their people's bookings.

While a sub-district is marked (from `since` on), its residents cannot book or move
(`booking.service.stand` says RESTRICTED), and check-in refuses them (`operations.checkin`).
Lifting deletes the row. The district may cancel the active bookings of the people in a marked
area: each through the booking service, with an SMS saying why.
"""
from __future__ import annotations

import datetime as dt
import hashlib
from dataclasses import dataclass

from ..booking import service
from ..db.tables import Booking, Resident, RiskArea
from ..district import District
from ..messaging import wording
from ..messaging.sms import Sms
from ..rules.tianhe import SUBDISTRICTS, normalise_subdistrict  # noqa: F401 (the form's choices)

LEVELS = ("medium", "high")
SMS_KIND = "risk_cancel"


class RiskError(ValueError):
    """The marking cannot be made as asked; `reason` says which field: subdistrict, level or since."""

    def __init__(self, reason: str):
        super().__init__(reason)
        self.reason = reason


@dataclass(frozen=True)
class MarkedArea:
    """A marked sub-district as the admin sees it."""

    id: int
    subdistrict: str
    level: str
    since: dt.date | None  # None: from the moment it was marked
    marked_at: dt.datetime
    in_force: bool  # its residents are refused today
    residents: int  # people on record there without a second dose
    bookings: int  # their active bookings


@dataclass(frozen=True)
class Marked:
    area: RiskArea
    created: bool  # False: an existing marking was changed


@dataclass(frozen=True)
class Cancelled:
    area: RiskArea
    asked: int  # active bookings found to cancel
    cancelled: int  # cancelled now (the others were cancelled, moved out or checked in meanwhile)
    changed: bool = False  # the list is no longer the one shown: nothing was cancelled


def shown_digest(booking_ids) -> str:
    """Ties "cancel all N" to the N bookings its page listed (the form carries it back)."""
    return hashlib.sha256(",".join(map(str, sorted(booking_ids))).encode()).hexdigest()[:24]


def in_force(area: RiskArea, today: dt.date) -> bool:
    return area.since is None or area.since <= today


async def marked(today: dt.date) -> list[MarkedArea]:
    """Every marked sub-district, with how many people and active bookings it holds."""
    rows = []
    for area in await RiskArea.all().order_by("subdistrict"):
        residents = await Resident.filter(subdistrict=area.subdistrict,
                                          second_dose_date__isnull=True).count()
        bookings = await Booking.filter(status=Booking.ACTIVE,
                                        resident__subdistrict=area.subdistrict).count()
        rows.append(MarkedArea(area.id, area.subdistrict, area.level, area.since, area.marked_at,
                               in_force(area, today), residents, bookings))
    return rows


async def area_by_id(area_id: int | None) -> RiskArea | None:
    return await RiskArea.get_or_none(id=area_id) if area_id else None


async def mark(subdistrict: str, level: str, since: dt.date | None, *, today: dt.date) -> Marked:
    """Mark a sub-district `level` risk from `since` (None: today); change it if already marked.

    Raise RiskError("subdistrict") for a name not in Tianhe, ("level") for a level other than
    medium or high, ("since") for a day before today."""
    name = normalise_subdistrict(subdistrict)
    if name is None:
        raise RiskError("subdistrict")
    if level not in LEVELS:
        raise RiskError("level")
    since = since or today
    if since < today:
        raise RiskError("since")
    area, created = await RiskArea.get_or_create(subdistrict=name,
                                                 defaults={"level": level, "since": since})
    if not created and (area.level, area.since) != (level, since):
        await RiskArea.filter(id=area.id).update(level=level, since=since)
        area.level, area.since = level, since
    return Marked(area, created)


async def lift(area_id: int | None) -> RiskArea | None:
    """Lift the marking: its residents may book again at once. The row as it was, or None."""
    area = await area_by_id(area_id)
    if area is None:
        return None
    await RiskArea.filter(id=area.id).delete()
    return area


def _active_in(subdistrict: str):
    return Booking.filter(status=Booking.ACTIVE, resident__subdistrict=subdistrict)


async def bookings_in(subdistrict: str) -> list[Booking]:
    """The active bookings of the people living in the sub-district, by day and time (slot__site
    and resident loaded)."""
    return await _active_in(subdistrict).select_related("slot__site", "resident").order_by(
        "slot__day", "slot__start", "id")


async def cancel_bookings(district: District, area_id: int | None,
                          booking_id: int | None = None, *, shown: str = "") -> Cancelled | None:
    """Cancel the active bookings of the area's people (or only `booking_id`, if it is one of
    them), one by one through the booking service, each with an SMS saying why. None when the
    area is not marked (any more). Running it again cancels nobody twice. All of them only when
    they are still the ones the page showed (`shown`: their shown_digest); else nothing is
    cancelled and `changed` says so."""
    area = await area_by_id(area_id)
    if area is None:
        return None
    query = _active_in(area.subdistrict)
    if booking_id:
        query = query.filter(id=booking_id)
    found = await query.order_by("id").values_list("id", "resident_id")
    if not booking_id and shown != shown_digest(bid for bid, _ in found):
        return Cancelled(area, len(found), 0, changed=True)

    def sms(resident: Resident, booking: Booking) -> Sms:
        return wording.risk_cancel_sms(resident, booking, subdistrict=area.subdistrict, level=area.level)

    done = 0
    for bid, rid in found:
        _, cancelled = await service.cancel_because(district, rid, bid, kind=SMS_KIND, sms=sms)
        done += cancelled
    return Cancelled(area, len(found), done)
