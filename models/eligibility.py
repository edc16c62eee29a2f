"""Where a resident stands today: their window, their booking, and why they cannot book (if so)."""
from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

from . import availability
from .residents import active_booking, is_restricted
from .rules import BOOKED, NO_ROOM, Window, interval_window, refusal
from .tables import Booking, Resident


@dataclass(frozen=True)
class Standing:
    window: Window
    booking: Booking | None
    refusal: str | None  # rules.VACCINATED, BOOKED, RESTRICTED, TOO_EARLY, NO_ROOM or None
    restricted: bool = False

    @property
    def can_choose(self) -> bool:
        """May go through site and time choice: to book, or to move an existing booking."""
        return self.refusal is None or (self.refusal == BOOKED and not self.restricted)


async def assess(resident: Resident, now: dt.datetime, *, lead_days: int = 7) -> Standing:
    """Apply product rules 1-4 (and 'no room anywhere') to the resident as of `now`."""
    window = interval_window(resident.first_dose_date, resident.vaccine, lead_days)
    booking = await active_booking(resident.id)
    restricted = await is_restricted(resident)
    why = refusal(
        second_dose_given=resident.second_dose_date is not None,
        restricted=restricted,
        has_active_booking=booking is not None,
        window=window,
        today=now.date(),
    )
    if why is None and await availability.total_free(window, now) == 0:
        why = NO_ROOM
    return Standing(window, booking, why, restricted)
