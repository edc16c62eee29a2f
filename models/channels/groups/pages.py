"""The pages of a list: every row's standing with the picker to book its eligible, the move and
cancel pages (the list's own bookings, or one person's), and the latest action's result."""
from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

from ...db.tables import GroupList, StaffUser
from ...district import District
from ...staff.scope import Area
from .picker import Picker, picker_for
from .standing import Row, Summary, counts_of, rows_of, summary_of
from .storage import find_list

@dataclass(frozen=True)
class ListPage:
    group: GroupList
    rows: list[Row]
    counts: dict[str, int]  # rows per status
    picker: Picker | None = None
    summary: Summary | None = None

    @property
    def eligible(self) -> list[Row]:
        return [r for r in self.rows if r.eligible]

    @property
    def ours(self) -> list[Row]:
        return [r for r in self.rows if r.ours]


async def list_page(district: District, user: StaffUser, list_id: int | None, *,
                    site_id: int | None = None, day: dt.date | None = None,
                    slot_ids: list[int] = ()) -> ListPage:
    """A list with every row's standing, and the site, day and windows to book its eligible."""
    group = await find_list(user, list_id)
    rows = await rows_of(district, group, Area.of(user))
    eligible = [r for r in rows if r.eligible]
    picker = await picker_for(district, group, eligible, site_id, day, list(slot_ids))
    return ListPage(group, rows, counts_of(rows), picker, summary_of(group, rows))


async def move_page(district: District, user: StaffUser, list_id: int | None, *,
                    member_id: int | None = None, site_id: int | None = None,
                    day: dt.date | None = None, slot_ids: list[int] = ()) -> ListPage:
    """The people a move is for (the list's bookings, or one person's) and where to."""
    group = await find_list(user, list_id)
    rows = await rows_of(district, group, Area.of(user))
    rows = [r for r in rows if r.ours and (member_id is None or r.member.id == member_id)]
    current = rows[0].booking.slot if rows else None
    if site_id is None and current:  # start from where they are booked
        site_id, day = current.site_id, day or current.day
    picker = await picker_for(district, group, rows, site_id, day, list(slot_ids))
    return ListPage(group, rows, counts_of(rows), picker)


async def cancel_page(district: District, user: StaffUser, list_id: int | None, *,
                      member_id: int | None = None) -> ListPage:
    """The bookings a cancellation is for: the list's, or one person's."""
    group = await find_list(user, list_id)
    rows = await rows_of(district, group, Area.of(user))
    rows = [r for r in rows if r.ours and (member_id is None or r.member.id == member_id)]
    return ListPage(group, rows, counts_of(rows))


async def result_page(district: District, user: StaffUser, list_id: int | None) -> ListPage:
    """Every row with what the latest action came to, and where they stand now."""
    group = await find_list(user, list_id)
    rows = await rows_of(district, group, Area.of(user))
    return ListPage(group, rows, counts_of(rows), summary=summary_of(group, rows))
