"""Staff sign-in and sign-out; /staff sends a signed-in person to their console.

Guessing a password is throttled without ever locking the account's owner out: each attempt is
counted before the password is checked (Argon2 is paid only within the limits; a right password
gives its count back), per username and address (5 in 15 minutes), per username from every
address (10 in 15 minutes), and per address (30 in 15 minutes; IPv6 by /64). A browser where
the person signed in before carries a signed device cookie; its attempts are counted for that
device alone, so an attacker elsewhere, or behind the same address, cannot keep the real
person out. Refusals are audited up to a cap (web/limits.py: audit_quota), then only counted.
"""
from __future__ import annotations

import secrets

from itsdangerous import BadSignature, URLSafeSerializer
from starlette.requests import Request

from models.staff import audit
from models.staff.sessions import LIFETIME, sign_in, sign_out
from ..http import client_address, district, parse_text, see_other, url_for
from ..limits import address_key
from ..staff_auth import STAFF_COOKIE, current_staff, home_of
from ..templating import render
from .public import safe_next

DEVICE_COOKIE = "staff_device"
DEVICE_DAYS = 365


def _devices(request: Request) -> URLSafeSerializer:
    # SECRET_KEY signs; a device cookie signed with SECRET_KEY_OLD is still known (key rotation).
    return URLSafeSerializer(request.app.state.settings.signing_keys, salt="staff-device")


def _known_device(request: Request, username: str) -> str | None:
    """The id of this browser if the same username signed in on it before, else None."""
    try:
        data = _devices(request).loads(request.cookies.get(DEVICE_COOKIE, ""))
    except BadSignature:
        return None
    if isinstance(data, dict) and data.get("u") == username and isinstance(data.get("d"), str):
        return data["d"]
    return None


async def staff_home(request: Request):
    """GET /staff: the sign-in page, or the signed-in person's console."""
    user = await current_staff(request)
    next_page = parse_text(request.query_params.get("next"), 200)
    if user is not None:
        return see_other(safe_next(next_page, home_of(request, user)))
    return render(request, "pages/staff/login.html", {"next": next_page})


async def staff_login(request: Request):
    """POST /staff/login: a good password opens a new session (a new id each time)."""
    form = await request.form()
    username = parse_text(form.get("username"), 40).lower()
    address = client_address(request)
    context = {"next": parse_text(form.get("next"), 200), "username": username}
    limits = request.app.state.limits
    device = _known_device(request, username)
    # Which counters this attempt is judged by: the device's own, or this username here, this
    # username from everywhere and everything from this address. Counted before the check.
    group = address_key(address)
    counters = [("login_guess", f"device:{device}")] if device else [
        ("login_guess", f"{username}|{group}"), ("login_account", username),
        ("staff_login", group)]
    hits = await limits.hit_all(counters)
    if not all(hits):
        wait = max(hit.retry_after for hit in hits if not hit)
        quota = await limits.audit_quota("login_throttled", address)
        if quota:
            detail = "device" if device else ""
            if quota == "last":
                detail = f"{detail} (cap reached: more from this address are only counted for now)"
            await audit.record(action="login_throttled", username=username, address=address,
                               detail=detail.strip())
        return render(request, "pages/staff/login.html",
                      {**context, "error": "throttled", "wait_minutes": -(-wait // 60)},
                      status=429, headers={"Retry-After": str(wait)})
    result = await sign_in(username, parse_text(form.get("password"), 200), address,
                           now=district(request).clock.now())
    if result.user is None:  # the wrong password stays counted
        await audit.record(action="login_failed", username=username, address=address)
        return render(request, "pages/staff/login.html", {**context, "error": "wrong"}, status=422)
    await limits.give_back(*hits)  # the owner: an office of staff signing in is not a guesser
    await audit.record(action="login", user=result.user, address=address)
    response = see_other(safe_next(context["next"], home_of(request, result.user)))
    settings = request.app.state.settings
    response.set_cookie(STAFF_COOKIE, result.token, max_age=int(LIFETIME.total_seconds()),
                        httponly=True, samesite="strict", secure=settings.https)
    token = _devices(request).dumps({"u": username, "d": device or secrets.token_urlsafe(12)})
    response.set_cookie(DEVICE_COOKIE, token, max_age=DEVICE_DAYS * 24 * 3600, httponly=True,
                        samesite="strict", secure=settings.https, path="/staff")
    return response


async def staff_logout(request: Request):
    """POST /staff/logout: the session is revoked on the server, not only forgotten."""
    user = await current_staff(request)
    if user is not None:
        await audit.record(action="logout", user=user, address=client_address(request))
    await sign_out(request.cookies.get(STAFF_COOKIE))
    response = see_other(url_for(request, "staff"))
    response.delete_cookie(STAFF_COOKIE)
    return response
