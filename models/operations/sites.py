"""Sites as the district runs them: the list, creating and editing one, opening and closing it.

Validation answers with reason codes per field (the console words them); nothing is written
unless every field is good. A closed site (`Site.active` false) takes no new bookings: the
engine and availability already refuse inactive sites; its existing bookings stay.
"""
from __future__ import annotations

import datetime as dt
import re
from dataclasses import dataclass

from tortoise.exceptions import IntegrityError
from tortoise.transactions import in_transaction

from ..booking import waitlist
from ..db import places
from ..db.tables import Booking, Site, Slot
from ..district import District
from ..rules import guide as guide_facts
from ..rules.interval import RuleBook
from ..rules.tianhe import SUBDISTRICTS, normalise_subdistrict
from .imports.sites import SITE_CODE

PHONE = re.compile(r"^[0-9+()\- ]{0,40}$")
LIMITS = {"name": 100, "address": 200, "phone": 40}
FIELDS = ("code", "name", "subdistrict", "address", "phone")


class SiteInvalid(ValueError):
    """Some fields are not right: `errors` maps each such field to a reason code."""

    def __init__(self, errors: dict[str, str]):
        super().__init__(", ".join(f"{k}: {v}" for k, v in errors.items()))
        self.errors = errors


@dataclass(frozen=True)
class SiteRow:
    site: Site
    upcoming: int  # active bookings from today on


async def all_sites(today: dt.date) -> list[SiteRow]:
    """Every site, by sub-district then code, with its active bookings from today on."""
    sites = await Site.all().order_by("subdistrict", "code")
    counts: dict[int, int] = {}
    for site_id in await Booking.filter(status=Booking.ACTIVE, slot__day__gte=today).values_list(
            "slot__site_id", flat=True):
        counts[site_id] = counts.get(site_id, 0) + 1
    return [SiteRow(s, counts.get(s.id, 0)) for s in sites]


async def site_by_id(site_id: int | None) -> Site | None:
    return await Site.get_or_none(id=site_id) if site_id else None


async def site_by_code(code: str) -> Site | None:
    return await Site.get_or_none(code=code) if code else None


async def upcoming_bookings(site_id: int, today: dt.date) -> int:
    return await Booking.filter(status=Booking.ACTIVE, slot__site_id=site_id,
                                slot__day__gte=today).count()


def check_site(values: dict[str, str], *, new: bool) -> dict[str, str]:
    """The fields cleaned (sub-district in its full name); SiteInvalid with a code per bad field."""
    errors: dict[str, str] = {}
    clean = {k: (values.get(k) or "").strip() for k in FIELDS}
    if new:
        if not clean["code"]:
            errors["code"] = "empty"
        elif not SITE_CODE.match(clean["code"]):
            errors["code"] = "format"
    else:
        clean.pop("code")
    subdistrict = normalise_subdistrict(clean["subdistrict"])
    if not clean["subdistrict"]:
        errors["subdistrict"] = "empty"
    elif subdistrict is None:
        errors["subdistrict"] = "unknown"
    else:
        clean["subdistrict"] = subdistrict
    for name in ("name", "address"):
        if not clean[name]:
            errors[name] = "empty"
    for name, limit in LIMITS.items():
        if len(clean[name]) > limit:
            errors[name] = "long"
    if "phone" not in errors and not PHONE.match(clean["phone"]):
        errors["phone"] = "format"
    if errors:
        raise SiteInvalid(errors)
    return clean


async def create_site(values: dict[str, str]) -> Site:
    """A new, open site; SiteInvalid (code "taken" when the code exists)."""
    clean = check_site(values, new=True)
    if await Site.filter(code=clean["code"]).exists():
        raise SiteInvalid({"code": "taken"})
    try:
        return await Site.create(**clean)
    except IntegrityError:  # created by someone else a moment ago
        raise SiteInvalid({"code": "taken"}) from None


async def edit_site(site: Site, values: dict[str, str]) -> list[str]:
    """Change the site's name, sub-district, address and phone (its code stays); the fields changed."""
    clean = check_site(values, new=False)
    changed = [k for k, v in clean.items() if getattr(site, k) != v]
    if changed:
        for key in changed:
            setattr(site, key, clean[key])
        await site.save(update_fields=changed)
    return changed


async def set_open(site: Site, active: bool, district: District | None = None) -> bool:
    """Open or close the site for new bookings; whether anything changed. Opened again, its free
    places to come are offered to the waiting list in the same commit, before the public journey
    sees them."""
    async with in_transaction() as conn:
        changed = await Site.filter(id=site.id, active=not active).using_db(conn).update(active=active)
        if changed and active and district is not None:
            now = district.clock.now()
            free = await Slot.filter(places.has_room_filter(), places.not_started_filter(now), site_id=site.id,
                                     closed_reason="").using_db(conn).values_list("id", flat=True)
            await waitlist.offer_free_in(district, conn, list(free))
    site.active = active
    return bool(changed)


def subdistricts() -> tuple[str, ...]:
    return SUBDISTRICTS


async def guide(rules: RuleBook) -> guide_facts.Guide:
    """Everything the guide page (/guide) says: the rules' numbers and today's open sites."""
    rows = await Site.filter(active=True).values_list("subdistrict", "name", "address")
    return guide_facts.facts(rules, guide_facts.by_subdistrict(rows))
