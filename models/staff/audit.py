"""The audit trail of staff actions: who, when, what, which resident, from which address."""
from __future__ import annotations

import datetime as dt

from ..clock import TZ
from ..db.tables import AuditEntry, Resident, StaffUser
from .vocabulary import Words

PAGE = 100


async def record(*, action: str, address: str, user: StaffUser | None = None, username: str = "",
                 resident: Resident | int | None = None, detail: str = "") -> AuditEntry:
    """Append one entry. `detail` must never hold a full ID or phone number."""
    resident_id = resident.id if isinstance(resident, Resident) else resident
    return await AuditEntry.create(
        user=user, username=(user.username if user else username)[:40],
        role=user.role if user else "", action=action, resident_id=resident_id,
        detail=detail[:300], address=address[:45],
    )


async def entries(*, username: str = "", action: str = "", resident_id: int | None = None,
                  day: dt.date | None = None, before_id: int | None = None) -> list[AuditEntry]:
    """Newest first, filtered, a page at a time (pass the last id seen as before_id)."""
    query = AuditEntry.all()
    if username:
        query = query.filter(username=username.strip().lower())
    if action:
        query = query.filter(action=action)
    if resident_id:
        query = query.filter(resident_id=resident_id)
    if day:
        start = dt.datetime.combine(day, dt.time(), tzinfo=TZ)
        query = query.filter(at__gte=start, at__lt=start + dt.timedelta(days=1))
    if before_id:
        query = query.filter(id__lt=before_id)
    return await query.order_by("-id").limit(PAGE).select_related("resident")


async def actions() -> list[str]:
    return sorted(set(await AuditEntry.all().distinct().values_list("action", flat=True)))


def named_actions(codes: list[str], words: Words) -> list[tuple[str, str]]:
    """The filter's choices: (code, name in words), by name."""
    return sorted(((code, words.action(code)) for code in codes), key=lambda pair: (pair[1], pair[0]))
