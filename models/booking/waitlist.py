"""The waiting list, as the channels use it: joining (what a person would accept), where they
stand, leaving, the offers (read, declined, run out), a site's same-day leftovers, an agent's
call-back list and the admin's figures.

Freed places reach the list inside the engine's own transactions (booking/offers.py): this
module only builds the `Offerer` that words their SMS, and runs the units that answer an offer.
Confirming an offer is booking: `service.confirm_offer`, through the engine like every booking.

The order, written down in the README ("The waiting list") and the guide: whose 56-day interval
ends soonest first (people past it are still served, and so come first), then people aged 70 or
more, then the earliest to join; a freed place goes to the first person in that order whose
choice it matches.
"""
from __future__ import annotations

import datetime as dt
import statistics
from dataclasses import dataclass

from tortoise.expressions import Q
from tortoise.transactions import in_transaction

from ..channel import Channel
from ..clock import TZ, as_utc
from ..db import places
from ..db.tables import Resident, Site, Slot, SmsMessage, WaitlistEntry as Entry, WaitlistOffer as Offer
from ..district import District
from ..messaging import wording
from ..messaging.outbox import message_values
from ..rules.eligibility import Refusal, Refused
from ..tokens import token_hash
from . import offers
from .offers import Offerer, Person, Place

OFFER_PATH = "/o/"
SCOPES = ("site", "subdistrict", "any")  # their first-dose site (the default), its sub-district, any
DAYS = ("any", "weekdays", "weekends")
PARTS = ("any", "morning", "afternoon")
JOINABLE = (None, Refusal.NO_ROOM)  # may join: nothing in the way, or no room anywhere


@dataclass(frozen=True)
class Choice:
    """What a person on the list would accept."""

    scope: str = "site"
    days: str = "any"
    part: str = "any"

    @classmethod
    def parse(cls, scope: str | None, days: str | None, part: str | None) -> "Choice":
        """From a form: anything unknown (or missing) is the default."""
        return cls(scope if scope in SCOPES else "site", days if days in DAYS else "any",
                   part if part in PARTS else "any")


# ---- the offer SMS, worded here and written by the engine inside its transaction


def offer_url(base_url: str, token: str) -> str:
    return f"{base_url.rstrip('/')}{OFFER_PATH}{token}"


def _reader(person: Person) -> Resident:
    """The person as wording and the outbox read them (name, language, the phone as stored):
    not saved, nothing else set."""
    return Resident(id=person.resident_id, name=person.name, lang=person.lang, phone_cipher=person.phone_cipher,
                    phone_masked=person.phone_masked, phone_hash=person.phone_hash)


def _sms_row(district: District, person: Person, sms, kind: str, *, sends_at: dt.datetime | None = None,
             expires_at: dt.datetime | None = None) -> tuple[type, dict]:
    """The outbox row of a message to the person (outbox.message_values), to go at `sends_at`."""
    values = message_values(district.vault, _reader(person), sms, kind=kind)
    return SmsMessage, {**values, "resident_id": person.resident_id, "next_attempt_at": sends_at,
                        "expires_at": expires_at}


def offerer(district: District) -> Offerer:
    """The district's Offerer: the hold's lengths, the quiet hours and the offer SMS."""

    def rows(person: Person, place: Place, token: str, until: dt.datetime, sends_at: dt.datetime):
        sms = wording.offer(_reader(person), place.day, place.start, place.end, place.site_name,
                            offer_url(district.base_url, token), until)
        later = sends_at if sends_at > as_utc(district.clock.now()) else None
        return [_sms_row(district, person, sms, "offer", sends_at=later, expires_at=until)]

    def off_list_rows(person: Person):
        return [_sms_row(district, person, wording.off_list(_reader(person)), "waitlist_off")]

    return Offerer(rows, off_list_rows, minutes=district.offer_minutes,
                   same_day_minutes=district.same_day_offer_minutes, quiet=district.quiet_hours)


# ---- joining, standing, leaving


@dataclass(frozen=True)
class OnList:
    """Where a person stands on the list: their entry, roughly how many are ahead of them for
    what they chose, and the offer holding a place for them (slot and site loaded), if any."""

    entry: Entry
    ahead: int
    offer: Offer | None

    @property
    def choice(self) -> Choice:
        return Choice(self.entry.scope, self.entry.days, self.entry.part)


async def join(district: District, standing, choice: Choice, *, channel: str = Channel.SMS,
               callback: bool = False, staff_id: int | None = None) -> Entry:
    """Put the person on the list with their choice (a second join changes the choice and keeps
    their turn); Refused with the journey's own reason when they may not book at all (vaccinated,
    booked, in a risk area, too early). Any free place that suits them (or someone ahead of
    them) is offered at once."""
    if standing.refusal not in JOINABLE:
        raise Refused(standing.refusal, standing.booking)
    resident: Resident = standing.resident
    now = as_utc(standing.now)
    site = await Site.get(id=resident.first_site_id)
    values = dict(scope=choice.scope, days=choice.days, part=choice.part, site_id=site.id,
                  subdistrict=site.subdistrict, first_day=standing.window.earliest,
                  due_by=standing.window.due_by, senior=standing.companion, callback=callback)
    async with in_transaction() as conn:
        entry = await Entry.filter(resident_id=resident.id).using_db(conn).select_for_update().first()
        if entry is None:
            entry = await Entry.create(resident_id=resident.id, joined_at=now, channel=channel,
                                       added_by_id=staff_id, status=Entry.WAITING, **values, using_db=conn)
        else:
            if entry.status not in Entry.ACTIVE:  # back on the list: a new turn
                values.update(status=Entry.WAITING, joined_at=now, expired_offers=0, ended_at=None,
                              channel=channel, added_by_id=staff_id)
            await Entry.filter(id=entry.id).using_db(conn).update(**values)
            await entry.refresh_from_db(using_db=conn)
    await offer_free(district, await _suitable_free_slots(entry, standing.now))
    return entry


async def _suitable_free_slots(entry: Entry, now: dt.datetime, most: int = 20) -> list[int]:
    """Free windows the entry's choice accepts now (the list is then offered them in order)."""
    query = Slot.filter(places.has_room_filter(), places.not_started_filter(now),
                        day__gte=max(entry.first_day, now.date()), site__active=True, closed_reason="")
    if entry.scope == "site":
        query = query.filter(site_id=entry.site_id)
    elif entry.scope == "subdistrict":
        query = query.filter(site__subdistrict=entry.subdistrict)
    if entry.part == "morning":
        query = query.filter(start__lt=offers.NOON)
    elif entry.part == "afternoon":
        query = query.filter(start__gte=offers.NOON)
    found = await query.order_by("day", "start").limit(most * 3).values_list("id", "day")
    wanted = {"any": (0, 1, 2, 3, 4, 5, 6), "weekdays": (0, 1, 2, 3, 4), "weekends": (5, 6)}[entry.days]
    return [slot_id for slot_id, day in found if day.weekday() in wanted][:most]


async def offer_free(district: District, slot_ids: list[int]) -> int:
    """Offer the free places of these windows to the list (a window opened, capacity raised):
    how many offers were made."""
    if not slot_ids:
        return 0
    now = as_utc(district.clock.now())
    return await offers.run(lambda: offers.offer_free(slot_ids, now, offerer(district)))


async def offer_free_in(district: District, conn, slot_ids: list[int]) -> int:
    """As offer_free, inside the caller's transaction `conn`: the new places are offered in the
    commit that makes them, before the public journey can see them."""
    if not slot_ids:
        return 0
    now = as_utc(district.clock.now())
    return await offers.run_in(conn, offers.offer_free(slot_ids, now, offerer(district)))


async def on_list(resident_id: int) -> OnList | None:
    """Where the person stands, while they are on the list (waiting or offered a place)."""
    entry = await Entry.get_or_none(resident_id=resident_id, status__in=Entry.ACTIVE)
    if entry is None:
        return None
    offer = await Offer.filter(entry_id=entry.id, status=Offer.OPEN).select_related("slot__site").first()
    return OnList(entry, await ahead_of(entry), offer)


async def ahead_of(entry: Entry) -> int:
    """People on the list before them in the order whose choice could take the same places."""
    before = (Q(due_by__lt=entry.due_by)
              | Q(due_by=entry.due_by, senior=True) if not entry.senior else Q(due_by__lt=entry.due_by))
    before |= Q(due_by=entry.due_by, senior=entry.senior, joined_at__lt=entry.joined_at)
    same = Q(scope="any") | Q(site_id=entry.site_id) | Q(scope="subdistrict", subdistrict=entry.subdistrict)
    return await Entry.filter(before, same, status__in=Entry.ACTIVE).count()


async def leave(district: District, resident_id: int) -> bool:
    """Off the list; a place held for them goes to the next person. False if they were not on it."""
    now = as_utc(district.clock.now())
    return await offers.run(lambda: offers.leave(resident_id, now, offerer(district)))


# ---- offers


async def offer_by_token(token: str) -> Offer | None:
    """The offer of a personal offer link, whatever its state (None for a made-up token)."""
    if not token or len(token) > 64:
        return None
    return await Offer.get_or_none(token_hash=token_hash(token)).select_related("slot__site", "resident")


async def offer_by_id(offer_id: int | None) -> Offer | None:
    if not offer_id:
        return None
    return await Offer.get_or_none(id=offer_id).select_related("slot__site", "resident")


def is_open(offer: Offer, now: dt.datetime) -> bool:
    return offer.status == Offer.OPEN and offer.expires_at > as_utc(now)


async def decline(district: District, offer_id: int) -> bool:
    """"Not for me": they stay on the list, the place goes to the next person."""
    now = as_utc(district.clock.now())
    return await offers.run(lambda: offers.decline(offer_id, now, offerer(district)))


async def sweep(district: District) -> int:
    """Close every offer whose time is up, each place going to the next person: how many.
    Run by `send-sms` (each round, and once with --once) and by the server."""
    now = as_utc(district.clock.now())
    done = 0
    for offer_id in await offers.due_offers(now):
        done += bool(await offers.run(lambda: offers.expire(offer_id, now, offerer(district))))
    return done


async def has_open_offer(resident_id: int, now: dt.datetime) -> bool:
    """A place is held for them by an offer (so 'no room anywhere' is not true for them)."""
    return await Offer.filter(resident_id=resident_id, status=Offer.OPEN,
                              expires_at__gt=as_utc(now)).exists()


# ---- a site's same-day leftovers


class LeftoverError(ValueError):
    """Leftover places that cannot be offered: `code` says why (count, until, late)."""

    def __init__(self, code: str):
        super().__init__(code)
        self.code = code


@dataclass(frozen=True)
class Leftovers:
    slot: Slot
    offered: int  # offers made at once


def leftover_window(now: dt.datetime, until: str, minutes: int) -> tuple[str, str]:
    """The window people offered a same-day leftover come in: from when the hold runs out
    (rounded up to 5 minutes, so they have time to come) until the site stops."""
    local = now.astimezone(TZ) + dt.timedelta(minutes=minutes)
    rounded = local + dt.timedelta(minutes=(-local.minute) % 5, seconds=-local.second,
                                   microseconds=-local.microsecond)
    if rounded.date() != now.astimezone(TZ).date():
        raise LeftoverError("late")
    start = rounded.strftime("%H:%M")
    if until <= start:
        raise LeftoverError("late")
    return start, until


async def leftovers(district: District, site: Site, count: int, until: str) -> Leftovers:
    """"N places left today until HH:MM": a window for them today, offered at once (the short
    hold) to the people on the list who accept this site, in order, in the same transaction."""
    if not 1 <= count <= 500:
        raise LeftoverError("count")
    now = district.clock.now()
    start, end = leftover_window(now, until, district.same_day_offer_minutes)
    today = now.astimezone(TZ).date()
    async with in_transaction() as conn:
        slot = await Slot.filter(site_id=site.id, day=today, start=start).using_db(conn).first()
        if slot is None:
            slot = await Slot.create(site_id=site.id, day=today, start=start, end=end, capacity=count,
                                     using_db=conn)
        else:
            await Slot.filter(id=slot.id).using_db(conn).update(capacity=slot.capacity + count)
        made = await offer_free_in(district, conn, [slot.id])
    return Leftovers(await Slot.get(id=slot.id).select_related("site"), made)


async def leftovers_today(site_id: int, now: dt.datetime) -> list[tuple[Slot, int, int]]:
    """Today's windows of the site with offers made: (slot, offers open, offers taken)."""
    today = now.astimezone(TZ).date()
    found = []
    for slot in await Slot.filter(site_id=site_id, day=today, offers__id__isnull=False).distinct().order_by("start"):
        opened = await Offer.filter(slot_id=slot.id, status=Offer.OPEN).count()
        taken = await Offer.filter(slot_id=slot.id, status=Offer.TAKEN).count()
        found.append((slot, opened, taken))
    return found


# ---- the agents' call-back list


async def callbacks(subdistrict: str | None = None) -> list[Offer]:
    """Open offers for people without a mobile phone, for an agent to phone (soonest to run out
    first); `subdistrict`: only that sub-district's people."""
    query = Offer.filter(status=Offer.OPEN, callback=True)
    if subdistrict is not None:
        query = query.filter(resident__subdistrict=subdistrict)
    return await query.order_by("expires_at").select_related("slot__site", "resident")


# ---- the admin's figures


@dataclass(frozen=True)
class Figures:
    waiting: list[dict]  # how many wait, per site (of their first dose), scope, days and part
    per_day: list[dict]  # offers made per day: sent, taken, declined, expired, withdrawn, open
    median_minutes_to_booking: float | None  # from joining to booking through the list
    on_list: int


async def figures(days: int = 14, now: dt.datetime | None = None) -> Figures:
    """The list by site and choice, offers per day, and the median time from joining to a
    booking made through an offer."""
    counts: dict[tuple, int] = {}
    for row in await Entry.filter(status__in=Entry.ACTIVE).values("site__name", "scope", "days", "part"):
        key = (row["site__name"], row["scope"], row["days"], row["part"])
        counts[key] = counts.get(key, 0) + 1
    listed = [dict(site=k[0], scope=k[1], days=k[2], part=k[3], people=n) for k, n in sorted(counts.items())]
    since = as_utc((now or dt.datetime.now(TZ)) - dt.timedelta(days=days))
    per: dict[dt.date, dict] = {}
    for row in await Offer.filter(created_at__gte=since).values("created_at", "status"):
        day = row["created_at"].astimezone(TZ).date()
        tally = per.setdefault(day, {"day": day, "sent": 0, **{s: 0 for s in Offer.STATUSES}})
        tally["sent"] += 1
        tally[row["status"]] += 1
    waits = []
    for row in await Offer.filter(status=Offer.TAKEN, created_at__gte=since).values(
            "answered_at", "entry__joined_at"):
        if row["answered_at"] and row["entry__joined_at"]:
            waits.append((row["answered_at"] - row["entry__joined_at"]).total_seconds() / 60)
    return Figures(listed, [per[d] for d in sorted(per)], statistics.median(waits) if waits else None,
                   sum(counts.values()))

