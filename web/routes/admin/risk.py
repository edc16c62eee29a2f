"""Risk areas: mark a sub-district medium or high risk from a day, lift it, its people's bookings.

While marked, its residents cannot book (the booking service refuses them: RESTRICTED) and
check-in refuses them. The admin sees the active bookings of the people living there and may
cancel them, all or one, each with an SMS saying why. Every action is audited with counts.
"""
from __future__ import annotations

from starlette.requests import Request
from starlette.routing import Route

from models.operations import risk
from models.people.pii import mask_name
from ...http import district, parse_day, parse_id, parse_text, see_other, url_for
from ...staff_auth import ADMIN, current_staff, record, staff_only
from ...templating import render

FLASH = "risk_flash"  # what the page after a 303 says was done


def _since(area) -> str:
    return area.since.isoformat() if area.since else "now"


async def _risk_page(request: Request, *, values: dict | None = None, error: str = "",
                     status: int = 200):
    today = district(request).clock.today()
    areas = await risk.marked(today)
    return render(request, "pages/admin/risk.html", {
        "staff": await current_staff(request), "areas": areas, "today": today,
        "choices": risk.SUBDISTRICTS, "marked": {a.subdistrict: a.level for a in areas},
        "values": values or {"since": today.isoformat(), "level": "medium"},
        "error": error, "flash": request.session.pop(FLASH, None) if status == 200 else None,
    }, status=status)


async def _missing(request: Request):
    return render(request, "pages/admin/risk_missing.html",
                  {"staff": await current_staff(request)}, status=404)


@staff_only(*ADMIN)
async def admin_risk(request: Request):
    """GET /admin/risk: the marked sub-districts (level, since, people, bookings); mark another."""
    return await _risk_page(request)


@staff_only(*ADMIN)
async def admin_risk_mark(request: Request):
    """POST /admin/risk/mark: a sub-district, medium or high, from a day (default today)."""
    form = await request.form()
    typed_since = parse_text(form.get("since"), 10)
    values = {"subdistrict": parse_text(form.get("subdistrict"), 50),
              "level": parse_text(form.get("level"), 10), "since": typed_since}
    since = parse_day(typed_since)
    if typed_since and since is None:  # not a day: the date field starts empty again
        return await _risk_page(request, values={**values, "since": ""}, error="since_format",
                                status=422)
    try:
        done = await risk.mark(values["subdistrict"], values["level"], since,
                               today=district(request).clock.today())
    except risk.RiskError as exc:
        return await _risk_page(request, values=values, error=exc.reason, status=422)
    area = done.area
    await record(request, "mark_risk_area", detail=f"{area.subdistrict} {area.level} from "
                 f"{_since(area)} ({'new' if done.created else 'changed'})")
    request.session[FLASH] = {"done": "marked" if done.created else "changed", "area": area.subdistrict}
    return see_other(url_for(request, "admin_risk"))


@staff_only(*ADMIN)
async def admin_risk_lift(request: Request):
    """POST /admin/risk/lift: lift the marking; its residents may book again at once."""
    form = await request.form()
    area = await risk.lift(parse_id(form.get("a")))
    if area is None:
        return await _missing(request)
    await record(request, "lift_risk_area", detail=f"{area.subdistrict} {area.level} from {_since(area)} lifted")
    request.session[FLASH] = {"done": "lifted", "area": area.subdistrict}
    return see_other(url_for(request, "admin_risk"))


@staff_only(*ADMIN)
async def admin_risk_bookings(request: Request):
    """GET /admin/risk/bookings?a=<area id>: the active bookings of the people living there."""
    area = await risk.area_by_id(parse_id(request.query_params.get("a")))
    if area is None:
        return await _missing(request)
    return await _bookings_page(request, area)


async def _bookings_page(request: Request, area, *, changed: bool = False, status: int = 200):
    bookings = await risk.bookings_in(area.subdistrict)
    return render(request, "pages/admin/risk_bookings.html", {
        "staff": await current_staff(request), "area": area,
        "in_force": risk.in_force(area, district(request).clock.today()),
        "bookings": bookings, "shown": risk.shown_digest(b.id for b in bookings),
        "mask_name": mask_name, "changed": changed,
        "flash": None if changed else request.session.pop(FLASH, None),
    }, status=status)


@staff_only(*ADMIN)
async def admin_risk_cancel(request: Request):
    """POST /admin/risk/cancel: cancel the area's bookings (all, or the one in `b`), one SMS each."""
    form = await request.form()
    one = parse_id(form.get("b"))
    done = await risk.cancel_bookings(district(request), parse_id(form.get("a")), one,
                                      shown=parse_text(form.get("shown"), 64))
    if done is None:
        return await _missing(request)
    if done.changed:  # bookings made, moved or cancelled since the page was drawn: look again
        return await _bookings_page(request, done.area, changed=True, status=409)
    await record(request, "cancel_risk_bookings",
                 detail=f"{done.cancelled} cancelled of {done.asked} {'chosen' if one else 'active'}, "
                        f"{done.cancelled} SMS queued area={done.area.subdistrict}")
    request.session[FLASH] = {"done": "cancelled", "count": done.cancelled}
    return see_other(url_for(request, "admin_risk_bookings", a=done.area.id))


ROUTES = [
    Route("/admin/risk", admin_risk, name="admin_risk"),
    Route("/admin/risk/mark", admin_risk_mark, methods=["POST"], name="admin_risk_mark"),
    Route("/admin/risk/lift", admin_risk_lift, methods=["POST"], name="admin_risk_lift"),
    Route("/admin/risk/bookings", admin_risk_bookings, name="admin_risk_bookings"),
    Route("/admin/risk/cancel", admin_risk_cancel, methods=["POST"], name="admin_risk_cancel"),
]
