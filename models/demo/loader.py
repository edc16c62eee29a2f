"""The demo data set: loaded idempotently, with a fresh link for each showcase person on every run."""
from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field

from ..booking import service, waitlist
from ..channel import Channel
from ..clock import TZ, as_date
from ..db.tables import Booking, Resident, RiskArea, Site, Slot, SmsMessage, StaffUser
from ..district import District
from ..people.links import issue_link, link_url
from ..people.residents import active_booking, upsert_resident
from ..rules.eligibility import Refused
from ..rules.interval import has_started
from ..staff.accounts import create_user
from . import data


class NotADemoDatabase(RuntimeError):
    """The database holds sites that are not the demo's: demo people and logins stay out of it."""


@dataclass(frozen=True)
class ShowcaseLink:
    case: str  # a key of demo_data.CASES
    label: str
    name: str
    id_number: str  # fictional, so it may be printed in full
    phone: str  # made up (138 0013 80xx), printed in full too: /entry and /group ask for it
    url: str


@dataclass
class DemoResult:
    links: list[ShowcaseLink] = field(default_factory=list)
    staff: list[tuple[str, str, str, str]] = field(default_factory=list)  # role, user, password, scope
    slots_created: int = 0
    residents_created: int = 0
    bookings_made: int = 0
    totals: dict[str, int] = field(default_factory=dict)  # rows in the database after loading


async def is_demo_database() -> bool:
    """True when the database is empty or holds only the demo's sites."""
    codes = set(await Site.all().values_list("code", flat=True))
    return codes <= data.SITE_CODES


async def load_demo(district: District, *, force: bool = False) -> DemoResult:
    """Load (or top up) the demo data set as of the district's clock; return fresh showcase links
    and the logins."""
    now = district.clock.now()
    today = now.date()
    if not force and not await is_demo_database():
        raise NotADemoDatabase("this database holds sites that are not the demo's; "
                               "the demo data set was not loaded (use --force to load it anyway)")
    result = DemoResult()
    sites = await _sites()
    await RiskArea.get_or_create(subdistrict=data.RISK_SUBDISTRICT, defaults={"level": "medium"})
    for site in sites.values():
        full = site.code == data.FULL_SITE
        result.slots_created += await _ensure_slots(
            site, today, data.FULL_SITE_WINDOWS if full else data.WINDOWS,
            data.FULL_SITE_CAPACITY if full else data.CAPACITY)

    people = data.showcase() + data.crowd()
    residents: dict[str, Resident] = {}
    for person in people:
        residents[person.id_number], created = await _resident(district, person, sites, today)
        result.residents_created += created
    opening = dt.datetime.combine(today, dt.time(7, 0), TZ)  # today's windows, booked before they open
    for n, person in enumerate(p for p in people if p.case == "booked"):
        start = data.WINDOWS[n % len(data.WINDOWS)][0]
        if n % 4 == 0:  # a queue at TH01 today, for the site worker's check-in console
            result.bookings_made += await _book(district, residents[person.id_number], sites["TH01"],
                                                today, start, opening)
            continue
        day = today + dt.timedelta(days=1 + n % 5)
        result.bookings_made += await _book(district, residents[person.id_number], sites[person.site],
                                            day, start, now)
    result.bookings_made += await _fill_full_site(district, sites[data.FULL_SITE], now, result)
    await _waiting_list(district, sites, today, result)

    for person in data.showcase():
        token = await issue_link(residents[person.id_number], now=now,
                                 days_valid=district.link_days_valid)
        result.links.append(ShowcaseLink(person.case, data.CASES[person.case], person.name,
                                         person.id_number, person.phone,
                                         link_url(district.base_url, token)))
    result.staff = await _staff()
    result.totals = {
        "sites": await Site.all().count(),
        "residents": await Resident.all().count(),
        "slots": await Slot.filter(day__gte=today).count(),
        "active bookings": await Booking.filter(status=Booking.ACTIVE).count(),
    }
    return result


async def _sites() -> dict[str, Site]:
    sites = {}
    for code, name, subdistrict, address, phone in data.SITES:
        site, _ = await Site.get_or_create(
            code=code,
            defaults=dict(name=name, subdistrict=subdistrict, address=address, phone=phone),
        )
        sites[code] = site
    return sites


async def _ensure_slots(site: Site, today: dt.date, windows, capacity: int) -> int:
    """Create the site's windows for the next DAYS days where missing; existing ones are left as they are."""
    last = today + dt.timedelta(days=data.DAYS - 1)
    have = set(await Slot.filter(site_id=site.id, day__gte=today, day__lte=last)
               .values_list("day", "start"))
    have = {(as_date(day), start) for day, start in have}
    missing = [
        Slot(site_id=site.id, day=day, start=start, end=end, capacity=capacity)
        for day in (today + dt.timedelta(days=n) for n in range(data.DAYS))
        for start, end in windows
        if (day, start) not in have
    ]
    if missing:
        await Slot.bulk_create(missing)
    return len(missing)


async def _resident(district: District, person: data.Person, sites: dict[str, Site],
                    today: dt.date) -> tuple[Resident, int]:
    """Create or bring up to date one demo person; dates are relative to today, so each case holds."""
    site = sites[person.site]
    resident, outcome = await upsert_resident(
        district.vault,
        name=person.name, id_number=person.id_number, phone=person.phone,
        first_dose_date=today - dt.timedelta(days=person.first_dose_ago), site=site,
        vaccine=person.vaccine, subdistrict=person.subdistrict,
    )
    second = None if person.second_dose_ago is None else today - dt.timedelta(days=person.second_dose_ago)
    if resident.second_dose_date != second:
        resident.second_dose_date = second
        resident.second_dose_site_id = site.id if second else None
        await resident.save(update_fields=["second_dose_date", "second_dose_site_id"])
    return resident, outcome == "created"


async def _book(district: District, resident: Resident, site: Site, day: dt.date, start: str,
                now: dt.datetime) -> int:
    """Book the resident into the given window unless they already have a booking; 1 if booked."""
    if await active_booking(resident.id):
        return 0
    slot = await Slot.get_or_none(site_id=site.id, day=day, start=start)
    if slot is None:
        return 0
    try:
        standing = await service.stand(district, resident, now)
        await service.confirm(district, standing, slot.id, request_key=None, channel=Channel.DEMO,
                              chosen=slot.id)
    except Refused:
        return 0
    # The phones are made up but may be someone's: never leave a message queued for them.
    await SmsMessage.filter(resident_id=resident.id, kind="confirm", status=SmsMessage.QUEUED).delete()
    return 1


async def _fill_full_site(district: District, site: Site, now: dt.datetime, result: DemoResult) -> int:
    """Book filler people into every open place at the full site, so it shows as fully booked."""
    made = 0
    k = 0
    sites = {site.code: site}
    for slot in await Slot.filter(site_id=site.id, day__gte=now.date()).order_by("day", "start"):
        if has_started(slot.day, slot.start, now):
            continue  # nobody can book it any more
        free = slot.capacity - slot.booked
        while free > 0:
            resident, created = await _resident(district, data.filler(k), sites, now.date())
            k += 1
            result.residents_created += created
            if await active_booking(resident.id):
                continue
            made += await _book(district, resident, site, slot.day, slot.start, now)
            free -= 1
    return made


async def _waiting_list(district: District, sites: dict[str, Site], today: dt.date,
                        result: DemoResult) -> None:
    """People waiting for the fully booked site, with a choice each (the last one without a
    mobile phone: the call centre calls them back), for the staff screens and the reports."""
    choices = [waitlist.Choice(), waitlist.Choice(scope="subdistrict"), waitlist.Choice(days="weekends"),
               waitlist.Choice(part="morning"), waitlist.Choice(), waitlist.Choice(scope="subdistrict")]
    for k in range(data.WAITING):
        resident, created = await _resident(district, data.waiter(k), sites, today)
        result.residents_created += created
        standing = await service.stand(district, resident)
        if standing.refusal in waitlist.JOINABLE:
            await waitlist.join(district, standing, choices[k % len(choices)], channel=Channel.DEMO,
                                callback=k == data.WAITING - 1)
            # a place free elsewhere in the sub-district is offered at once: its SMS is not sent
            # to a made-up phone (as the demo's bookings' SMS are not)
            await SmsMessage.filter(resident_id=resident.id).delete()


async def _staff() -> list[tuple[str, str, str, str]]:
    """Create the demo logins where missing; return them (role, username, password, scope)."""
    logins = []
    for role, username, password, site_code, subdistrict in data.STAFF:
        if not await StaffUser.exists(username=username):
            await create_user(role=role, username=username, password=password,
                              site_code=site_code, subdistrict=subdistrict)
        logins.append((role, username, password, site_code or subdistrict or "all"))
    return logins
