"""SMS: composing the messages, queueing them in the outbox, delivering them through a backend."""
from __future__ import annotations

import datetime as dt
import logging

from . import pii
from .clock import utc_now
from .tables import Resident, SmsMessage

log = logging.getLogger("booking.sms")

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


async def queue(resident: Resident, kind: str, body: str, *, using_db=None) -> SmsMessage:
    """Put a message in the outbox; it is delivered later by send_queued()."""
    return await SmsMessage.create(
        resident=resident,
        kind=kind,
        phone_cipher=resident.phone_cipher,
        phone_masked=resident.phone_masked,
        body_cipher=pii.encrypt(body),
        using_db=using_db,
    )


def redact(body: str) -> str:
    """Hide a link token in a message body before it is logged."""
    marker = "/b/"
    at = body.find(marker)
    if at < 0:
        return body
    return body[: at + len(marker)] + "…"


class ConsoleBackend:
    """Writes each message to the log (phone masked, link token hidden) and calls it sent."""

    async def send(self, phone: str, body: str) -> None:
        log.info("SMS to %s: %s", pii.mask_phone(phone), redact(body))


BACKENDS = {"console": ConsoleBackend}
MAX_ATTEMPTS = 5


def get_backend(name: str):
    try:
        return BACKENDS[name]()
    except KeyError:
        raise ValueError(f"unknown SMS_BACKEND {name!r}; known: {', '.join(BACKENDS)}") from None


async def send_queued(backend, *, limit: int = 500) -> tuple[int, int]:
    """Deliver queued messages; a failure stays queued for a retry until MAX_ATTEMPTS."""
    sent = failed = 0
    for msg in await SmsMessage.filter(status=SmsMessage.QUEUED).order_by("id").limit(limit):
        try:
            await backend.send(pii.decrypt(msg.phone_cipher), pii.decrypt(msg.body_cipher))
        except Exception as exc:  # a gateway error of any kind: keep the message, retry later
            msg.attempts += 1
            msg.last_error = str(exc)[:200]
            if msg.attempts >= MAX_ATTEMPTS:
                msg.status = SmsMessage.FAILED
                failed += 1
            await msg.save(update_fields=["attempts", "last_error", "status"])
            continue
        msg.attempts += 1
        msg.status = SmsMessage.SENT
        msg.sent_at = utc_now()
        await msg.save(update_fields=["attempts", "status", "sent_at"])
        sent += 1
    return sent, failed
