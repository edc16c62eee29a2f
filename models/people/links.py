"""Personal booking links: issuing, resolving, and the ID-number check with its lock-out."""
from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

from ..clock import as_utc
from ..db import counters, fast, reads
from ..db.tables import Link, Resident
from .. import metrics
from ..tokens import new_link_token, token_hash
from . import pii

LINK_PATH = "/b/"


async def issue_link(resident: Resident, *, now: dt.datetime, days_valid: int = 60,
                     using_db=None) -> str:
    """Create a personal link for the resident and return its token (shown once, never stored)."""
    token, values = new_link(now=now, days_valid=days_valid)
    await Link.create(resident=resident, **values, using_db=using_db)
    return token


def new_link(*, now: dt.datetime, days_valid: int = 60) -> tuple[str, dict]:
    """A new link's token (shown once, never stored) and its row but the resident, for a batch
    that writes many links at once (models/db/bulk.py)."""
    token = new_link_token()
    return token, dict(token_hash=token_hash(token), expires_at=as_utc(now) + dt.timedelta(days=days_valid))


async def revoke_links(resident_id: int, *, using_db=None) -> int:
    """Revoke every link of the resident: from now on each is refused like an unknown one."""
    return await Link.filter(resident_id=resident_id, revoked=False).using_db(using_db).update(revoked=True)


async def reissue_link(resident: Resident, *, now: dt.datetime, days_valid: int = 60,
                       using_db=None) -> str:
    """Revoke the resident's links and issue a new one; its token (shown once, never stored)."""
    await revoke_links(resident.id, using_db=using_db)
    return await issue_link(resident, now=now, days_valid=days_valid, using_db=using_db)


def link_url(base_url: str, token: str) -> str:
    return f"{base_url.rstrip('/')}{LINK_PATH}{token}"


async def resolve_token(token: str, now: dt.datetime) -> Link | None:
    """Return the live link for a token; unknown, expired and revoked all give None."""
    if not token or len(token) > 64:
        return None
    link = await fast.one(Link, token_hash=token_hash(token))
    return link if link and is_live(link, now) else None


async def live_link(link_id: int | None, now: dt.datetime) -> Link | None:
    """The link by row id, with its resident and their first-dose site, if it is still live.

    Asked on every resident page: one query written once (models/db/reads.py)."""
    link = await reads.link_with_resident(link_id) if link_id else None
    return link if link is not None and is_live(link, now) else None


def is_live(link: Link, now: dt.datetime) -> bool:
    return not link.revoked and link.expires_at > as_utc(now)


def locked_until(link: Link, now: dt.datetime) -> dt.datetime | None:
    if link.locked_until and link.locked_until > as_utc(now):
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
    vault: pii.Vault, link: Link, id_text: str, *, now: dt.datetime, max_failures: int = 5,
    lock_minutes: int = 30,
) -> VerifyResult:
    """Check a typed ID number against the link's resident; repeated mismatches lock the link.

    Each well-formed number takes one of the link's `max_failures` tries BEFORE it is compared
    (one UPDATE … WHERE failures < max: atomic on SQLite and PostgreSQL), so numbers sent all at
    once get no more tries than numbers sent one by one. A right number gives the tries back
    (failures to 0); the try that uses up the last one, if wrong, locks the link for
    `lock_minutes`. Only whoever holds this link can lock it: /find and the phone entry count
    their askers elsewhere (models/channels/entry.py)."""
    until = locked_until(link, now)
    if until:
        return VerifyResult(False, "locked", locked_until=until)
    try:
        number = pii.validate_id(id_text)
    except pii.InvalidIdNumber as exc:
        # A mistyped number is not a guess at someone else's: it does not count towards the lock.
        return VerifyResult(False, "invalid", tries_left=max(max_failures - link.failures, 0),
                            invalid_reason=exc.reason)
    moment = as_utc(now)
    taken = await counters.take_link_try(link.id, moment, max_failures)
    if not taken:  # locked, or its last try is being used by another request right now
        await link.refresh_from_db(fields=["failures", "locked_until"])
        until = locked_until(link, now) or moment + dt.timedelta(minutes=lock_minutes)
        return VerifyResult(False, "locked", locked_until=until)
    resident = _loaded_resident(link) or await fast.one(Resident, id=link.resident_id)
    if vault.matches(number, resident.id_hash):  # the old key's hash too, until rotate-keys
        await counters.give_link_tries_back(link.id)
        return VerifyResult(True)
    await link.refresh_from_db(fields=["failures"])
    if link.failures >= max_failures:
        until = moment + dt.timedelta(minutes=lock_minutes)
        await Link.filter(id=link.id).update(failures=0, locked_until=until)
        metrics.locked_out("link")
        return VerifyResult(False, "locked", locked_until=until)
    return VerifyResult(False, "mismatch", tries_left=max_failures - link.failures)


def _loaded_resident(link: Link) -> Resident | None:
    """The resident the link came with (live_link loads it with the link, moments ago), if any."""
    resident = link.__dict__.get("_resident")
    return resident if isinstance(resident, Resident) and resident.id == link.resident_id else None
