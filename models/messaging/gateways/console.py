"""The console backend (`make run`, tests): each message goes to the log and counts as sent."""
from __future__ import annotations

import logging

from ...people.pii import mask_phone
from . import Outgoing, Pending, Receipt

log = logging.getLogger("booking.sms")


MARKERS = ("/b/", "/o/")  # a personal link, a waiting-list offer link


def redact(body: str) -> str:
    """Hide a link token in a message body before it is logged."""
    for marker in MARKERS:
        at = body.find(marker)
        if at >= 0:
            body = body[: at + len(marker)] + "…"
    return body


class ConsoleBackend:
    """Writes each message to the log (phone masked, link token hidden); no gateway id, no
    delivery reports: the log is as far as it goes."""

    async def send(self, msg: Outgoing) -> str:
        log.info("SMS to %s [%s]: %s", mask_phone(msg.phone), msg.template_key, redact(msg.body))
        return ""

    async def receipts(self, pending: list[Pending]) -> list[Receipt]:
        return []
