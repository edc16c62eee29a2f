"""Which residents a staff account may see, search, reveal and book: its area.

The call centre (12345) and admins serve the whole district. A sub-district account serves the
residents of its sub-district (Resident.subdistrict, from the first-dose import); so does a clinic
account (family doctors, a community health centre) bound to one, and one made district-wide on
purpose (StaffUser.district_wide) serves the whole district, one with neither nobody; a site
account the people booked at, or first vaccinated at, its site. Everything outside is refused on the
server (the web layer audits each refusal), whatever the URL or form says.
"""
from __future__ import annotations

from dataclasses import dataclass

from tortoise.expressions import Q, Subquery

from ..db.tables import Booking, Resident, StaffUser

WHOLE_DISTRICT_ROLES = ("callcentre", "admin")


class OutsideArea(Exception):
    """The resident is not in this account's area; `resident_id` says who (for the audit)."""

    def __init__(self, resident_id: int | None = None):
        super().__init__(resident_id)
        self.resident_id = resident_id


@dataclass(frozen=True)
class Area:
    subdistrict: str | None = None  # set: only residents of this sub-district
    site_id: int | None = None  # set: only people of this site
    everyone: bool = False

    @classmethod
    def of(cls, user: StaffUser) -> "Area":
        if user.role in WHOLE_DISTRICT_ROLES:
            return cls(everyone=True)
        if user.role == "subdistrict":
            return cls(subdistrict=user.subdistrict or "")  # an account without one sees nobody
        if user.role == "clinic":  # a family doctor / health centre: its sub-district, or all on purpose
            if user.subdistrict:
                return cls(subdistrict=user.subdistrict)
            return cls(everyone=True) if user.district_wide else cls(subdistrict="")
        if user.role == "site":
            return cls(site_id=user.site_id or 0)
        return cls(subdistrict="")  # an unknown role: nobody

    def where(self) -> Q:
        """The residents of the area, as a filter on Resident."""
        if self.everyone:
            return Q()
        if self.subdistrict is not None:
            return Q(subdistrict=self.subdistrict) & ~Q(subdistrict="")
        # A subquery, not a join: one row per resident, and an index lookup on each side.
        booked_here = Booking.filter(slot__site_id=self.site_id).values("resident_id")
        return Q(first_site_id=self.site_id) | Q(id__in=Subquery(booked_here))

    async def covers(self, resident: Resident) -> bool:
        if self.everyone:
            return True
        if self.subdistrict is not None:
            return bool(self.subdistrict) and resident.subdistrict == self.subdistrict
        return await Resident.filter(self.where(), id=resident.id).exists()

    async def check(self, resident: Resident) -> Resident:
        """The resident, or OutsideArea."""
        if not await self.covers(resident):
            raise OutsideArea(resident.id)
        return resident

    async def covers_booking(self, booking: Booking) -> bool:
        """A booking is in the area when its person is; for a site, when it is at that site."""
        if self.everyone:
            return True
        if self.site_id is not None:
            return await Booking.filter(id=booking.id, slot__site_id=self.site_id).exists()
        return await Resident.filter(self.where(), id=booking.resident_id).exists()

    async def check_booking(self, booking: Booking) -> Booking:
        """The booking, or OutsideArea (with its resident's id)."""
        if not await self.covers_booking(booking):
            raise OutsideArea(booking.resident_id)
        return booking
