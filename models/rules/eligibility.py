"""Who may book: the refusals every channel words for its audience, and the age rule.

Rule 1 (eligible), rule 4 (one booking), rule 8 (70 or more: come with a family member).
"""
from __future__ import annotations

import datetime as dt
from enum import StrEnum

from .interval import Window


class Refusal(StrEnum):
    """Why something a person asked for cannot be done. Each channel words these itself."""

    # Why a new booking cannot be made, in the order checked.
    VACCINATED = "vaccinated"  # the second dose is recorded
    BOOKED = "booked"  # they have a booking: they are shown it, and may move or cancel it
    RESTRICTED = "restricted"  # their sub-district is marked medium or high risk
    TOO_EARLY = "too_early"  # booking opens later
    NO_ROOM = "no_room"  # no free place at any site on any allowed day
    # Why a chosen window could not be held, booked or moved to.
    FULL = "full"  # somebody else took the last place
    NOT_ALLOWED = "not_allowed"  # no such window, a closed site, or a day the rules do not allow
    GONE = "gone"  # the booking was cancelled or moved meanwhile
    NOT_CHOSEN = "not_chosen"  # a confirmation for a window the person did not choose


class Refused(Exception):
    """What was asked cannot be done; `reason` says why, `booking` is the one in the way (if any)."""

    def __init__(self, reason: Refusal, booking=None):
        super().__init__(reason)
        self.reason = reason
        self.booking = booking


def refusal(*, second_dose_given: bool, restricted: bool, has_active_booking: bool,
            window: Window, today: dt.date) -> Refusal | None:
    """Why this person cannot make a new booking today, or None when they can."""
    if second_dose_given:
        return Refusal.VACCINATED
    if has_active_booking:
        return Refusal.BOOKED
    if restricted:
        return Refusal.RESTRICTED
    if today < window.opens_on:
        return Refusal.TOO_EARLY
    return None


def age_on(born: dt.date, day: dt.date) -> int:
    """Age in whole years on `day`."""
    return day.year - born.year - ((day.month, day.day) < (born.month, born.day))


def needs_companion(born: dt.date, day: dt.date) -> bool:
    """People aged 70 or more on the day come with a family member (the notice, item 4)."""
    return age_on(born, day) >= 70
