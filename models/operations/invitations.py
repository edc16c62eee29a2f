"""Invitation batches: everyone due for a second dose and not yet invited gets a personal link by SMS."""
from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

from tortoise.expressions import Q, Subquery
from tortoise.transactions import in_transaction

from ..clock import as_utc
from ..db.tables import Booking, Resident, RiskArea
from ..district import District
from ..messaging import wording
from ..messaging.outbox import queue
from ..people.links import issue_link, link_url
from ..people.pii import mask_name
from ..rules.interval import RuleBook

BATCH = 500
# The shortest a masked name gets (surname and one star): room for it is checked before a batch.
SHORTEST_NAME = "张*"
SAMPLE_TOKEN = "x" * 22  # tokens.new_link_token() gives 22 characters


class InviteError(ValueError):
    """The batch cannot be sent as configured; nothing was written."""


@dataclass(frozen=True)
class InviteResult:
    count: int
    dry_run: bool


def invitation(rules: RuleBook, resident: Resident, base_url: str, token: str,
               as_of: dt.date | None = None) -> str:
    """The invitation SMS, within wording.MAX_CHARS: a name too long to fit is shortened to its first character."""
    window = rules.window(resident.first_dose_date, resident.vaccine)
    url = link_url(base_url, token)
    body = wording.invitation_body(mask_name(resident.name), window.due_by, url, today=as_of)
    if len(body) > wording.MAX_CHARS:
        body = wording.invitation_body(resident.name.strip()[:1] + "*", window.due_by, url, today=as_of)
    if len(body) > wording.MAX_CHARS:
        raise InviteError(_too_long(base_url, len(body)))
    return body


def check_base_url(base_url: str) -> None:
    """Raise InviteError when even the shortest invitation with this BASE_URL exceeds two SMS parts."""
    longest_date = dt.date(2021, 12, 31)
    body = wording.invitation_body(SHORTEST_NAME, longest_date, link_url(base_url, SAMPLE_TOKEN))
    if len(body) > wording.MAX_CHARS:
        raise InviteError(_too_long(base_url, len(body)))


def _too_long(base_url: str, length: int) -> str:
    return (f"BASE_URL {base_url} is too long for an invitation SMS: the message would be {length} "
            f"characters, the limit is {wording.MAX_CHARS}; use a shorter address")


def _candidates(rules: RuleBook, as_of: dt.date):
    """Residents with no second dose, not invited, not booked, not in a risk area, first dose early enough."""
    shortest = rules.shortest_min_days()
    return (
        Resident.filter(
            second_dose_date__isnull=True,
            invited_at__isnull=True,
            first_dose_date__lte=as_of - dt.timedelta(days=shortest),
        )
        .exclude(id__in=Subquery(Booking.filter(status=Booking.ACTIVE).values("resident_id")))
        .exclude(subdistrict__in=Subquery(RiskArea.all().values("subdistrict")))
    )


async def eligible(rules: RuleBook, as_of: dt.date, limit: int | None = None):
    """Yield residents to invite, most overdue first (keyset pages, so a large district fits in memory)."""
    found = 0
    after: tuple[dt.date, int] | None = None
    while limit is None or found < limit:
        query = _candidates(rules, as_of)
        if after:
            day, last_id = after
            query = query.filter(Q(first_dose_date__gt=day) | Q(first_dose_date=day, id__gt=last_id))
        page = await query.order_by("first_dose_date", "id").limit(BATCH)
        for resident in page:
            # The query used the shortest interval of any vaccine; apply the resident's own here.
            if rules.window(resident.first_dose_date, resident.vaccine).earliest <= as_of:
                yield resident
                found += 1
                if limit is not None and found >= limit:
                    return
        if len(page) < BATCH:
            return
        after = (page[-1].first_dose_date, page[-1].id)


async def invite(district: District, *, as_of: dt.date, limit: int | None = None,
                 dry_run: bool = False) -> InviteResult:
    """Issue a link and queue one invitation SMS per eligible resident; return how many."""
    check_base_url(district.base_url)
    count = 0
    async for resident in eligible(district.rules, as_of, limit):
        if dry_run or await _invite_one(district, resident, as_of):
            count += 1
    return InviteResult(count, dry_run)


async def _invite_one(district: District, resident: Resident, as_of: dt.date) -> bool:
    """Mark, link and queue in one transaction; False when another batch got there first."""
    now = district.clock.now()
    async with in_transaction() as conn:
        # The conditional UPDATE comes first: it claims the resident, so two batches never both send.
        claimed = await Resident.filter(id=resident.id, invited_at__isnull=True).using_db(conn).update(
            invited_at=as_utc(now)
        )
        if not claimed:
            return False
        token = await issue_link(resident, now=now, days_valid=district.link_days_valid, using_db=conn)
        body = invitation(district.rules, resident, district.base_url, token, as_of)
        await queue(district.vault, resident, "invite", body, using_db=conn)
    return True
