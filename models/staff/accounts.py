"""Staff accounts: creating them and checking passwords (argon2id hashes only)."""
from __future__ import annotations

import re

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError

from ..db.tables import Site, StaffUser
from ..rules.tianhe import normalise_subdistrict

MIN_PASSWORD_LENGTH = 10
USERNAME = re.compile(r"^[a-z0-9][a-z0-9._-]{2,39}$")

_hasher = PasswordHasher()
# Verified against when the username is unknown, so that answer takes as long as a wrong password.
# Written out, not hashed at import (a third of a second of CPU in every process, each server
# worker and each run.py command): PasswordHasher().hash("not-a-real-password"), made with the
# hasher's parameters; tests/test_staff_auth.py checks they are still the hasher's.
DUMMY_HASH = ("$argon2id$v=19$m=65536,t=3,p=4$RZcn7OtuttwDVyCeFwszOA"
              "$NSBB146BZhvelPYduz6cQGqNcHNAeLn0f71lcQrvoeA")
_DUMMY_HASH = DUMMY_HASH


def use_hasher(hasher: PasswordHasher) -> None:
    """Hash and check staff passwords with `hasher` from now on, the unknown username's answer
    included. For the tests (tests/conftest.py: argon2's cheapest parameters, as Django's own
    tests swap in a fast hasher); a hash keeps its parameters, so a server checks either kind."""
    global _hasher, _DUMMY_HASH
    _hasher, _DUMMY_HASH = hasher, hasher.hash("not-a-real-password")


class StaffError(ValueError):
    """The account cannot be created as asked; the message says why (in English, for the CLI) and
    `reason` names it for a page to word: username, role, site_missing, site_unknown,
    subdistrict, clinic_area (a clinic account with neither a sub-district nor district_wide, or
    both), district_wide (asked for another role), password_short or username_taken."""

    def __init__(self, message: str, reason: str = ""):
        super().__init__(message)
        self.reason = reason


def hash_password(password: str) -> str:
    if len(password) < MIN_PASSWORD_LENGTH:
        raise StaffError(f"password must be at least {MIN_PASSWORD_LENGTH} characters", "password_short")
    return _hasher.hash(password)


async def create_user(
    *, role: str, username: str, password: str, site_code: str | None = None,
    subdistrict: str | None = None, district_wide: bool = False,
) -> StaffUser:
    """Create an active staff account; raise StaffError when a value is missing or wrong.

    A clinic account names its sub-district, or is made to serve the whole district on purpose
    (`district_wide`): never by leaving the sub-district out (issue 21)."""
    username = (username or "").strip().lower()
    if not USERNAME.match(username):
        raise StaffError("username must be 3-40 characters: letters, digits, '.', '_' or '-'", "username")
    if role not in StaffUser.ROLES:
        raise StaffError(f"role must be one of {', '.join(StaffUser.ROLES)}", "role")
    site = None
    if role == "site":
        if not site_code:
            raise StaffError("role 'site' needs --site CODE", "site_missing")
        site = await Site.get_or_none(code=site_code.strip())
        if site is None:
            raise StaffError(f"unknown site code {site_code.strip()}", "site_unknown")
    area = ""
    if role == "subdistrict":
        area = normalise_subdistrict(subdistrict or "") or ""
        if not area:
            raise StaffError("role 'subdistrict' needs --subdistrict, one of Tianhe's 21 sub-districts",
                             "subdistrict")
    if district_wide and role != "clinic":
        raise StaffError("--district-wide is for role 'clinic' only", "district_wide")
    if role == "clinic":
        typed = (subdistrict or "").strip()
        if typed and district_wide:
            raise StaffError("role 'clinic' takes --subdistrict NAME or --district-wide, not both",
                             "clinic_area")
        if not typed and not district_wide:
            raise StaffError("role 'clinic' needs --subdistrict NAME (one of Tianhe's 21 "
                             "sub-districts), or --district-wide to serve the whole district",
                             "clinic_area")
        if typed:
            area = normalise_subdistrict(typed) or ""
            if not area:
                raise StaffError("--subdistrict for role 'clinic' must be one of Tianhe's 21 "
                                 "sub-districts", "subdistrict")
    password_hash = hash_password(password)
    if await StaffUser.exists(username=username):
        raise StaffError(f"username {username} is already taken", "username_taken")
    return await StaffUser.create(
        username=username, password_hash=password_hash, role=role, site=site, subdistrict=area,
        district_wide=role == "clinic" and district_wide,
    )


def verify_password(user: StaffUser, password: str) -> bool:
    """Whether the password is the user's."""
    try:
        return _hasher.verify(user.password_hash, password)
    except (VerificationError, InvalidHashError):
        return False


async def authenticate(username: str, password: str) -> StaffUser | None:
    """Return the active account for these credentials, or None; upgrades an outdated hash."""
    user = await StaffUser.get_or_none(username=(username or "").strip().lower(), active=True)
    if user is None:
        verify_password(StaffUser(password_hash=_DUMMY_HASH), password)
        return None
    if not verify_password(user, password):
        return None
    if _hasher.check_needs_rehash(user.password_hash):
        user.password_hash = _hasher.hash(password)
        await user.save(update_fields=["password_hash"])
    return user


async def all_accounts() -> list[StaffUser]:
    """Every account (site loaded), by role then username, for the admin's list."""
    return await StaffUser.all().select_related("site").order_by("role", "username")


async def account_by_id(user_id: int | None) -> StaffUser | None:
    return await StaffUser.get_or_none(id=user_id).select_related("site") if user_id else None


async def site_codes() -> list[tuple[str, str]]:
    """(code, name) of every site, for the site a site account works at."""
    return await Site.all().order_by("code").values_list("code", "name")
