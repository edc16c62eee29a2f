"""Personal booking links: issuing, resolving, and the ID-number check with its lock-out."""
from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

from tortoise.expressions import F

from . import pii
from .clock import utc_now
from .codes import new_link_token, token_hash
from .tables import Link, Resident

LINK_PATH = "/b/"


async def issue_link(resident: Resident, *, days_valid: int = 60, using_db=None) -> str:
    """Create a personal link for the resident and return its token (shown once, never stored)."""
    token = new_link_token()
    await Link.create(
        token_hash=token_hash(token),
        resident=resident,
        expires_at=utc_now() + dt.timedelta(days=days_valid),
        using_db=using_db,
    )
    return token


def link_url(base_url: str, token: str) -> str:
    return f"{base_url.rstrip('/')}{LINK_PATH}{token}"


async def resolve_token(token: str) -> Link | None:
    """Return the live link for a token; unknown, expired and revoked all give None."""
    if not token or len(token) > 64:
        return None
    link = await Link.get_or_none(token_hash=token_hash(token))
    return link if link and is_live(link) else None


def is_live(link: Link) -> bool:
    return not link.revoked and link.expires_at > utc_now()


def locked_until(link: Link) -> dt.datetime | None:
    if link.locked_until and link.locked_until > utc_now():
        return link.locked_until
    return None


@dataclass(frozen=True)
class VerifyResult:
    ok: bool
    reason: str = ""  # invalid (not an ID number), mismatch, locked
    tries_left: int = 0
    locked_until: dt.datetime | None = None
    invalid_reason: str = ""


async def verify_identity(
    link: Link, id_text: str, *, max_failures: int = 5, lock_minutes: int = 30
) -> VerifyResult:
    """Check a typed ID number against the link's resident; repeated mismatches lock the link."""
    until = locked_until(link)
    if until:
        return VerifyResult(False, "locked", locked_until=until)
    try:
        number = pii.validate_id(id_text)
    except pii.InvalidIdNumber as exc:
        # A mistyped number is not a guess at someone else's: it does not count towards the lock.
        return VerifyResult(False, "invalid", tries_left=max_failures - link.failures,
                            invalid_reason=exc.reason)
    resident = await Resident.get(id=link.resident_id)
    if pii.keyed_hash(number) == resident.id_hash:
        if link.failures:
            await Link.filter(id=link.id).update(failures=0, locked_until=None)
        return VerifyResult(True)
    await Link.filter(id=link.id).update(failures=F("failures") + 1)
    await link.refresh_from_db(fields=["failures"])
    if link.failures >= max_failures:
        until = utc_now() + dt.timedelta(minutes=lock_minutes)
        await Link.filter(id=link.id).update(failures=0, locked_until=until)
        return VerifyResult(False, "locked", locked_until=until)
    return VerifyResult(False, "mismatch", tries_left=max_failures - link.failures)
