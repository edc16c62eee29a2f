"""The SMS outbox: putting a message in it, and listing it as operators see it."""
from __future__ import annotations

import datetime as dt
import json
from typing import AsyncIterator

from ..db import bulk
from ..db.tables import Resident, SmsMessage
from ..people.pii import Vault, mask_phone
from .sms import Sms

COLUMNS = ("id", "phone", "status", "body")
PAGE = 1000


async def queue(vault: Vault, resident: Resident | None, sms: Sms, *, kind: str | None = None,
                phone: str | None = None, dedupe_key: str | None = None,
                expires_at: dt.datetime | None = None, using_db=None) -> SmsMessage | None:
    """Put a message in the outbox, in the caller's transaction (`using_db`) when given, so a
    rollback takes the message with it; delivery comes later (delivery.py).

    `phone` (normalised, 11 digits) when there is no resident, or for another number than theirs.
    `dedupe_key`: a message with the same key is queued once, whatever runs twice (None returned).
    `expires_at`: worthless from then on (a log-in code): the sender drops it as `expired` then.
    """
    if dedupe_key is not None and await SmsMessage.filter(dedupe_key=dedupe_key).using_db(using_db).exists():
        return None
    return await SmsMessage.create(resident=resident, **message_values(vault, resident, sms, kind=kind,
                                                                      phone=phone, dedupe_key=dedupe_key),
                                   expires_at=expires_at, using_db=using_db)


def message_values(vault: Vault, resident: Resident | None, sms: Sms, *, kind: str | None = None,
                   phone: str | None = None, dedupe_key: str | None = None) -> dict:
    """The outbox row of a message (but its resident), encrypted: what queue() writes, and what a
    batch hands to queue_many() (worked out before its transaction, which then only writes)."""
    if phone is None:
        if resident is None:
            raise ValueError("a message needs a resident or a phone number")
        phone_cipher, phone_masked, phone_hash = resident.phone_cipher, resident.phone_masked, resident.phone_hash
    else:
        phone_cipher, phone_masked, phone_hash = vault.encrypt(phone), mask_phone(phone), vault.keyed_hash(phone)
    return dict(
        kind=kind or sms.template,
        template=sms.template,
        lang=sms.lang,
        priority=sms.priority,
        params_cipher=vault.encrypt(json.dumps(sms.params, ensure_ascii=False)),
        phone_cipher=phone_cipher,
        phone_masked=phone_masked,
        phone_hash=phone_hash,
        body_cipher=vault.encrypt(sms.body),
        dedupe_key=dedupe_key,
    )


async def queue_many(messages: list[tuple[int | None, dict]], *, using_db) -> int:
    """Put many messages in the outbox with one INSERT, in the caller's transaction (as queue()
    does one): (resident id, message_values(…)) each, without dedupe keys. How many."""
    rows = []
    for resident_id, values in messages:
        if values.get("dedupe_key") is not None:
            raise ValueError("queue_many() does not check dedupe keys: use queue()")
        rows.append({**values, "resident_id": resident_id})
    return await bulk.Rows(SmsMessage, using_db).insert(rows)


async def outbox_rows(vault: Vault, status: str | None = None) -> AsyncIterator[tuple[int, str, str, str]]:
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
            yield msg.id, msg.phone_masked, msg.status, vault.decrypt(msg.body_cipher)
        if len(page) < PAGE:
            return
        last_id = page[-1].id


async def failed_messages(limit: int = 100) -> list[SmsMessage]:
    """The most recent messages failed for good, for the admin to read the reason and resend."""
    return await SmsMessage.filter(status=SmsMessage.FAILED).order_by("-id").limit(limit)
