"""Group booking (/group): a sub-district office or a residents' committee books a list of people
together — its elderly residents, a workplace's staff.

A list is uploaded or pasted (`name,id_number,phone`, the header optional) with the imports' CSV
conventions (models/operations/imports.py: read_csv(): UTF-8 with or without a BOM, blank lines
skipped, cells trimmed), full-width digits and commas folded, spaces and dashes dropped from
numbers; a tab between columns (a spreadsheet pasted) counts as a comma. People may also be added
one at a time. ID numbers are kept hashed (to find the record), encrypted and masked, never in
clear; the phone typed is kept encrypted and masked (the SMS goes to the number on the record).

Each row's standing is worked out afresh whenever it is shown: the row's own problems (ID number,
name, a repeated row), then the record (found, in the account's area, the name matching), then
the booking service's `stand()`: the same rules as every channel, not written again here.

A record outside the account's area answers exactly like no record (NOT_FOUND, "no first-dose
record among this sub-district's residents"): a sub-district account cannot use a list to learn
whether an ID number is on record elsewhere in the district (issue 21, finding 9). Only the audit
trail, which sub-district accounts do not read, says which rows were another area's.

Booking, moving and cancelling go through the booking service a person at a time, each in the
service's own transactions (`choose` holds, `confirm` books or moves, `cancel`), channel "group":
a group racing a crowd never overbooks, and what a row says the person got is what was written.
The booking form carries a key; each person's request key is made from it and their row, so a
form posted twice books nobody twice. A list's own bookings (GroupMember.booking) are the ones
its move and cancel act on; a booking the person made themselves is left alone.
"""
from __future__ import annotations

import csv
import datetime as dt
import hashlib
import io
import re
import unicodedata
from collections import Counter
from dataclasses import dataclass, field

from tortoise.exceptions import IntegrityError
from tortoise.expressions import F, Q
from tortoise.functions import Count
from tortoise.transactions import in_transaction

from ..booking import availability, service
from ..booking_codes import format_code
from ..booking.availability import DayChoice
from ..booking.service import Standing
from ..db.tables import Booking, GroupList, GroupMember, Resident, Site, Slot, StaffUser
from ..district import District
from ..people import pii
from ..rules.eligibility import Refusal, Refused
from ..rules.interval import has_started
from ..staff.scope import Area
from . import imports

CHANNEL = "group"  # Booking.channel of a group's bookings
MAX_ROWS = 500  # rows in one list: a committee's list is tens, a workplace's a few hundred
MAX_WINDOWS = 20  # time windows one booking or move may fill
BOOK, MOVE, CANCEL = "book", "move", "cancel"  # GroupList.last_action
LIST_COLUMNS = ("name", "id_number", "phone")  # in this order when there is no header
REQUIRED = ("name", "id_number")

# A header cell, as committees write it, and the column it names.
HEADER_NAMES = {
    "name": "name", "姓名": "name", "名字": "name",
    "id_number": "id_number", "id": "id_number", "身份证": "id_number", "身份证号": "id_number",
    "身份证号码": "id_number", "证件号码": "id_number", "公民身份号码": "id_number",
    "phone": "phone", "mobile": "phone", "手机": "phone", "手机号": "phone", "手机号码": "phone",
    "电话": "phone", "联系电话": "phone",
}

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
# What _prepared() folds in an upload: full-width digits, X and commas (separators, ID numbers
# and phones); nothing else, so names stay as typed.
_FOLD = str.maketrans("０１２３４５６７８９Ｘｘ，", "0123456789Xx,")


class ListError(ValueError):
    """A list or an action cannot be taken as given; `code` says why: no_name (the list needs a
    name), no_area (the account has no sub-district), too_many (more than MAX_ROWS rows),
    no_windows (no open time window chosen)."""

    def __init__(self, code: str):
        super().__init__(code)
        self.code = code


class NoSuchList(LookupError):
    """No list with this id."""


class Changed(Exception):
    """The choice posted is not what the page showed (a select changed and the page was not
    looked at again, or the list or the places changed meanwhile): nothing was done. `page` is
    the list (or move) page for the choice as posted, to show again."""

    def __init__(self, page: "ListPage"):
        super().__init__("changed")
        self.page = page


class NotYours(Exception):
    """The list belongs to another sub-district: this account may not see it."""

    def __init__(self, list_id: int):
        super().__init__(list_id)
        self.list_id = list_id


@dataclass(frozen=True)
class Typed:
    """One person as typed: nothing checked yet."""

    name: str
    id_number: str
    phone: str = ""


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
class Fit:
    """How many of the people an action is for fit the chosen windows."""

    people: int  # eligible (booking) or booked through the list (moving)
    allowed: int  # of them, those whose interval rule allows the chosen day
    free: int  # free places in the chosen windows

    @property
    def fits(self) -> int:
        return min(self.allowed, self.free)


@dataclass(frozen=True)
class Picker:
    """Site, day and time windows to book or move to, with free places and the fit. `digest`
    sums up what the page shows (the list, site, day, windows ticked, the people it is for and
    how many fit): the action's form carries it, and the action is taken only if the same choice
    still gives the same digest (see book_shown())."""

    sites: list[Site]
    site: Site | None
    days: list[DayChoice]
    day: dt.date | None
    windows: list[Slot]  # the day's windows not yet begun, at the site
    chosen: list[Slot]  # only the windows ticked (none until the clerk ticks one)
    fit: Fit | None
    digest: str = ""


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


@dataclass(frozen=True)
class Change:
    """A booking made, moved or cancelled by an action (for the audit trail)."""

    kind: str  # book, move or cancel
    resident_id: int
    booking: Booking
    where: str = ""  # site code, day and start of a booking made or moved

    @property
    def detail(self) -> str:
        return f"{format_code(self.booking.code)} {self.where}".strip()


@dataclass(frozen=True)
class Done:
    group: GroupList
    changes: list[Change] = field(default_factory=list)
    outside: list[GroupMember] = field(default_factory=list)  # rows refused: another sub-district


# ---- reading a list


def _prepared(data: bytes) -> str:
    """The text of an upload or a paste as a CSV file with our header, for imports.read_csv()."""
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError:
        raise imports.ImportFileError("not UTF-8 text", "not_utf8") from None
    # Full-width commas and digits (an input method's), and the tabs of a pasted spreadsheet.
    # Only these: a name keeps its full-width punctuation as typed (「·」「（」), see _clean().
    lines = text.translate(_FOLD).splitlines()
    lines = [line.replace("\t", ",") if "\t" in line and "," not in line else line for line in lines]
    first = next((i for i, line in enumerate(lines) if line.strip()), None)
    if first is None:
        raise imports.ImportFileError("no rows", "empty")
    try:
        cells = next(csv.reader([lines[first]]))
    except csv.Error:
        cells = []
    named = [HEADER_NAMES.get(c.strip().lower()) for c in cells]
    if any(named):
        lines[first] = ",".join(n or f"column{i}" for i, n in enumerate(named))
    else:
        lines.insert(first, ",".join(LIST_COLUMNS))
    return "\n".join(lines) + "\n"


def parse_list(data: bytes, filename: str = "list") -> list[Typed]:
    """The people of an uploaded or pasted list. Raises imports.ImportFileError (not_utf8,
    bad_csv, long_line, missing_columns, empty) or ListError (too_many)."""
    binary = io.BytesIO(_prepared(data).encode())
    people = []
    for _, row in imports.read_csv(binary, filename, REQUIRED):
        people.append(Typed(row["name"], row["id_number"], row.get("phone", "")))
        if len(people) > MAX_ROWS:
            raise ListError("too_many")
    return people


def _clean(text: str, limit: int) -> str:
    """A name as typed (full-width punctuation kept: same_name() folds it only to compare), fit
    to keep and show: a long digit run (an ID or phone number in the wrong column) starred out."""
    text = "".join(ch for ch in text or "" if ch.isprintable() or ch == "\u3000").strip()
    return imports.LONG_NUMBER.sub(lambda m: "*" * len(m.group()), text)[:limit]


def _mask_any(text: str) -> str:
    """Something typed as an ID number that is not one, masked like one (pii.mask_id: the
    region and the last two characters)."""
    text = text[:18]
    return text[:6] + "*" * (len(text) - 8) + text[-2:] if len(text) >= 12 else "*" * len(text)


def _member_fields(vault: pii.Vault, person: Typed) -> dict:
    fields_: dict = {"name": _clean(person.name, 50)}
    typed = pii.normalise_id(person.id_number)[:40]
    try:
        number = pii.validate_id(typed)
    except pii.InvalidIdNumber as exc:
        fields_.update(id_problem=exc.reason if typed else "empty", id_masked=_mask_any(typed),
                       id_cipher=vault.encrypt(typed) if typed else "")
    else:
        fields_.update(id_hash=vault.keyed_hash(number), id_cipher=vault.encrypt(number),
                       id_masked=pii.mask_id(number))
    try:
        phone = pii.normalise_phone(person.phone) if person.phone.strip() else ""
    except pii.InvalidPhone:
        phone = ""  # not needed to book: the SMS goes to the number on the record
    if phone:
        fields_.update(phone_cipher=vault.encrypt(phone), phone_masked=pii.mask_phone(phone))
    return fields_


# ---- lists: who sees which


def _visible(user: StaffUser) -> Q:
    """The lists this account may see: an admin all; a sub-district account its sub-district's."""
    area = Area.of(user)
    if area.everyone:
        return Q()
    if area.subdistrict:
        return Q(subdistrict=area.subdistrict)
    return Q(id=0)  # nobody's


async def create_list(vault: pii.Vault, user: StaffUser, name: str, data: bytes = b"",
                      filename: str = "list") -> GroupList:
    """A new list owned by `user` (for its sub-district), with the rows of an uploaded or pasted
    list (`data`; none: people are added one by one); `rows` set to their number. Raises
    ListError (no_name, too_many) or imports.ImportFileError, and then nothing is written."""
    area = Area.of(user)
    if not (area.everyone or area.subdistrict):
        raise ListError("no_area")  # an account with no sub-district could never see its list
    name = _clean(name, 100)
    if not name:
        raise ListError("no_name")
    people = parse_list(data, filename) if data.strip() else []
    subdistrict = area.subdistrict or ""
    async with in_transaction() as conn:
        group = await GroupList.create(name=name, owner=user, subdistrict=subdistrict, using_db=conn)
        if people:
            await GroupMember.bulk_create(
                [GroupMember(group=group, row=n, **_member_fields(vault, p))
                 for n, p in enumerate(people, 1)], using_db=conn)
    group.rows = len(people)
    return group


async def lists_for(user: StaffUser, limit: int = 100) -> list[GroupList]:
    """The lists this account may see, newest first, with `rows` (their number of rows)."""
    found = await GroupList.filter(_visible(user)).order_by("-id").limit(limit).select_related("owner")
    counts = await (GroupMember.filter(group_id__in=[g.id for g in found]).annotate(n=Count("id"))
                    .group_by("group_id").values("group_id", "n")) if found else []
    rows = {c["group_id"]: c["n"] for c in counts}
    for group in found:
        group.rows = rows.get(group.id, 0)
    return found


async def find_list(user: StaffUser, list_id: int | None) -> GroupList:
    """The list, if this account may see it; else NoSuchList or NotYours."""
    group = await GroupList.get_or_none(id=list_id or 0).select_related("owner")
    if group is None:
        raise NoSuchList(list_id)
    if not await GroupList.filter(_visible(user), id=group.id).exists():
        raise NotYours(group.id)
    return group


async def add_member(vault: pii.Vault, user: StaffUser, list_id: int | None, person: Typed) -> GroupMember:
    """Add one person at the end of the list (ListError too_many when it is full)."""
    group = await find_list(user, list_id)
    values = _member_fields(vault, person)
    for attempt in range(3):  # two people adding at once: the second takes the next row
        rows = await GroupMember.filter(group_id=group.id).values_list("row", flat=True)
        if len(rows) >= MAX_ROWS:
            raise ListError("too_many")
        try:
            return await GroupMember.create(group=group, row=max(rows, default=0) + 1, **values)
        except IntegrityError:
            if attempt == 2:
                raise
    raise AssertionError("unreachable")


async def find_member(user: StaffUser, list_id: int | None, member_id: int | None) -> GroupMember:
    """A row of a list this account may see (NoSuchList when the row is not on that list)."""
    group = await find_list(user, list_id)
    member = await GroupMember.get_or_none(id=member_id or 0, group_id=group.id)
    if member is None:
        raise NoSuchList(list_id)
    member.group = group
    return member


async def _booked_through_list(member: GroupMember) -> bool:
    return bool(member.booking_id) and await Booking.filter(id=member.booking_id,
                                                            status=Booking.ACTIVE).exists()


async def correct_member(vault: pii.Vault, user: StaffUser, list_id: int | None,
                         member_id: int | None, person: Typed) -> GroupMember:
    """Correct a row as retyped: the name; the ID number and the phone only when typed again
    (empty: kept). The row keeps its number; its old outcome goes (it was another person's).
    ListError booked_row for a row this list has booked (move or cancel it instead), no_name."""
    member = await find_member(user, list_id, member_id)
    if await _booked_through_list(member):
        raise ListError("booked_row")
    values = _member_fields(vault, Typed(person.name, person.id_number or "", person.phone))
    if not values["name"]:
        raise ListError("no_name")
    if not person.id_number.strip():  # kept: only the name (and perhaps the phone) changes
        values = {k: v for k, v in values.items() if not k.startswith("id_")}
    else:  # a new ID number: clear what the old one left
        values = {"id_hash": "", "id_cipher": "", "id_masked": "", "id_problem": "", **values,
                  "resident_id": None}
    if not person.phone.strip():
        values = {k: v for k, v in values.items() if not k.startswith("phone_")}
    values.update(outcome="", run=0, booking_id=None)
    await GroupMember.filter(id=member.id).update(**values)
    await member.refresh_from_db()
    return member


async def remove_member(user: StaffUser, list_id: int | None, member_id: int | None) -> GroupMember:
    """Take a row off the list (the others keep their numbers). ListError booked_row for a row
    this list has booked: cancel it first."""
    member = await find_member(user, list_id, member_id)
    if await _booked_through_list(member):
        raise ListError("booked_row")
    await GroupMember.filter(id=member.id).delete()
    return member


# ---- where each row stands


def same_name(typed: str, recorded: str) -> bool:
    """Whether a typed name is the record's: spaces, dots and case do not count."""
    fold = lambda s: _SAME_NAME_IGNORES.sub("", unicodedata.normalize("NFKC", s)).casefold()  # noqa: E731
    return bool(typed) and fold(typed) == fold(recorded)


async def _residents(hashes: set[str]) -> dict[str, Resident]:
    found: dict[str, Resident] = {}
    ordered = sorted(hashes)
    for i in range(0, len(ordered), imports.IN_CLAUSE):
        for resident in await Resident.filter(id_hash__in=ordered[i:i + imports.IN_CLAUSE]):
            found[resident.id_hash] = resident
    return found


async def _rows(district: District, group: GroupList, area: Area) -> list[Row]:
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


def _counts(rows: list[Row]) -> dict[str, int]:
    counts = Counter(r.status for r in rows)
    return {s: counts[s] for s in STATUSES if counts[s]}


def _summary(group: GroupList, rows: list[Row]) -> Summary:
    touched = [r for r in rows if group.runs and r.member.run == group.runs]
    goal = DONE_OUTCOMES.get(group.last_action, "")
    done = sum(r.outcome in (goal, UNCHANGED) for r in touched)
    others = Counter(r.outcome for r in touched if r.outcome not in (goal, UNCHANGED))
    return Summary(group.last_action, group.last_at, done, len(touched), others.most_common())


# ---- site, day and windows


async def _sites(subdistrict: str) -> list[Site]:
    sites = await Site.filter(active=True).order_by("subdistrict", "code")
    return sorted(sites, key=lambda s: s.subdistrict != subdistrict)  # the list's own first


async def _days(site_id: int, now: dt.datetime) -> list[DayChoice]:
    """The site's days from today that have open windows, with their free places."""
    slots = await Slot.filter(site_id=site_id, day__gte=now.date(), closed_reason="").order_by("day", "start")
    free: dict[dt.date, int] = {}
    for slot in slots:
        if not has_started(slot.day, slot.start, now):
            free[slot.day] = free.get(slot.day, 0) + slot.free
    return [DayChoice(day, n) for day, n in free.items()]


def _allowed(row: Row, chosen: list[Slot], now: dt.datetime) -> bool:
    return row.standing is not None and any(row.standing.window.allows(s.day, s.start, now) for s in chosen)


async def _picker(district: District, group: GroupList, people: list[Row], site_id: int | None,
                  day: dt.date | None, slot_ids: list[int]) -> Picker:
    now = district.clock.now()
    sites = await _sites(group.subdistrict)
    site = next((s for s in sites if s.id == site_id), None) or (sites[0] if sites else None)
    days = await _days(site.id, now) if site else []
    if day not in [d.day for d in days]:
        day = next((d.day for d in days if d.free), days[0].day if days else None)
    windows = await availability.windows_for_day(site.id, day, now) if site and day else []
    # Only what the clerk ticked, and only windows with room (a full one cannot be ticked).
    chosen = [w for w in windows if w.id in slot_ids and w.free]
    fit = None
    if chosen:
        fit = Fit(len(people), sum(_allowed(r, chosen, now) for r in people), sum(w.free for w in chosen))
    shown = (group.id, site.id if site else 0, day.isoformat() if day else "",
             sorted(w.id for w in chosen), sorted(r.member.id for r in people), fit.fits if fit else 0)
    digest = hashlib.sha256(repr(shown).encode()).hexdigest()[:20]
    return Picker(sites, site, days, day, windows, chosen, fit, digest)


async def _chosen_slots(slot_ids: list[int], now: dt.datetime) -> list[Slot]:
    """The chosen windows that are open and not yet begun, earliest first; ListError if none."""
    ids = list(dict.fromkeys(slot_ids))[:MAX_WINDOWS]
    slots = await (Slot.filter(id__in=ids, closed_reason="", site__active=True)
                   .order_by("day", "start", "id").select_related("site")) if ids else []
    slots = [s for s in slots if not has_started(s.day, s.start, now)]
    if not slots:
        raise ListError("no_windows")
    return slots


# ---- pages


async def list_page(district: District, user: StaffUser, list_id: int | None, *,
                    site_id: int | None = None, day: dt.date | None = None,
                    slot_ids: list[int] = ()) -> ListPage:
    """A list with every row's standing, and the site, day and windows to book its eligible."""
    group = await find_list(user, list_id)
    rows = await _rows(district, group, Area.of(user))
    eligible = [r for r in rows if r.eligible]
    picker = await _picker(district, group, eligible, site_id, day, list(slot_ids))
    return ListPage(group, rows, _counts(rows), picker, _summary(group, rows))


async def move_page(district: District, user: StaffUser, list_id: int | None, *,
                    member_id: int | None = None, site_id: int | None = None,
                    day: dt.date | None = None, slot_ids: list[int] = ()) -> ListPage:
    """The people a move is for (the list's bookings, or one person's) and where to."""
    group = await find_list(user, list_id)
    rows = await _rows(district, group, Area.of(user))
    rows = [r for r in rows if r.ours and (member_id is None or r.member.id == member_id)]
    current = rows[0].booking.slot if rows else None
    if site_id is None and current:  # start from where they are booked
        site_id, day = current.site_id, day or current.day
    picker = await _picker(district, group, rows, site_id, day, list(slot_ids))
    return ListPage(group, rows, _counts(rows), picker)


async def cancel_page(district: District, user: StaffUser, list_id: int | None, *,
                      member_id: int | None = None) -> ListPage:
    """The bookings a cancellation is for: the list's, or one person's."""
    group = await find_list(user, list_id)
    rows = await _rows(district, group, Area.of(user))
    rows = [r for r in rows if r.ours and (member_id is None or r.member.id == member_id)]
    return ListPage(group, rows, _counts(rows))


async def result_page(district: District, user: StaffUser, list_id: int | None) -> ListPage:
    """Every row with what the latest action came to, and where they stand now."""
    group = await find_list(user, list_id)
    rows = await _rows(district, group, Area.of(user))
    return ListPage(group, rows, _counts(rows), summary=_summary(group, rows))


# ---- actions: book, move, cancel


def request_key(key: str, member: GroupMember) -> str:
    """One booking form's key for one row: the same form posted again finds the same booking."""
    return f"group-{member.id}-{key}"[:64]


async def _start(group: GroupList, action: str, now: dt.datetime) -> int:
    """Number a new action on the list; its rows' outcomes carry the number."""
    async with in_transaction() as conn:
        await GroupList.filter(id=group.id).using_db(conn).update(
            runs=F("runs") + 1, last_action=action, last_at=now)
        fresh = await GroupList.get(id=group.id).using_db(conn)
    group.runs, group.last_action, group.last_at = fresh.runs, fresh.last_action, fresh.last_at
    return fresh.runs


async def _record(member: GroupMember, run: int, outcome: str, booking: Booking | None = None) -> None:
    values = {"outcome": outcome, "run": run}
    if booking is not None:
        values["booking_id"] = booking.id
    await GroupMember.filter(id=member.id).update(**values)


async def _place(district: District, standing: Standing, slots: list[Slot], full: set[int], *,
                 key: str | None) -> tuple[str, Booking | None, bool]:
    """Hold and confirm the first chosen window with room: (outcome, booking, changed)."""
    why = NOT_ALLOWED
    for slot in slots:
        if slot.id in full:
            why = FULL
            continue
        try:
            await service.choose(district, standing, slot.id)
            placed = await service.confirm(district, standing, slot.id, request_key=key,
                                           channel=CHANNEL, chosen=slot.id)
        except Refused as exc:
            if exc.reason == Refusal.FULL:
                full.add(slot.id)  # full for everyone after this one too
                why = FULL
                continue
            if exc.reason == Refusal.NOT_ALLOWED:
                continue
            if exc.reason == Refusal.BOOKED and exc.booking is not None:  # booked meanwhile
                same = key is not None and exc.booking.request_key == key
                return (BOOKED if same else ALREADY_BOOKED), exc.booking if same else None, False
            return exc.reason.value, None, False
        if placed.kind == "book" and not placed.changed and placed.booking.request_key != key:
            return ALREADY_BOOKED, None, False  # they booked this very window themselves meanwhile
        return (BOOKED if placed.kind == "book" else MOVED), placed.booking, placed.changed
    return why, None, False


def _where(booking: Booking) -> str:
    slot = booking.slot  # loaded with its site by the engine, for a booking made or moved
    return f"{slot.site.code} {slot.day} {slot.start}"


def _same_as_shown(page: ListPage, site_id: int | None, day: dt.date | None, shown: str) -> None:
    """Raise Changed unless the choice posted gives the page the clerk looked at: the same site
    and day (the picker falls back to others for ones it does not offer) and the same digest."""
    p = page.picker
    if not shown or shown != p.digest or (p.site.id if p.site else None) != site_id or p.day != day:
        raise Changed(page)


async def book_shown(district: District, user: StaffUser, list_id: int | None, *,
                     site_id: int | None, day: dt.date | None, slot_ids: list[int], shown: str,
                     key: str) -> Done:
    """Book the list as its page showed it (`shown`: the page's Picker.digest) for the site, day
    and windows posted; Changed (nothing booked) when that choice no longer gives that page."""
    page = await list_page(district, user, list_id, site_id=site_id, day=day, slot_ids=slot_ids)
    now = district.clock.now()
    if await _posted_again(page.rows, key, slot_ids):  # a double click, or back and post again
        return await _book(district, page.group, page.rows, await _chosen_slots(slot_ids, now), now, key=key)
    _same_as_shown(page, site_id, day, shown)
    slots = await _chosen_slots([w.id for w in page.picker.chosen], now)
    return await _book(district, page.group, page.rows, slots, now, key=key)


async def _posted_again(rows: list[Row], key: str, slot_ids: list[int]) -> bool:
    """The same booking form posted again: its key has booked people, in the windows posted.
    The page it showed is no more (those people are booked now), but it is the same action:
    done again, it finds the same bookings (request_key) and books nobody twice."""
    keys = [request_key(key, r.member) for r in rows]
    made = set(await Booking.filter(request_key__in=keys).values_list("slot_id", flat=True)) if keys else set()
    return bool(made) and made <= set(slot_ids)


async def move_shown(district: District, user: StaffUser, list_id: int | None, *,
                     member_id: int | None, site_id: int | None, day: dt.date | None,
                     slot_ids: list[int], shown: str) -> Done:
    """Move as the move page showed it (see book_shown())."""
    page = await move_page(district, user, list_id, member_id=member_id, site_id=site_id, day=day,
                           slot_ids=slot_ids)
    _same_as_shown(page, site_id, day, shown)
    return await move(district, user, list_id, [w.id for w in page.picker.chosen], member_id=member_id)


async def book(district: District, user: StaffUser, list_id: int | None, slot_ids: list[int], *,
               key: str) -> Done:
    """Book every eligible row into the chosen windows (earliest first, in row order, as far as
    places go); every other row gets its reason as its outcome. `key` is the booking form's."""
    group = await find_list(user, list_id)
    now = district.clock.now()
    slots = await _chosen_slots(slot_ids, now)
    rows = await _rows(district, group, Area.of(user))
    return await _book(district, group, rows, slots, now, key=key)


async def _book(district: District, group: GroupList, rows: list[Row], slots: list[Slot],
                now: dt.datetime, *, key: str) -> Done:
    run = await _start(group, BOOK, now)
    done = Done(group)
    full: set[int] = set()
    for row in rows:
        rk = request_key(key, row.member)
        booking = None
        if row.status == Refusal.BOOKED:
            same = row.booking.request_key == rk  # this very form, posted again
            outcome, booking = (BOOKED, row.booking) if same else (ALREADY_BOOKED, None)
        elif row.eligible:
            outcome, booking, changed = await _place(district, row.standing, slots, full, key=rk)
            if changed:
                done.changes.append(Change(BOOK, row.standing.resident.id, booking, _where(booking)))
        else:
            outcome = row.status
            if row.outside:
                done.outside.append(row.member)
        await _record(row.member, run, outcome, booking)
    return done


async def move(district: District, user: StaffUser, list_id: int | None, slot_ids: list[int], *,
               member_id: int | None = None) -> Done:
    """Move the list's bookings (or one person's) into the chosen windows, through the booking
    service's confirm-move: someone already in a chosen window stays where they are."""
    group = await find_list(user, list_id)
    now = district.clock.now()
    slots = await _chosen_slots(slot_ids, now)
    rows = await _rows(district, group, Area.of(user))
    rows = [r for r in rows if member_id is None or r.member.id == member_id]
    if member_id is None:
        rows = [r for r in rows if r.ours]
    run = await _start(group, MOVE, now)
    done = Done(group)
    full: set[int] = set()
    for row in rows:
        booking = None
        if not row.ours:
            outcome = NOT_OURS
        elif row.standing.restricted:
            outcome = Refusal.RESTRICTED.value
        elif row.booking.slot_id in {s.id for s in slots}:
            outcome = UNCHANGED
        else:
            outcome, booking, changed = await _place(district, row.standing, slots, full, key=None)
            if changed:
                done.changes.append(Change(MOVE, row.standing.resident.id, booking, _where(booking)))
        await _record(row.member, run, outcome, booking)
    return done


async def cancel(district: District, user: StaffUser, list_id: int | None, *,
                 member_id: int | None = None) -> Done:
    """Cancel the list's bookings (or one person's) through the booking service."""
    group = await find_list(user, list_id)
    rows = await _rows(district, group, Area.of(user))
    rows = [r for r in rows if member_id is None or r.member.id == member_id]
    if member_id is None:
        rows = [r for r in rows if r.ours]
    run = await _start(group, CANCEL, district.clock.now())
    done = Done(group)
    for row in rows:
        outcome = NOT_OURS
        if row.ours:
            booking, cancelled = await service.cancel(district, row.standing.resident.id, row.booking.id)
            outcome = CANCELLED if cancelled else NOT_OURS
            if cancelled:
                done.changes.append(Change(CANCEL, row.standing.resident.id, booking))
        await _record(row.member, run, outcome)
    return done
