"""The SMS outbox: putting a message in it, and listing it as operators see it."""
from __future__ import annotations

from typing import AsyncIterator

from ..db.tables import Resident, SmsMessage
from ..people.pii import Vault

COLUMNS = ("id", "phone", "status", "body")
PAGE = 1000


async def queue(vault: Vault, resident: Resident, kind: str, body: str, *,
                using_db=None) -> SmsMessage:
    """Put a message in the outbox (in the caller's transaction, if given); delivery comes later."""
    return await SmsMessage.create(
        resident=resident,
        kind=kind,
        phone_cipher=resident.phone_cipher,
        phone_masked=resident.phone_masked,
        body_cipher=vault.encrypt(body),
        using_db=using_db,
    )


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
