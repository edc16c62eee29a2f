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


RISK_LEVELS = {"medium": "中风险", "high": "高风险"}


def risk_cancellation_body(*, masked_name: str, code: str, subdistrict: str, level: str) -> str:
    """A booking the district cancelled because the person's sub-district is marked risky."""
    return (f"{SIGNATURE}{masked_name}，因您所在的{subdistrict}为{RISK_LEVELS.get(level, '中高风险')}地区，"
            f"按防控要求，您的第二剂新冠疫苗预约{code}已取消。解除后请点短信原链接或拨打12345重新预约。")


def risk_cancel_body(resident: Resident, booking: Booking, *, subdistrict: str, level: str) -> str:
    return risk_cancellation_body(masked_name=mask_name(resident.name), code=format_code(booking.code),
                                  subdistrict=subdistrict, level=level)


def reminder_body(masked_name: str, due_by: dt.date, link: str, *, today: dt.date | None = None) -> str:
    """The one reminder to someone invited days ago who has not booked: a new link (the old one
    no longer works); past the recommended date it says so instead of naming a day gone by."""
    if today and today > due_by:
        return f"{SIGNATURE}{masked_name}您好，您尚未预约新冠疫苗第二剂，已超过建议接种时间，仍可接种，请尽快预约：{link}"
    return f"{SIGNATURE}{masked_name}您好，您尚未预约新冠疫苗第二剂，请于{short_day(due_by)}前接种。新预约链接：{link}"


def reissue_body(masked_name: str, link: str) -> str:
    """A new personal link in place of the old ones (revoked or expired)."""
    return f"{SIGNATURE}{masked_name}您好，这是您新的第二剂预约链接，旧链接已失效。查看、预约、改约或取消：{link}"


def callcentre_confirmation_body(
    *, kind: str, masked_name: str, code: str, site_name: str, day: dt.date,
    start: str, end: str, companion: bool, link: str,
) -> str | None:
    """A booking made or moved by phone, with a personal link to see, move or cancel it.

    The link is what this SMS is for, so the rest gives way: the site name is shortened, then the
    companion note and the name go. None when even that does not fit (a very long BASE_URL).
    """
    verb = "已改约" if kind == "move" else "已预约"

    def build(name: str, site: str, with_companion: bool) -> str:
        return (
            f"{SIGNATURE}{name}{verb}第二剂新冠疫苗：{short_day(day)}"
            f"（周{WEEKDAYS[day.weekday()]}）{start}-{end}，{site}。预约码{code}。"
            + ("70岁以上请家属陪同。" if with_companion else "")
            + f"查看、改约或取消：{link}"
        )

    short_name = masked_name[:1] + "*" if len(masked_name) > 2 else masked_name
    for name, with_companion in ((masked_name, companion), (short_name, companion), (short_name, False)):
        room = MAX_CHARS - len(build(name, "", with_companion))
        if room >= len(site_name):
            return build(name, site_name, with_companion)
        if room >= 3:  # two characters of the name and an ellipsis still tell sites apart
            return build(name, site_name[: room - 1] + "…", with_companion)
    return None


def callcentre_booking_body(kind: str, resident: Resident, booking: Booking, slot: Slot, link: str) -> str:
    """The SMS for a booking made or moved by the call centre: with a personal link when it fits."""
    body = callcentre_confirmation_body(
        kind=kind, masked_name=mask_name(resident.name), code=format_code(booking.code),
        site_name=slot.site.name, day=slot.day, start=slot.start, end=slot.end,
        companion=needs_companion(resident.birth_date, slot.day), link=link,
    )
    return body or booking_body(kind, resident, booking, slot)


def closure_move_body(resident: Resident, booking: Booking, slot: Slot) -> str:
    """A booking the district moved off a closed window into `slot` (its site loaded). A long site
    name is shortened to fit, then a very long name to its first character."""
    day, companion = slot.day, needs_companion(resident.birth_date, slot.day)

    def build(name: str, site: str) -> str:
        return (
            f"{SIGNATURE}{name}，因原预约时段停诊，您的第二剂新冠疫苗已改约到"
            f"{short_day(day)}（周{WEEKDAYS[day.weekday()]}）{slot.start}-{slot.end}，{site}。"
            f"预约码{format_code(booking.code)}。请带身份证、戴口罩。"
            + ("70岁以上请家属陪同。" if companion else "")
            + "有疑问请拨12345。"
        )

    site = slot.site.name
    for name in (mask_name(resident.name), resident.name.strip()[:1] + "*"):
        room = MAX_CHARS - len(build(name, ""))
        if room >= len(site):
            return build(name, site)
        if room >= 3:
            return build(name, site[: room - 1] + "…")
    return build(name, site[:2] + "…")


def closure_cancellation_body(*, masked_name: str, day: dt.date, link: str) -> str:
    return (f"{SIGNATURE}{masked_name}，因接种点停诊，您{short_day(day)}的第二剂新冠疫苗预约已取消。"
            f"请重新预约：{link}")


def closure_cancel_body(resident: Resident, day: dt.date, link: str) -> str:
    """A booking on a closed window the district cancelled: a new personal link to book again.
    A name too long to fit is shortened to its first character (as invitations do)."""
    body = closure_cancellation_body(masked_name=mask_name(resident.name), day=day, link=link)
    if len(body) > MAX_CHARS:
        body = closure_cancellation_body(masked_name=resident.name.strip()[:1] + "*", day=day, link=link)
    return body
