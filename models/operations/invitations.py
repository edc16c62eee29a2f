"""Invitation batches: everyone due for a second dose and not yet invited gets a personal link by SMS."""
from __future__ import annotations

import asyncio
import datetime as dt
from dataclasses import dataclass, field
from typing import Callable, NamedTuple

from tortoise.expressions import Q, Subquery
from tortoise.functions import Count
from tortoise.transactions import in_transaction

from ..clock import as_utc
from ..db import bulk
from ..db.tables import Booking, Link, Resident, RiskArea, Site
from ..district import District
from ..messaging import wording
from ..messaging.outbox import message_values, queue_many
from ..messaging.sms import Sms
from ..people.links import link_url, new_link
from ..rules.interval import RuleBook

BATCH = 500  # residents invited in one transaction
READ_PAGE = 25_000  # residents read by one query (a scan of the table, sorted: few and large; plain
# values, peak memory +25 MB: 10,000 made 10 scans of a million-row table for 100,000 invitations)


class Invitee(NamedTuple):
    """What an invitation needs of a resident (wording, interval rules, outbox), read as plain
    values: a batch reads 100,000 of them, and a model object each took twice the time."""
    id: int
    name: str
    lang: str
    first_dose_date: dt.date
    vaccine: str
    phone_cipher: str
    phone_masked: str
    phone_hash: str


INVITE_FIELDS = Invitee._fields  # the columns read; the rest is not
YIELD_EVERY = 100  # invitations made between two chances for the event loop to serve others
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


def invitation(rules: RuleBook, resident: Resident | Invitee, base_url: str, token: str,
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
    """Yield residents to invite, most overdue first (keyset pages, so a large district fits in memory).

    They carry what an invitation needs (Invitee), not every column. Each page is one scan
    of the table (no index orders residents by first dose), hence pages of READ_PAGE."""
    found = 0
    after: tuple[dt.date, int] | None = None
    while limit is None or found < limit:
        query = _candidates(rules, as_of, scope)
        if after:
            day, last_id = after
            query = query.filter(Q(first_dose_date__gt=day) | Q(first_dose_date=day, id__gt=last_id))
        rows = await (query.order_by("first_dose_date", "id").limit(READ_PAGE)
                      .values_list(*INVITE_FIELDS))
        page = [Invitee._make(row) for row in rows]
        for resident in page:
            # The query used the shortest interval of any vaccine; apply the resident's own here.
            if rules.window(resident.first_dose_date, resident.vaccine).earliest <= as_of:
                yield resident
                found += 1
                if limit is not None and found >= limit:
                    return
        if len(page) < READ_PAGE:
            return
        after = (page[-1].first_dose_date, page[-1].id)


async def invite(district: District, *, as_of: dt.date, limit: int | None = None,
                 dry_run: bool = False, scope: Scope = EVERYONE,
                 progress: Progress | None = None) -> InviteResult:
    """Issue a link and queue one invitation SMS per eligible resident (of the scope); return how many.

    A page of BATCH residents at a time: their links and messages are made first (tokens,
    wording, encryption), then written in one transaction that claims them; one page is written
    while the next is made. `progress(count)` is told each count as pages are written (a
    progress bar or page)."""
    check_base_url(district.base_url)
    count = 0
    page: list[Invitee] = []

    def written(invited: int) -> None:
        nonlocal count
        if progress:
            for done in range(count + 1, count + invited + 1):
                progress(done)
        count += invited

    async with bulk.WriteBehind(written) as behind:  # one page written while the next is made
        async for resident in eligible(district.rules, as_of, limit, scope):
            if dry_run:
                count += 1
                if progress:
                    progress(count)
                continue
            page.append(resident)
            if len(page) == BATCH:
                await behind.add(await _prepare_page(district, page, as_of))
                page = []
        if page:
            await behind.add(await _prepare_page(district, page, as_of))
    return InviteResult(count, dry_run)


async def _prepare_page(district: District, residents: list[Invitee], as_of: dt.date):
    """Make a page's links and messages (outside any transaction); return the write of the
    page: mark, link and queue in one transaction, returning how many were invited (those
    another batch got to first are left out, and their link and message with them)."""
    now = district.clock.now()
    made: dict[int, tuple[dict, dict]] = {}  # resident id: (link row, outbox row)
    for n, resident in enumerate(residents, 1):
        if n % YIELD_EVERY == 0:
            await asyncio.sleep(0)  # some 50 ms of encryption a page: let a server answer others
        token, link = new_link(now=now, days_valid=district.link_days_valid)
        sms = invitation(district.rules, resident, district.base_url, token, as_of)
        made[resident.id] = ({**link, "resident_id": resident.id},
                             message_values(district.vault, resident, sms, kind="invite"))

    async def write() -> int:
        async with in_transaction() as conn:
            # The claim comes first: it marks the residents still not invited (locking them on
            # PostgreSQL), so two batches never both send; on SQLite the transaction holds the
            # write lock from its start.
            free = set(await (Resident.filter(id__in=list(made), invited_at__isnull=True)
                              .select_for_update().using_db(conn).values_list("id", flat=True)))
            if not free:
                return 0
            claimed = [i for i in made if i in free]  # most overdue first, as the page came
            await Resident.filter(id__in=claimed).using_db(conn).update(invited_at=as_utc(now))
            await bulk.Rows(Link, conn).insert(made[i][0] for i in claimed)
            await queue_many([(i, made[i][1]) for i in claimed], using_db=conn)
        return len(claimed)

    return write
