"""The ways a booking comes in, as recorded on it (`Booking.channel`), in one place.

A `StrEnum`: each member is the very string stored in the database, shown in the audit
(`… via family_doctor`), counted by the metrics and the channel report, so nothing stored changes.
The channels themselves (the public entry, the hand-off, group lists, the agents' console) live
in models/channels/; this leaf only names them, so every layer may use the names.
"""
from __future__ import annotations

from enum import StrEnum


class Channel(StrEnum):
    """In the channel report's order: the resident's own ways in, the call centre, family doctors
    and community health centres, group lists, the city platform's hand-off; the demo's last."""

    SMS = "sms"  # the invitation's personal link
    PHONE = "phone"  # the public entry: a phone number and its SMS code
    CALLCENTRE = "callcentre"  # 12345: an agent in /staff/calls
    FAMILY_DOCTOR = "family_doctor"  # a clinic account, by phone or as a family doctor
    CLINIC_DESK = "clinic_desk"  # a clinic account, at a community health centre's desk
    GROUP = "group"  # a residents' committee's list, /group
    HANDOFF = "handoff"  # the city health platform (广州健康通)
    WAITLIST = "waitlist"  # a waiting-list offer's link, /o/… (models/booking/waitlist.py)
    DEMO = "demo"  # the demo data set (`run.py demo`)


# Channels a person may reach without a personal link of their own: their booking's SMS carries a
# new one.
LINKLESS = frozenset({Channel.CALLCENTRE, Channel.PHONE, Channel.GROUP, Channel.FAMILY_DOCTOR,
                      Channel.CLINIC_DESK, Channel.HANDOFF, Channel.WAITLIST})

# Every channel a resident or an agent books through: a row each in the channel report, even at 0.
REPORTED = tuple(c for c in Channel if c is not Channel.DEMO)
