"""Staff access: the session cookie, role checks on every staff page, and the audit helper."""
from __future__ import annotations

import functools

from starlette.requests import Request

from models.staff import audit
from models.staff.sessions import session_user
from .http import client_address, district, see_other, url_for
from .templating import render

STAFF_COOKIE = "staff_session"

# Which roles may use which console.
# product.md: any authorised staff may book by phone; clinic: family doctors, health centres
CALLS = ("callcentre", "subdistrict", "admin", "clinic")
SITE = ("site", "admin")
ADMIN = ("admin",)
GROUP = ("subdistrict", "admin")  # group booking for residents' committees (/group)
HOME = {"callcentre": "calls", "subdistrict": "group", "site": "site_home", "admin": "admin",
        "clinic": "calls"}


def home_of(request: Request, user) -> str:
    """The console a signed-in person starts at."""
    return url_for(request, HOME[user.role])


async def current_staff(request: Request):
    """The signed-in staff account for this request, or None (looked up once per request)."""
    if "staff" not in request.state._state:
        found = await session_user(request.cookies.get(STAFF_COOKIE), district(request).clock.now())
        request.state.staff = found[1] if found else None
    return request.state.staff


def staff_only(*roles: str):
    """Guard a handler: not signed in -> the sign-in page; signed in with another role -> 403."""

    def decorate(handler):
        @functools.wraps(handler)
        async def guarded(request: Request):
            user = await current_staff(request)
            if user is None:
                if request.method != "GET":
                    return see_other(url_for(request, "staff"))
                return see_other(url_for(request, "staff", next=request.url.path))
            if user.role not in roles:
                await audit.record(action="forbidden", user=user, address=client_address(request),
                                   detail=f"{request.method} {request.url.path}")
                return render(request, "pages/staff/forbidden.html", {"staff": user}, status=403)
            return await handler(request)

        return guarded

    return decorate


async def record(request: Request, action: str, *, resident=None, detail: str = "") -> None:
    """Audit an action of the signed-in staff member."""
    await audit.record(action=action, user=await current_staff(request), resident=resident,
                       detail=detail, address=client_address(request))
