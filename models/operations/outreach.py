"""Reaching people who have not booked: reminders, links re-issued, and the list past the due day.

Each batch goes a keyset page at a time and claims each person with a conditional UPDATE in the
transaction that issues their link and queues their SMS, so a batch stopped half-way (or run
twice at once) sends nobody two messages: running it again carries on where it stopped.
"""
from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import AsyncIterator, Callable

from tortoise.expressions import Q, Subquery
from tortoise.transactions import in_transaction

from ..clock import TZ, as_utc
from ..db.tables import Booking, Link, Resident
from ..district import District
from ..messaging import caps, wording
from ..messaging.outbox import queue
from ..messaging.sms import Sms
from ..people.links import link_url, reissue_link
from ..people.pii import mask_name
from . import invitations
from .invitations import BATCH, InviteError, Progress, not_booked, per_vaccine

OVERDUE_PAGE = 50
DEFAULT_REMIND_DAYS = 3
MAX_REMIND_DAYS = 60


class NotNow(ValueError):
    """A batch the admin confirmed cannot start: `reason` is changed (the count moved since they
    saw it), nobody (nobody is due) or base_url (BASE_URL too long for the SMS)."""

    def __init__(self, reason: str):
        super().__init__(reason)
        self.reason = reason


@dataclass
class Batch:
    """How far a long batch got: told the count as it goes, read by the progress page."""

    kind: str  # invite, remind, reissue
    total: int  # how many were due when it started
    label: str = ""  # which part of the district, for the page
    done: int = 0
    finished: bool = False
    failed: bool = False

    def __call__(self, done: int) -> None:
        self.done = done

    @property
    def percent(self) -> int:
        return 100 if self.finished else min(99, self.done * 100 // self.total) if self.total else 0


def _confirmed(due: int, expected: int | None) -> int:
    if not due:
        raise NotNow("nobody")
    if expected != due:
        raise NotNow("changed")
    return due


@dataclass(frozen=True)
class Overview:
    """The invitations page: the batch preview and how many a reminder would reach."""

    preview: invitations.Preview
    to_remind: int


async def overview(district: District, scope: invitations.Scope, days: int) -> Overview:
    preview = await invitations.preview(district.rules, district.clock.today(), scope)
    return Overview(preview, await remind_count(district, days))


async def invite_due(district: District, scope: invitations.Scope, expected: int | None) -> int:
    """How many an invitation batch for the scope sends, if it is the count the admin confirmed."""
    try:
        invitations.check_base_url(district.base_url)
    except InviteError:
        raise NotNow("base_url") from None
    return _confirmed(await invitations.due_count(district.rules, district.clock.today(), scope), expected)


async def invite(district: District, scope: invitations.Scope, progress: Progress | None = None) -> int:
    """The invitation batch for the scope, as of today; how many were invited."""
    result = await invitations.invite(district, as_of=district.clock.today(), scope=scope, progress=progress)
    return result.count


# ---- the SMS: a masked name, shortened to one character if the message would not fit


def _checked(sms: Sms) -> Sms:
    if not wording.fits(sms):
        raise InviteError(f"BASE_URL is too long for an SMS: the message would be {len(sms.body)} "
                          f"characters, the limit is {wording.limit(sms.template, sms.lang)}; "
                          "use a shorter address")
    return sms


def _reminder(district: District, resident: Resident, url: str, today: dt.date) -> Sms:
    due_by = district.rules.window(resident.first_dose_date, resident.vaccine).due_by
    return _checked(wording.reminder(resident, due_by, url, today=today))


async def _relink(district: District, resident: Resident, kind: str, conn) -> None:
    """Revoke their links, issue a new one, queue the SMS that carries it (in `conn`'s transaction)."""
    now = district.clock.now()
    token = await reissue_link(resident, now=now, days_valid=district.link_days_valid, using_db=conn)
    url = link_url(district.base_url, token)
    sms = (_reminder(district, resident, url, now.date()) if kind == "remind"
           else _checked(wording.reissue(resident, url)))
    await queue(district.vault, resident, sms, kind=kind, using_db=conn)


async def _each(query, act: Callable, progress: Progress | None) -> int:
    """Run `act(resident)` (True when it sent) over the query, a keyset page at a time; how many sent."""
    count, last_id = 0, 0
    while True:
        page = await query.filter(id__gt=last_id).order_by("id").limit(BATCH)
        for resident in page:
            if await act(resident):
                count += 1
                if progress:
                    progress(count)
        if len(page) < BATCH:
            return count
        last_id = page[-1].id


# ---- reminders: once, to people invited N days ago or earlier who have not booked


def _invited_before(district: District, days: int) -> dt.datetime:
    """The start of the day after `days` days ago: invited before it means N days ago or earlier."""
    day = district.clock.today() - dt.timedelta(days=days - 1)
    return as_utc(dt.datetime.combine(day, dt.time(), tzinfo=TZ))


def _to_remind(district: District, days: int):
    return not_booked(Resident.filter(
        invited_at__lt=_invited_before(district, days), reminded_at__isnull=True,
        second_dose_date__isnull=True,
    ))


def remind_days(value: int | None) -> int | None:
    """The N of 'invited N days ago': 1..60, else None."""
    return value if value is not None and 1 <= value <= MAX_REMIND_DAYS else None


async def remind_count(district: District, days: int) -> int:
    return await _to_remind(district, days).count()


async def remind_due(district: District, days: int, expected: int | None) -> int:
    try:
        invitations.check_base_url(district.base_url)
    except InviteError:
        raise NotNow("base_url") from None
    return _confirmed(await remind_count(district, days), expected)


async def remind(district: District, days: int, progress: Progress | None = None) -> int:
    """A new link (the old ones revoked) and one reminder SMS to each person invited `days` days
    ago or earlier who has not booked; never twice (Resident.reminded_at). How many were sent."""
    invitations.check_base_url(district.base_url)
    cutoff = _invited_before(district, days)

    async def one(resident: Resident) -> bool:
        async with in_transaction() as conn:
            claimed = await Resident.filter(
                id=resident.id, reminded_at__isnull=True, invited_at__lt=cutoff,
            ).using_db(conn).update(reminded_at=as_utc(district.clock.now()))
            if claimed:
                await _relink(district, resident, "remind", conn)
        return bool(claimed)

    return await _each(_to_remind(district, days), one, progress)


# ---- links: one person's, and everyone's that expired without a booking


async def reissue_one(district: District, resident_id: int | None) -> Resident | None:
    """Revoke the person's links and send a new one by SMS; None when there is no such person.

    Asked for on demand (a resident calls): it counts toward their number's SMS caps with the
    log-in codes (models/messaging/caps.py), and past them raises caps.CapReached, nothing done
    (their old links still work)."""
    resident = await Resident.get_or_none(id=resident_id or 0)
    if resident is None:
        return None
    async with in_transaction() as conn:
        if resident.phone_hash:  # empty once erased (purge): no number to count, nor to send to
            await caps.take(conn, resident.phone_hash, now=district.clock.now(), caps=district.sms_caps)
        await _relink(district, resident, "reissue", conn)
    return resident


def _expired(district: District):
    """People with an expired link and no live one, no active booking and no second dose."""
    now = as_utc(district.clock.now())
    return not_booked(Resident.filter(
        second_dose_date__isnull=True,
        id__in=Subquery(Link.filter(revoked=False, expires_at__lte=now).values("resident_id")),
    ).exclude(id__in=Subquery(Link.filter(revoked=False, expires_at__gt=now).values("resident_id"))))


async def expired_count(district: District) -> int:
    return await _expired(district).count()


async def expired_due(district: District, expected: int | None) -> int:
    try:
        invitations.check_base_url(district.base_url)
    except InviteError:
        raise NotNow("base_url") from None
    return _confirmed(await expired_count(district), expected)


async def reissue_expired(district: District, progress: Progress | None = None) -> int:
    """A new link by SMS for everyone whose link expired without a booking; how many were sent."""
    invitations.check_base_url(district.base_url)

    async def one(resident: Resident) -> bool:
        now = as_utc(district.clock.now())
        async with in_transaction() as conn:
            # Revoking their expired links claims them: a second batch finds nothing left to revoke.
            claimed = await Link.filter(resident_id=resident.id, revoked=False,
                                        expires_at__lte=now).using_db(conn).update(revoked=True)
            live = await Link.filter(resident_id=resident.id, revoked=False,
                                     expires_at__gt=now).using_db(conn).exists()
            if claimed and not live:
                await _relink(district, resident, "reissue", conn)
        return bool(claimed) and not live

    return await _each(_expired(district), one, progress)


# ---- past the due day: for outreach by phone


@dataclass(frozen=True)
class OverdueRow:
    id: int
    name: str  # masked
    phone: str  # masked
    subdistrict: str
    first_dose_date: dt.date
    days_overdue: int


CSV_COLUMNS = ("resident", "name", "phone", "subdistrict", "first_dose_date", "days_overdue")


def _overdue(district: District, subdistrict: str):
    """No second dose, no active booking, and past their vaccine's max_days (rule 3) today."""
    query = Resident.filter(
        per_vaccine(district.rules, lambda rule: rule.max_days, "first_dose_date__lt",
                    district.clock.today()),
        second_dose_date__isnull=True,
    ).exclude(id__in=Subquery(Booking.filter(status=Booking.ACTIVE).values("resident_id")))
    return query.filter(subdistrict=subdistrict) if subdistrict else query


def _row(district: District, resident: Resident) -> OverdueRow:
    due_by = district.rules.window(resident.first_dose_date, resident.vaccine).due_by
    return OverdueRow(resident.id, mask_name(resident.name), resident.phone_masked, resident.subdistrict,
                      resident.first_dose_date, (district.clock.today() - due_by).days)


async def overdue(district: District, *, subdistrict: str = "", after: tuple[dt.date, int] | None = None,
                  limit: int = OVERDUE_PAGE) -> list[OverdueRow]:
    """A page of the people past their due day, most overdue first; pass the last row's
    (first_dose_date, id) as `after` for the next page."""
    query = _overdue(district, subdistrict)
    if after:
        day, last_id = after
        query = query.filter(Q(first_dose_date__gt=day) | Q(first_dose_date=day, id__gt=last_id))
    page = await query.order_by("first_dose_date", "id").limit(limit)
    return [_row(district, r) for r in page]


async def overdue_count(district: District, subdistrict: str = "") -> int:
    return await _overdue(district, subdistrict).count()


@dataclass(frozen=True)
class Listing:
    rows: list[OverdueRow]
    total: int  # everyone on the list (all pages)
    next_after: tuple[dt.date, int] | None  # where the next page starts; None on the last


async def overdue_listing(district: District, *, subdistrict: str = "",
                          after: tuple[dt.date, int] | None = None) -> Listing:
    """A page of the list past the due day, and how many are on it in all."""
    rows = await overdue(district, subdistrict=subdistrict, after=after, limit=OVERDUE_PAGE + 1)
    more = len(rows) > OVERDUE_PAGE
    rows = rows[:OVERDUE_PAGE]
    return Listing(rows, await overdue_count(district, subdistrict),
                   (rows[-1].first_dose_date, rows[-1].id) if more else None)


async def overdue_rows(district: District, subdistrict: str = "") -> AsyncIterator[tuple]:
    """Every row of the list as CSV values (masked), a page at a time."""
    after = None
    while True:
        page = await overdue(district, subdistrict=subdistrict, after=after, limit=BATCH)
        for row in page:
            yield (row.id, row.name, row.phone, row.subdistrict, row.first_dose_date.isoformat(),
                   row.days_overdue)
        if len(page) < BATCH:
            return
        after = (page[-1].first_dose_date, page[-1].id)
