"""The interval rule: when a second dose may be booked and given, per vaccine product.

Rules 2 and 3 of product.md: at least `min_days` after the first dose, and "late" after
`max_days` (still allowed). The rule book is read from config/vaccines.toml by whoever starts
the service (web/app.py, run.py) and handed down: nothing here reads a file on import.
"""
from __future__ import annotations

import datetime as dt
import tomllib
from dataclasses import dataclass
from pathlib import Path

RULES_FILE = Path(__file__).resolve().parent.parent.parent / "config" / "vaccines.toml"


@dataclass(frozen=True)
class IntervalRule:
    min_days: int  # the second dose is given at least this many days after the first
    max_days: int  # and should be given within this many days (later is allowed, but late)


@dataclass(frozen=True)
class Window:
    """The days a person's second dose may be booked for."""

    earliest: dt.date  # first day the second dose may be given
    due_by: dt.date  # last day it should be given (later is allowed but late)
    opens_on: dt.date  # first day the resident may book

    def first_bookable(self, today: dt.date) -> dt.date:
        return max(self.earliest, today)

    def allows(self, day: dt.date, start: str, now: dt.datetime) -> bool:
        """Whether a time window starting at `start` on `day` may be booked at `now`."""
        return day >= self.first_bookable(now.date()) and not has_started(day, start, now)

    def is_late(self, day: dt.date) -> bool:
        return day > self.due_by


def has_started(day: dt.date, start: str, now: dt.datetime) -> bool:
    """Whether a time window ("09:00" on `day`) has begun by `now`: nobody can book it any more.

    The same rule in SQL and as a Tortoise filter: models/db/places.py (`not_started_sql`).
    """
    return day < now.date() or (day == now.date() and start <= now.strftime("%H:%M"))


class RuleBook:
    """The interval rules in force: a default and one per vaccine product (config/vaccines.toml)."""

    def __init__(self, default: IntervalRule, products: dict[str, IntervalRule] | None = None,
                 *, lead_days: int = 7):
        self.default = default
        self.products = products or {}
        self.lead_days = lead_days  # booking opens this many days before the earliest day

    @classmethod
    def from_file(cls, path: Path | str = RULES_FILE, *, lead_days: int = 7) -> "RuleBook":
        with open(path, "rb") as f:
            data = tomllib.load(f)
        rule = lambda d: IntervalRule(int(d["min_days"]), int(d["max_days"]))  # noqa: E731
        return cls(rule(data["default"]),
                   {name: rule(d) for name, d in data.get("products", {}).items()},
                   lead_days=lead_days)

    def for_vaccine(self, vaccine: str) -> IntervalRule:
        return self.products.get((vaccine or "").strip(), self.default)

    def shortest_min_days(self) -> int:
        return min([self.default.min_days, *(r.min_days for r in self.products.values())])

    def window(self, first_dose: dt.date, vaccine: str = "") -> Window:
        """The days a second dose may be booked for, from the first-dose date and the product."""
        rule = self.for_vaccine(vaccine)
        earliest = first_dose + dt.timedelta(days=rule.min_days)
        return Window(
            earliest=earliest,
            due_by=first_dose + dt.timedelta(days=rule.max_days),
            opens_on=earliest - dt.timedelta(days=self.lead_days),
        )
