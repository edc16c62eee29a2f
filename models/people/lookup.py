"""Finding a person by ID number or phone (the call centre), their card, and revealing a number.

Everything here that a staff console reaches takes the account's Area: a search filters by it
in the query (someone outside the area answers exactly like nobody), a record or booking asked
for by row id outside it raises OutsideArea (the web layer refuses and audits)."""
from __future__ import annotations

import datetime as dt
import re
import unicodedata
from dataclasses import dataclass

from ..db.tables import Booking, Resident
from ..staff.scope import Area
from . import pii

MAX_RESULTS = 10  # a phone shared by a whole family fits; anything longer means "search by ID"
FIELDS = ("id", "phone")  # the numbers an agent may reveal in full


class BadSearch(ValueError):
    """The search text is neither a valid ID number nor a mobile number; `reason` says why.

    Reasons: empty, incomplete, phone, id_format, id_checksum, id_birth_date, id_region.
    """

    def __init__(self, reason: str):
        super().__init__(reason)
        self.reason = reason


@dataclass(frozen=True)
class Query:
    kind: str  # "id" or "phone"
    value: str  # the normalised number: never logged, never put in a URL


@dataclass(frozen=True)
class CallerRow:
    id: int
    name: str  # masked
    id_masked: str
    phone_masked: str
    first_dose_date: dt.date
    first_site: str


@dataclass(frozen=True)
class SearchResult:
    kind: str
    rows: list[CallerRow]
    more: bool  # there were more than MAX_RESULTS matches


def parse_query(text: str) -> Query:
    """Tell an ID number from a mobile number and validate it; raise BadSearch in plain terms."""
    raw = "".join(ch for ch in unicodedata.normalize("NFKC", text or "")
                  if not ch.isspace() and ch not in "-()").upper()
    if not raw:
        raise BadSearch("empty")
    phone = re.fullmatch(r"(?:\+?86)?(1\d{10})", raw)
    if phone or (raw.isdigit() and len(raw) == 11):
        try:
            return Query("phone", pii.normalise_phone(phone.group(1) if phone else raw))
        except pii.InvalidPhone:
            raise BadSearch("phone") from None
    if len(raw) != 18:
        raise BadSearch("incomplete")
    try:
        return Query("id", pii.validate_id(raw))
    except pii.InvalidIdNumber as exc:
        raise BadSearch(f"id_{exc.reason}") from None


async def search(vault: pii.Vault, query: Query, area: Area, limit: int = MAX_RESULTS) -> SearchResult:
    """Residents of the area whose ID or phone is the query's number (at most `limit`, oldest
    record first). The area is part of the query: a match outside it is no match at all."""
    column = "id_hash" if query.kind == "id" else "phone_hash"
    found = await (Resident.filter(area.where(), **{column: vault.keyed_hash(query.value)})
                   .order_by("id").limit(limit + 1).select_related("first_site"))
    rows = [
        CallerRow(r.id, pii.mask_name(r.name), r.id_masked, r.phone_masked, r.first_dose_date,
                  r.first_site.name)
        for r in found[:limit]
    ]
    return SearchResult(query.kind, rows, len(found) > limit)


async def resident_by_id(resident_id: int | None) -> Resident | None:
    """The record with its first-dose (and second-dose) site, or None."""
    return await Resident.get_or_none(id=resident_id or 0).select_related(
        "first_site", "second_dose_site")


async def resident_in(area: Area, resident_id: int | None) -> Resident | None:
    """Like resident_by_id, for a staff console: None when there is no such record, OutsideArea
    when there is one but not in the area."""
    resident = await resident_by_id(resident_id)
    return await area.check(resident) if resident else None


def reveal(vault: pii.Vault, resident: Resident, field: str) -> str:
    """The full ID number or phone of a resident (the caller is audited by the web layer)."""
    if field not in FIELDS:
        raise ValueError(field)
    return vault.decrypt(resident.id_cipher if field == "id" else resident.phone_cipher)


async def booking_for_script(area: Area, booking_id: int | None) -> Booking | None:
    """A booking with its slot, site and resident, for the read-out script; None when there is
    no such booking, OutsideArea when its person is not in the area."""
    booking = await Booking.get_or_none(id=booking_id or 0).select_related("slot__site", "resident")
    if booking is not None:
        await area.check(booking.resident)
    return booking
