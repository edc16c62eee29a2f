"""What each SMS says: invitations, confirmations, moves and cancellations, within two SMS parts."""
from __future__ import annotations

import datetime as dt

from ..booking.codes import format_code
from ..db.tables import Booking, Resident, Slot
from ..people.pii import mask_name
from ..rules.eligibility import needs_companion

SIGNATURE = "【天河区卫健局】"
# A Chinese SMS part holds 70 characters, 67 once it is one part of a longer message.
# Two parts: 134 characters, signature and link included.
MAX_CHARS = 134
WEEKDAYS = "一二三四五六日"


def short_day(day: dt.date) -> str:
    return f"{day.month}月{day.day}日"


def invitation_body(masked_name: str, due_by: dt.date, link: str, *, today: dt.date | None = None) -> str:
    """The invitation; past the recommended date it says so instead of naming a day gone by."""
    if today and today > due_by:
        return f"{SIGNATURE}{masked_name}您好，您的新冠疫苗第二剂已超过建议接种时间，仍可接种，请尽快预约：{link}"
    return f"{SIGNATURE}{masked_name}您好，您可预约新冠疫苗第二剂，请于{short_day(due_by)}前接种。预约：{link}"


def confirmation_body(
    *, kind: str, masked_name: str, code: str, site_name: str, day: dt.date,
    start: str, end: str, companion: bool,
) -> str:
    """The SMS for a booking made ('book') or moved ('move'); a long site name is shortened to fit."""
    verb = "已改约" if kind == "move" else "已预约"

    def build(site: str) -> str:
        return (
            f"{SIGNATURE}{masked_name}{verb}第二剂新冠疫苗：{short_day(day)}"
            f"（周{WEEKDAYS[day.weekday()]}）{start}-{end}，{site}。预约码{code}。"
            "请带身份证、戴口罩，到场亮码测温。"
            + ("70岁以上请家属陪同。" if companion else "")
            + "改约或取消请点短信原链接。"
        )

    body = build(site_name)
    overflow = len(body) - MAX_CHARS
    if overflow > 0:
        body = build(site_name[: max(len(site_name) - overflow - 1, 2)] + "…")
    return body


def cancellation_body(*, masked_name: str, code: str) -> str:
    return f"{SIGNATURE}{masked_name}，您的第二剂新冠疫苗预约{code}已取消，名额已释放。如需接种请重新预约。"


def booking_body(kind: str, resident: Resident, booking: Booking, slot: Slot) -> str:
    """The SMS for a booking made ('book') or moved ('move') into `slot` (its site loaded)."""
    return confirmation_body(
        kind=kind, masked_name=mask_name(resident.name), code=format_code(booking.code),
        site_name=slot.site.name, day=slot.day, start=slot.start, end=slot.end,
        companion=needs_companion(resident.birth_date, slot.day),
    )


def cancel_body(resident: Resident, booking: Booking) -> str:
    return cancellation_body(masked_name=mask_name(resident.name), code=format_code(booking.code))
