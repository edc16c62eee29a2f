"""The second-dose guide's facts (/guide), taken from the rules in force, so the two never disagree.

The interval and the booking lead come from the RuleBook (config/vaccines.toml and
BOOKING_LEAD_DAYS), the companion age from eligibility.needs_companion(), the sites from the
database (read by models/operations/sites.py: guide(), since rules sit below the database). The
page (templates/pages/public/guide.html) only words them.
"""
from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

from .eligibility import needs_companion
from .interval import IntervalRule, RuleBook
from .tianhe import SUBDISTRICTS

HOTLINE = "12345"  # the city's service hotline, where the call centre books by phone
WECHAT_ACCOUNT = "广州天河发布"  # the district's official account, as the notice names it
WECHAT_KEYWORD = "疫苗"  # the keyword the notice tells residents to send
CITY_PLATFORM = "广州健康通"  # the city health platform's mini-program


@dataclass(frozen=True)
class GuideSite:
    name: str
    address: str


@dataclass(frozen=True)
class Guide:
    min_days: int  # the second dose is given at least this many days after the first
    max_days: int  # and should be given within this many days (later is allowed, but late)
    opens_on_day: int  # booking opens on this day after the first dose (0: at once)
    others: tuple[tuple[str, IntervalRule], ...]  # vaccine products whose interval differs
    companion_age: int  # from this age, come with a family member
    sites: tuple[tuple[str, tuple[GuideSite, ...]], ...]  # open sites by sub-district
    hotline: str = HOTLINE
    wechat_account: str = WECHAT_ACCOUNT
    wechat_keyword: str = WECHAT_KEYWORD
    city_platform: str = CITY_PLATFORM


def companion_age() -> int:
    """The age from which needs_companion() asks for a family member, found by asking the rule
    itself: the guide cannot state another age than the confirmation page and the SMS."""
    born = dt.date(1950, 1, 1)
    return next(age for age in range(0, 151) if needs_companion(born, dt.date(1950 + age, 1, 1)))


def facts(rules: RuleBook, sites: tuple = ()) -> Guide:
    """The guide's numbers from the rule book (the default rule, and the products that differ)."""
    default = rules.default
    others = tuple(sorted((name, rule) for name, rule in rules.products.items() if rule != default))
    return Guide(min_days=default.min_days, max_days=default.max_days,
                 opens_on_day=max(0, default.min_days - rules.lead_days), others=others,
                 companion_age=companion_age(), sites=sites)


def by_subdistrict(rows) -> tuple[tuple[str, tuple[GuideSite, ...]], ...]:
    """Sites ((sub-district, name, address) rows) grouped by sub-district, in the district's own
    order (unknown names last)."""
    order = {name: n for n, name in enumerate(SUBDISTRICTS)}
    groups: dict[str, list[GuideSite]] = {}
    for subdistrict, name, address in rows:
        groups.setdefault(subdistrict, []).append(GuideSite(name, address))
    names = sorted(groups, key=lambda s: (order.get(s, len(order)), s))
    return tuple((s, tuple(sorted(groups[s], key=lambda site: site.name))) for s in names)

