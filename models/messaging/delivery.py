"""Delivering queued SMS through a backend, with retries; the console backend writes to the log."""
from __future__ import annotations

import datetime as dt
import logging

from ..db.tables import SmsMessage
from ..people.pii import Vault, mask_phone

log = logging.getLogger("booking.sms")

MAX_ATTEMPTS = 5


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
        log.info("SMS to %s: %s", mask_phone(phone), redact(body))


BACKENDS = {"console": ConsoleBackend}


def get_backend(name: str):
    try:
        return BACKENDS[name]()
    except KeyError:
        raise ValueError(f"unknown SMS_BACKEND {name!r}; known: {', '.join(BACKENDS)}") from None


async def send_queued(vault: Vault, backend, *, now: dt.datetime, limit: int = 500) -> tuple[int, int]:
    """Deliver queued messages; a failure stays queued for a retry until MAX_ATTEMPTS."""
    sent = failed = 0
    for msg in await SmsMessage.filter(status=SmsMessage.QUEUED).order_by("id").limit(limit):
        try:
            await backend.send(vault.decrypt(msg.phone_cipher), vault.decrypt(msg.body_cipher))
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
        msg.sent_at = now
        await msg.save(update_fields=["attempts", "status", "sent_at"])
        sent += 1
    return sent, failed
