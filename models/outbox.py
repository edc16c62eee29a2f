"""The SMS outbox as operators see it: one row per message, phone masked, body readable."""
from __future__ import annotations

from typing import AsyncIterator

from . import pii
from .tables import SmsMessage

COLUMNS = ("id", "phone", "status", "body")
PAGE = 1000


async def outbox_rows(status: str | None = None) -> AsyncIterator[tuple[int, str, str, str]]:
    """Yield (id, masked phone, status, body) oldest first, a page at a time.

    The phone is masked: the operator reading the outbox needs to tell messages apart and read
    what was sent, not to dial the resident (personal data, PIPL). The body is shown whole because
    it is what operators check before and after a batch; it may hold a live link token.
    """
    last_id = 0
    while True:
        query = SmsMessage.filter(id__gt=last_id)
        if status:
            query = query.filter(status=status)
        page = await query.order_by("id").limit(PAGE)
        for msg in page:
            yield msg.id, msg.phone_masked, msg.status, pii.decrypt(msg.body_cipher)
        if len(page) < PAGE:
            return
        last_id = page[-1].id
