"""Group lists as kept: who sees which, a list made, a row added, corrected or removed. ID numbers are
kept hashed (to find the record), encrypted and masked, never in clear; the phone typed is kept
encrypted and masked (the SMS goes to the number on the record)."""
from __future__ import annotations

from tortoise.exceptions import IntegrityError
from tortoise.expressions import Q
from tortoise.functions import Count
from tortoise.transactions import in_transaction

from ...db.tables import Booking, GroupList, GroupMember, StaffUser
from ...people import pii
from ...staff.scope import Area
from .errors import ListError, NoSuchList, NotYours
from .parsing import MAX_ROWS, Typed, clean_text, parse_list

def _mask_any(text: str) -> str:
    """Something typed as an ID number that is not one, masked like one (pii.mask_id: the
    region and the last two characters)."""
    text = text[:18]
    return text[:6] + "*" * (len(text) - 8) + text[-2:] if len(text) >= 12 else "*" * len(text)


def _member_fields(vault: pii.Vault, person: Typed) -> dict:
    fields_: dict = {"name": clean_text(person.name, 50)}
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
    ListError (no_name, too_many) or csvfile.ImportFileError, and then nothing is written."""
    area = Area.of(user)
    if not (area.everyone or area.subdistrict):
        raise ListError("no_area")  # an account with no sub-district could never see its list
    name = clean_text(name, 100)
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
