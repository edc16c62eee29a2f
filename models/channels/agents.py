"""The agents' console (/staff/calls): which channel a booking made there is recorded under.

A family doctor's or a community health centre's account (role `clinic`) says which of its two
ways each time, 电话/家庭医生 or 社区卫生服务中心窗口, nothing pre-chosen; every other account that may
book by phone (call centre, sub-district, admin) books as the call centre. Anything else posted is
refused (web/routes/callcentre.py asks again, 422, and stores nothing).
"""
from __future__ import annotations

from ..channel import Channel

CLINIC_CHANNELS = (Channel.FAMILY_DOCTOR, Channel.CLINIC_DESK)


def booking_channels(role: str) -> tuple[Channel, ...]:
    """The channels an account of this role may record a booking under (the first: its default,
    if alone)."""
    return CLINIC_CHANNELS if role == "clinic" else (Channel.CALLCENTRE,)


def posted_channel(role: str, posted: str) -> Channel | None:
    """The channel posted with a confirmation, if an account of this role may record bookings
    under it (an account with only one may leave it out); else None."""
    allowed = booking_channels(role)
    if not posted and len(allowed) == 1:
        return allowed[0]
    return Channel(posted) if posted in allowed else None
