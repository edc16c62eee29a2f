"""The call-centre's view of residents: finding a caller, their card, and booking on their behalf."""
from __future__ import annotations

import datetime as dt
import re
import unicodedata
from dataclasses import dataclass

from . import booking as engine
from . import pii
from .eligibility import Standing, assess
from .residents import age_on
from .rules import needs_companion
from .tables import Booking, Resident

MAX_RESULTS = 10  # a phone shared by a whole family fits; anything longer means "search by ID"
FIELDS = ("id", "phone")  # the numbers an agent may reveal in full


class BadQuery(ValueError):
    """The search text is neither a valid ID number nor a mobile number; `reason` says why.

    Reasons: empty, incomplete, phone, id_format, id_checksum, id_birth_date, id_region.
    """

    def __init__(self, reason: str):
        super().__init__(reason)
        self.reason = reason


class CallerRefused(Exception):
    """The caller may not book or move now; `reason` is a rules refusal name."""

    def __init__(self, reason: str | None):
        super().__init__(reason or "")
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


@dataclass(frozen=True)
class Card:
    """Everything the agent sees about one caller, as of a moment."""

    resident: Resident
    standing: Standing
    today: dt.date

    @property
    def name(self) -> str:
        return pii.mask_name(self.resident.name)

    @property
    def late(self) -> bool:
        return self.today > self.standing.window.due_by

    @property
    def companion(self) -> bool:
        return needs_companion(age_on(self.resident, self.today))


@dataclass(frozen=True)
class Placed:
    booking: Booking
    kind: str  # "book" or "move"
    changed: bool  # False for a repeated submission: nothing new to audit


def parse_query(text: str) -> Query:
    """Tell an ID number from a mobile number and validate it; raise BadQuery in plain terms."""
    raw = "".join(ch for ch in unicodedata.normalize("NFKC", text or "")
                  if not ch.isspace() and ch not in "-()").upper()
    if not raw:
        raise BadQuery("empty")
    phone = re.fullmatch(r"(?:\+?86)?(1\d{10})", raw)
    if phone or (raw.isdigit() and len(raw) == 11):
        try:
            return Query("phone", pii.normalise_phone(phone.group(1) if phone else raw))
        except pii.InvalidPhone:
            raise BadQuery("phone") from None
    if len(raw) != 18:
        raise BadQuery("incomplete")
    try:
        return Query("id", pii.validate_id(raw))
    except pii.InvalidIdNumber as exc:
        raise BadQuery(f"id_{exc.reason}") from None


async def search(query: Query, limit: int = MAX_RESULTS) -> SearchResult:
    """Residents whose ID or phone is the query's number (at most `limit`, oldest record first)."""
    column = "id_hash" if query.kind == "id" else "phone_hash"
    found = await (Resident.filter(**{column: pii.keyed_hash(query.value)})
                   .order_by("id").limit(limit + 1).select_related("first_site"))
    rows = [
        CallerRow(r.id, pii.mask_name(r.name), r.id_masked, r.phone_masked, r.first_dose_date,
                  r.first_site.name)
        for r in found[:limit]
    ]
    return SearchResult(query.kind, rows, len(found) > limit)


async def caller_card(resident_id: int | None, now: dt.datetime, *, lead_days: int) -> Card | None:
    """The caller's record with their standing today, or None when there is no such record."""
    resident = await Resident.get_or_none(id=resident_id or 0).select_related(
        "first_site", "second_dose_site")
    if resident is None:
        return None
    return Card(resident, await assess(resident, now, lead_days=lead_days), now.date())


def reveal(resident: Resident, field: str) -> str:
    """The full ID number or phone of a resident (the caller is audited by the web layer)."""
    if field not in FIELDS:
        raise ValueError(field)
    return pii.decrypt(resident.id_cipher if field == "id" else resident.phone_cipher)


def _bookable(card: Card) -> None:
    if not card.standing.can_choose:
        raise CallerRefused(card.standing.refusal)


async def hold_for(card: Card, slot_id: int, now: dt.datetime) -> None:
    """Keep the chosen place while the agent reads the details back; raises BookingError when full."""
    _bookable(card)
    await engine.hold(card.resident, slot_id, window=card.standing.window, now=now)


async def place_booking(card: Card, slot_id: int, *, now: dt.datetime, request_key: str | None) -> Placed:
    """Book the slot for the caller, or move their booking there: one booking per confirm form."""
    _bookable(card)
    current = card.standing.booking
    if current is None or (request_key and current.request_key == request_key):
        booking, created = await engine.book(card.resident, slot_id, window=card.standing.window,
                                             now=now, request_key=request_key, channel="callcentre")
        return Placed(booking, "book", created)
    if current.slot_id == slot_id:
        return Placed(current, "move", False)
    moved = await engine.move(current, slot_id, window=card.standing.window, now=now)
    return Placed(moved, "move", True)


async def cancel_booking(resident_id: int, booking_id: int) -> tuple[Booking | None, bool]:
    """Cancel the caller's booking; (booking, True) when it was active and now is not."""
    found = await Booking.get_or_none(id=booking_id, resident_id=resident_id)
    if found is None:
        return None, False
    return found, await engine.cancel(found)


async def booking_for_script(booking_id: int | None) -> Booking | None:
    """A booking with its slot, site and resident, for the read-out script."""
    return await Booking.get_or_none(id=booking_id or 0).select_related("slot__site", "resident")


def spell_code(code: str) -> list[tuple[str, str]]:
    """ACEF7HJK -> [("A", "letter"), …, ("7", "digit"), …]: each character and how to say it."""
    return [(ch, "digit" if ch.isdigit() else "letter") for ch in code]
