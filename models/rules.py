"""Eligibility and the interval rule: plain functions over a resident record and a date."""
from __future__ import annotations

import datetime as dt
import os
import tomllib
from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class IntervalRule:
    min_days: int  # the second dose is given at least this many days after the first
    max_days: int  # and should be given within this many days (later is allowed, but late)


RULES_FILE = Path(__file__).resolve().parent.parent / "config" / "vaccines.toml"


class RuleBook:
    """The interval rules in force: a default and one per vaccine product (config/vaccines.toml)."""

    def __init__(self, default: IntervalRule, products: dict[str, IntervalRule]):
        self.default = default
        self.products = products

    @classmethod
    def from_file(cls, path: Path | str) -> "RuleBook":
        with open(path, "rb") as f:
            data = tomllib.load(f)
        rule = lambda d: IntervalRule(int(d["min_days"]), int(d["max_days"]))  # noqa: E731
        return cls(rule(data["default"]),
                   {name: rule(d) for name, d in data.get("products", {}).items()})

    def for_vaccine(self, vaccine: str) -> IntervalRule:
        return self.products.get((vaccine or "").strip(), self.default)

    def shortest_min_days(self) -> int:
        return min([self.default.min_days, *(r.min_days for r in self.products.values())])


_rules = RuleBook.from_file(os.environ.get("VACCINE_RULES_FILE", RULES_FILE))


def use_rules(rules: RuleBook) -> None:
    """Put another rule book in force (tests, or a reload after the file changed)."""
    global _rules
    _rules = rules


def current_rules() -> RuleBook:
    return _rules


# Why a new booking cannot be made, in the order checked.
VACCINATED = "vaccinated"
RESTRICTED = "restricted"
BOOKED = "booked"
TOO_EARLY = "too_early"
NO_ROOM = "no_room"


def rule_for(vaccine: str) -> IntervalRule:
    return _rules.for_vaccine(vaccine)


@dataclass(frozen=True)
class Window:
    earliest: dt.date  # first day the second dose may be given
    due_by: dt.date  # last day it should be given (later is allowed but late)
    opens_on: dt.date  # first day the resident may book

    def first_bookable(self, today: dt.date) -> dt.date:
        return max(self.earliest, today)

    def allows(self, day: dt.date, today: dt.date) -> bool:
        return day >= self.first_bookable(today)

    def is_late(self, day: dt.date) -> bool:
        return day > self.due_by


def interval_window(first_dose: dt.date, vaccine: str = "", lead_days: int = 7) -> Window:
    """Return the days a second dose may be booked for, from the first-dose date."""
    rule = rule_for(vaccine)
    earliest = first_dose + dt.timedelta(days=rule.min_days)
    return Window(
        earliest=earliest,
        due_by=first_dose + dt.timedelta(days=rule.max_days),
        opens_on=earliest - dt.timedelta(days=lead_days),
    )


def refusal(
    *,
    second_dose_given: bool,
    restricted: bool,
    has_active_booking: bool,
    window: Window,
    today: dt.date,
) -> str | None:
    """Return why this person cannot make a new booking today, or None when they can."""
    if second_dose_given:
        return VACCINATED
    if has_active_booking:
        return BOOKED  # shown their booking, which they may move or cancel
    if restricted:
        return RESTRICTED
    if today < window.opens_on:
        return TOO_EARLY
    return None


def needs_companion(age: int) -> bool:
    """People aged 70 or more come with a family member (the notice, item 4)."""
    return age >= 70
