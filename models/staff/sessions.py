"""Staff sign-in: password check off the event loop, server-side sessions.

There is no account lock-out: an attacker who knows a username could otherwise keep its owner
out for good. Guessing is throttled per address and per device in web/routes/staff.py.
"""
from __future__ import annotations

import asyncio
import datetime as dt
from dataclasses import dataclass

from tortoise.expressions import F
from tortoise.functions import Max

from ..clock import as_utc
from ..db.tables import StaffSession, StaffUser
from ..tokens import new_session_token, token_hash
from . import accounts
from .accounts import hash_password, verify_password

IDLE = dt.timedelta(minutes=30)  # signed out after this long without a request
LIFETIME = dt.timedelta(hours=12)  # and after a working day, however active
TOUCH_EVERY = dt.timedelta(seconds=60)  # how often last_seen is written


@dataclass(frozen=True)
class SignIn:
    user: StaffUser | None = None
    token: str = ""  # for the cookie; only its hash is stored


async def sign_in(username: str, password: str, address: str, *, now: dt.datetime) -> SignIn:
    """Check the password (Argon2, in a thread); a good one opens a new session."""
    username = (username or "").strip().lower()
    user = await StaffUser.get_or_none(username=username, active=True)
    if user is None:
        await asyncio.to_thread(verify_password, StaffUser(password_hash=accounts._DUMMY_HASH), password)
        return SignIn()
    now = as_utc(now)
    if not await asyncio.to_thread(verify_password, user, password):
        # Counted for the admin's information only: it never locks the account.
        await StaffUser.filter(id=user.id).update(failed_logins=F("failed_logins") + 1)
        return SignIn()
    updates = {"failed_logins": 0, "locked_until": None}
    if accounts._hasher.check_needs_rehash(user.password_hash):
        updates["password_hash"] = await asyncio.to_thread(accounts._hasher.hash, password)
    await StaffUser.filter(id=user.id).update(**updates)
    token = new_session_token()
    await StaffSession.create(token_hash=token_hash(token), user=user, last_seen=now,
                              expires_at=now + LIFETIME, address=address[:45])
    return SignIn(user=user, token=token)


async def session_user(token: str | None, now: dt.datetime) -> tuple[StaffSession, StaffUser] | None:
    """The live session and its active account for a cookie token, or None."""
    if not token or len(token) > 100:
        return None
    session = await StaffSession.get_or_none(token_hash=token_hash(token), revoked=False)
    now = as_utc(now)
    if session is None or session.expires_at <= now or session.last_seen + IDLE <= now:
        return None
    user = await StaffUser.get_or_none(id=session.user_id, active=True).select_related("site")
    if user is None:
        return None
    if now - session.last_seen > TOUCH_EVERY:
        await StaffSession.filter(id=session.id).update(last_seen=now)
    return session, user


async def sign_out(token: str | None) -> None:
    if token:
        await StaffSession.filter(token_hash=token_hash(token)).update(revoked=True)


async def disable_user(user_id: int) -> None:
    """Disable an account and end every session it has."""
    await StaffUser.filter(id=user_id).update(active=False)
    await StaffSession.filter(user_id=user_id).update(revoked=True)


async def enable_user(user_id: int) -> bool:
    """Let a disabled account sign in again (its old sessions stay ended); False if no such account."""
    return bool(await StaffUser.filter(id=user_id).update(active=True))


async def reset_password(user_id: int, password: str) -> bool:
    """Give the account a new password and end every session it has; False if no such account.

    Raise StaffError("password_short") for a password under 10 characters."""
    password_hash = await asyncio.to_thread(hash_password, password)
    changed = await StaffUser.filter(id=user_id).update(password_hash=password_hash, failed_logins=0)
    await StaffSession.filter(user_id=user_id).update(revoked=True)
    return bool(changed)


async def last_sign_ins() -> dict[int, dt.datetime]:
    """When each account last signed in (its newest session), by account id."""
    rows = await StaffSession.annotate(last=Max("created_at")).group_by("user_id").values_list(
        "user_id", "last")
    return {user_id: last for user_id, last in rows}
