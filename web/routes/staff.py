"""Staff sign-in and sign-out; /staff sends a signed-in person to their console."""
from __future__ import annotations

from starlette.requests import Request

from models.staff import audit
from models.staff.sessions import LIFETIME, sign_in, sign_out
from ..http import client_address, district, see_other, url_for
from ..staff_auth import STAFF_COOKIE, current_staff, home_of
from ..templating import render
from .public import safe_next


async def staff_home(request: Request):
    """GET /staff: the sign-in page, or the signed-in person's console."""
    user = await current_staff(request)
    if user is not None:
        return see_other(safe_next(request.query_params.get("next"), home_of(request, user)))
    return render(request, "pages/staff/login.html", {"next": request.query_params.get("next", "")})


async def staff_login(request: Request):
    """POST /staff/login: a good password opens a new session (a new id each time)."""
    form = await request.form()
    username = str(form.get("username", "")).strip().lower()[:40]
    address = client_address(request)
    context = {"next": str(form.get("next", "")), "username": username}
    if not request.app.state.limits.hit("staff_login", address):
        return render(request, "pages/staff/login.html", {**context, "error": "throttled"}, status=429)
    result = await sign_in(username, str(form.get("password", ""))[:200], address,
                           now=district(request).clock.now())
    if result.user is None:
        await audit.record(action="login_failed", username=username, address=address,
                           detail="locked" if result.locked_until else "")
        error = "locked" if result.locked_until else "wrong"
        return render(request, "pages/staff/login.html",
                      {**context, "error": error, "locked_until": result.locked_until},
                      status=423 if result.locked_until else 422)
    await audit.record(action="login", user=result.user, address=address)
    response = see_other(safe_next(context["next"], home_of(request, result.user)))
    settings = request.app.state.settings
    response.set_cookie(STAFF_COOKIE, result.token, max_age=int(LIFETIME.total_seconds()),
                        httponly=True, samesite="strict", secure=settings.https)
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
