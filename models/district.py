"""What every part of the domain shares, built once at start-up from the settings and handed down.

web/app.py and run.py each build one District from Settings; nothing in models/ reads the
environment, a file or a module global after that.
"""
from __future__ import annotations

from dataclasses import dataclass, field

from .clock import SystemClock
from .messaging.caps import SmsCaps
from .people.pii import Vault
from .rules.interval import RuleBook


@dataclass(frozen=True)
class District:
    rules: RuleBook  # the interval rules in force (config/vaccines.toml)
    vault: Vault = field(repr=False)  # keys for personal values
    clock: SystemClock = field(default_factory=SystemClock)
    base_url: str = "http://127.0.0.1:8000"  # the public address in SMS links
    hold_minutes: int = 5  # as long as England's national booking service holds a place
    link_days_valid: int = 60
    verify_max_failures: int = 5  # wrong ID numbers before a personal link locks
    verify_lock_minutes: int = 30
    sms_caps: SmsCaps = field(default_factory=SmsCaps)  # SMS asked for on demand, per number
    # The waiting list (models/booking/waitlist.py): how long an offer holds a freed place, a
    # place for the same day, and the quiet hours (no offer SMS between; None: any time).
    offer_minutes: int = 120
    same_day_offer_minutes: int = 45
    quiet_hours: tuple[str, str] | None = ("21:30", "08:00")
