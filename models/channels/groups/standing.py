"""Where each row of a list stands, worked out afresh whenever it is shown: the row's own problems
(ID number, name, a repeated row), then the record (found, in the account's area, the name
matching), then the booking service's `stand()`: the same rules as every channel, not written
again here. What the latest action came to for each row is its outcome.

A record outside the account's area answers exactly like no record (NOT_FOUND, "no first-dose
record among this sub-district's residents"): a sub-district account cannot use a list to learn
whether an ID number is on record elsewhere in the district (issue 21, finding 9). Only the audit
trail, which sub-district accounts do not read, says which rows were another area's.
"""
from __future__ import annotations

import datetime as dt
import re
import unicodedata
from collections import Counter
from dataclasses import dataclass

from ...booking import service
from ...booking.service import Standing
from ...db import tuning
from ...db.tables import Booking, GroupList, GroupMember, Resident
from ...district import District
from ...rules.eligibility import Refusal
from ...staff.scope import Area

BOOK, MOVE, CANCEL = "book", "move", "cancel"  # GroupList.last_action
# Where a row stands (Row.status): ELIGIBLE, one of the booking service's refusals (vaccinated,
# booked, restricted, too_early, no_room), or one of the list's own.
ELIGIBLE = "eligible"
INVALID_ID = "invalid_id"  # the ID number's length, characters, birth date, check digit or area
NO_NAME = "no_name"
DUPLICATE = "duplicate"  # the same ID number is on an earlier row
NOT_FOUND = "not_found"  # no first-dose record with this ID number
# No longer given: a record of another area is NOT_FOUND (see the module's docstring). Kept as
# the outcome of rows worked on before, worded like NOT_FOUND.
OTHER_AREA = "other_area"
NAME_MISMATCH = "name_mismatch"  # the record's name is not the name typed
STATUSES = (ELIGIBLE, Refusal.BOOKED.value, Refusal.TOO_EARLY.value, Refusal.VACCINATED.value,
            Refusal.RESTRICTED.value, Refusal.NO_ROOM.value, NOT_FOUND, NAME_MISMATCH, OTHER_AREA,
            DUPLICATE, INVALID_ID, NO_NAME)

# What an action came to for a row (GroupMember.outcome): done, or why not. Besides these, a row
# that could not be booked keeps its status as its outcome (too_early, not_found, …).
BOOKED = "booked"
ALREADY_BOOKED = "already_booked"  # they had a booking already (their own, or this list's)
FULL = "full"  # no place left in the chosen windows
NOT_ALLOWED = "not_allowed"  # the chosen day is outside their interval rule
MOVED = "moved"
UNCHANGED = "unchanged"  # moving: already in one of the chosen windows
CANCELLED = "cancelled"
NOT_OURS = "not_ours"  # move or cancel: no booking made through this list
DONE_OUTCOMES = {BOOK: BOOKED, MOVE: MOVED, CANCEL: CANCELLED}

_SAME_NAME_IGNORES = re.compile(r"[\s·•・.\-]")


@dataclass
class Row:
    """A row of a list and where the person stands now."""

    member: GroupMember
    status: str
    standing: Standing | None = None  # when the record was found, in the area, the name matching
    booking: Booking | None = None  # their active booking (slot and site loaded), if any
    first_row: int | None = None  # DUPLICATE: the row the same ID number is first on
    area: str = ""  # NOT_FOUND: the sub-district the account looked in ("": the whole district)
    outside: bool = False  # NOT_FOUND: for the audit only, never shown: on record, in another area

    @property
    def eligible(self) -> bool:
        return self.status == ELIGIBLE

    @property
    def ours(self) -> bool:
        """Their active booking was made through this list."""
        return self.booking is not None and self.booking.id == self.member.booking_id

    @property
    def opens_on(self) -> dt.date | None:
        return self.standing.window.opens_on if self.standing else None

    @property
    def outcome(self) -> str:
        return self.member.outcome


@dataclass(frozen=True)
class Summary:
    """What the list's latest action came to."""

    action: str  # book, move or cancel ("" before any)
    at: dt.datetime | None
    done: int  # booked, moved or cancelled
    total: int  # rows the action was for
    others: list[tuple[str, int]]  # outcomes of the rest, most frequent first

    @property
    def all_done(self) -> bool:
        return self.done == self.total


def same_name(typed: str, recorded: str) -> bool:
    """Whether a typed name is the record's: spaces, dots and case do not count."""
    fold = lambda s: _SAME_NAME_IGNORES.sub("", unicodedata.normalize("NFKC", s)).casefold()  # noqa: E731
    return bool(typed) and fold(typed) == fold(recorded)


async def _residents(hashes: set[str]) -> dict[str, Resident]:
    found: dict[str, Resident] = {}
    ordered = sorted(hashes)
    for i in range(0, len(ordered), tuning.IN_CLAUSE):
        for resident in await Resident.filter(id_hash__in=ordered[i:i + tuning.IN_CLAUSE]):
            found[resident.id_hash] = resident
    return found


async def rows_of(district: District, group: GroupList, area: Area) -> list[Row]:
    """Every row of the list, in order, with where the person stands now."""
    members = await GroupMember.filter(group_id=group.id).order_by("row")
    residents = await _residents({m.id_hash for m in members if m.id_hash})
    now = district.clock.now()
    first: dict[str, int] = {}
    rows = []
    for member in members:
        rows.append(await _row(district, member, residents, first, area, now))
    return rows


async def _row(district: District, member: GroupMember, residents: dict[str, Resident],
               first: dict[str, int], area: Area, now: dt.datetime) -> Row:
    if member.id_problem:
        return Row(member, INVALID_ID)
    if not member.name:
        return Row(member, NO_NAME)
    if member.id_hash in first:
        return Row(member, DUPLICATE, first_row=first[member.id_hash])
    first[member.id_hash] = member.row
    resident = residents.get(member.id_hash)
    found_id = resident.id if resident else None
    if found_id != member.resident_id:  # imported since, or first looked up now
        await GroupMember.filter(id=member.id).update(resident_id=found_id)
        member.resident_id = found_id
    if resident is None or not await area.covers(resident):  # one answer: see the docstring
        return Row(member, NOT_FOUND, area=area.subdistrict or "", outside=resident is not None)
    if not same_name(member.name, resident.name):
        return Row(member, NAME_MISMATCH)
    standing = await service.stand(district, resident, now)
    status = standing.refusal.value if standing.refusal else ELIGIBLE
    return Row(member, status, standing, standing.booking)


def counts_of(rows: list[Row]) -> dict[str, int]:
    counts = Counter(r.status for r in rows)
    return {s: counts[s] for s in STATUSES if counts[s]}


def summary_of(group: GroupList, rows: list[Row]) -> Summary:
    touched = [r for r in rows if group.runs and r.member.run == group.runs]
    goal = DONE_OUTCOMES.get(group.last_action, "")
    done = sum(r.outcome in (goal, UNCHANGED) for r in touched)
    others = Counter(r.outcome for r in touched if r.outcome not in (goal, UNCHANGED))
    return Summary(group.last_action, group.last_at, done, len(touched), others.most_common())
