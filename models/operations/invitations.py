"""Invitation batches: everyone due for a second dose and not yet invited gets a personal link by SMS."""
from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from typing import Callable

from tortoise.expressions import Q, Subquery
from tortoise.functions import Count
from tortoise.transactions import in_transaction

from ..clock import as_utc
from ..db.tables import Booking, Resident, RiskArea, Site
from ..district import District
from ..messaging import wording
from ..messaging.outbox import queue
from ..messaging.sms import Sms
from ..people.links import issue_link, link_url
from ..rules.interval import RuleBook

BATCH = 500
SAMPLE_TOKEN = "x" * 22  # tokens.new_link_token() gives 22 characters


class InviteError(ValueError):
    """The batch cannot be sent as configured; nothing was written."""


@dataclass(frozen=True)
class InviteResult:
    count: int
    dry_run: bool


# Told how many were done so far: a progress bar (CLI) or a progress page (the console).
Progress = Callable[[int], object]


@dataclass(frozen=True)
class Scope:
    """Part of the district: residents living in a sub-district and/or given their first dose at a site."""

    subdistrict: str = ""
    site_id: int | None = None

    def apply(self, query):
        if self.subdistrict:
            query = query.filter(subdistrict=self.subdistrict)
        if self.site_id:
            query = query.filter(first_site_id=self.site_id)
        return query


EVERYONE = Scope()


@dataclass(frozen=True)
class Tally:
    key: str  # the sub-district, or the site's code
    label: str  # the sub-district, or the site's name
    count: int


@dataclass(frozen=True)
class Preview:
    """Who a batch would invite now: how many, by sub-district and by first-dose site."""

    scope: Scope
    total: int
    by_subdistrict: list[Tally]
    by_site: list[Tally]
    subdistricts: list[str] = field(default_factory=list)  # the choices of the filter
    sites: list[Site] = field(default_factory=list)


def invitation(rules: RuleBook, resident: Resident, base_url: str, token: str,
               as_of: dt.date | None = None) -> Sms:
    """The invitation SMS, within its length (models/messaging/wording.py): a name too long to fit
    is shortened to its first character."""
    window = rules.window(resident.first_dose_date, resident.vaccine)
    sms = wording.invitation(resident, window.due_by, link_url(base_url, token), today=as_of)
    if not wording.fits(sms):
        raise InviteError(_too_long(base_url, sms))
    return sms


def check_base_url(base_url: str) -> None:
    """Raise InviteError when even the shortest message with a link (an invitation, a reminder, a
    re-issued link, a cancellation for a closure), in either language, would not fit with this
    BASE_URL: one limit for the whole service, so no batch stops half-way for it."""
    longest = wording.longest_with(link_url(base_url, SAMPLE_TOKEN))
    if not wording.fits(longest):
        raise InviteError(_too_long(base_url, longest))


def _too_long(base_url: str, sms: Sms) -> str:
    return (f"BASE_URL {base_url} is too long for an SMS: the message would be {len(sms.body)} "
            f"characters, the limit is {wording.limit(sms.template, sms.lang)}; use a shorter address")


def per_vaccine(rules: RuleBook, days: Callable, lookup: str, as_of: dt.date) -> Q:
    """First-dose dates compared with as_of minus each vaccine's own number of days, as one filter.

    `days(rule)` picks the rule's number (min_days, max_days); `lookup` is the comparison
    (first_dose_date__lte, first_dose_date__lt). A vaccine the rule book does not list follows
    its default, as RuleBook.for_vaccine does.
    """
    named = list(rules.products)
    found = Q(**{lookup: as_of - dt.timedelta(days=days(rules.default))})
    if named:
        found = found & ~Q(vaccine__in=named)
    for name, rule in rules.products.items():
        found = found | Q(Q(vaccine=name), Q(**{lookup: as_of - dt.timedelta(days=days(rule))}))
    return found


def not_booked(query):
    """Without an active booking and not in a risk area (they could not book now)."""
    return (query.exclude(id__in=Subquery(Booking.filter(status=Booking.ACTIVE).values("resident_id")))
            .exclude(subdistrict__in=Subquery(RiskArea.all().values("subdistrict"))))


def _candidates(rules: RuleBook, as_of: dt.date, scope: Scope = EVERYONE):
    """Residents with no second dose, not invited, not booked, not in a risk area, first dose early enough."""
    return not_booked(scope.apply(
        Resident.filter(
            per_vaccine(rules, lambda rule: rule.min_days, "first_dose_date__lte", as_of),
            second_dose_date__isnull=True,
            invited_at__isnull=True,
        )
    ))


async def due_count(rules: RuleBook, as_of: dt.date, scope: Scope = EVERYONE) -> int:
    """How many a batch for this scope would invite now (one COUNT query)."""
    return await _candidates(rules, as_of, scope).count()


async def preview(rules: RuleBook, as_of: dt.date, scope: Scope = EVERYONE) -> Preview:
    """Who is due and not yet invited or booked, counted by sub-district and by first-dose site
    with grouped COUNT queries (a million residents are never loaded)."""
    sites = await Site.all().order_by("subdistrict", "code")
    site_by_id = {site.id: site for site in sites}
    if scope.site_id and scope.site_id not in site_by_id:
        scope = Scope(scope.subdistrict)  # a site that does not exist filters nothing
    query = _candidates(rules, as_of, scope)
    rows = await (query.annotate(n=Count("id")).group_by("subdistrict").order_by("subdistrict")
                  .values("subdistrict", "n"))
    by_subdistrict = [Tally(r["subdistrict"], r["subdistrict"], r["n"]) for r in rows]
    rows = await (_candidates(rules, as_of, scope).annotate(n=Count("id"))
                  .group_by("first_site_id").values("first_site_id", "n"))
    by_site = sorted(
        (Tally(site_by_id[r["first_site_id"]].code, site_by_id[r["first_site_id"]].name, r["n"])
         for r in rows), key=lambda c: c.key)
    subdistricts = sorted({site.subdistrict for site in sites} | {c.key for c in by_subdistrict if c.key}
                          | ({scope.subdistrict} if scope.subdistrict else set()))
    return Preview(scope, sum(c.count for c in by_subdistrict), by_subdistrict, by_site,
                   subdistricts, sites)


async def eligible(rules: RuleBook, as_of: dt.date, limit: int | None = None,
                   scope: Scope = EVERYONE):
    """Yield residents to invite, most overdue first (keyset pages, so a large district fits in memory)."""
    found = 0
    after: tuple[dt.date, int] | None = None
    while limit is None or found < limit:
        query = _candidates(rules, as_of, scope)
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
                 dry_run: bool = False, scope: Scope = EVERYONE,
                 progress: Progress | None = None) -> InviteResult:
    """Issue a link and queue one invitation SMS per eligible resident (of the scope); return how many.

    `progress(count)` is told the count after each resident: a progress bar or page."""
    check_base_url(district.base_url)
    count = 0
    async for resident in eligible(district.rules, as_of, limit, scope):
        if dry_run or await _invite_one(district, resident, as_of):
            count += 1
            if progress:
                progress(count)
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
        sms = invitation(district.rules, resident, district.base_url, token, as_of)
        await queue(district.vault, resident, sms, kind="invite", using_db=conn)
    return True
