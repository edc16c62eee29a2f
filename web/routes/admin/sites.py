"""Sites and capacity: create and edit sites, open or close them, the weekly template, per-window capacity."""
from __future__ import annotations

import datetime as dt

from starlette.requests import Request
from starlette.routing import Route

from models.operations import capacity, sites
from models.operations.capacity import CapacityError
from models.operations.sites import SiteInvalid
from ...http import district, parse_day, parse_id, parse_text, see_other, url_for
from ...staff_auth import ADMIN, current_staff, record, staff_only
from ...templating import render

WEEK = 7  # days the slots page shows unless asked otherwise


async def _page(request: Request, page: str, context: dict, *, status: int = 200):
    return render(request, f"pages/admin/{page}", {"staff": await current_staff(request), **context},
                  status=status)


async def _missing(request: Request):
    return await _page(request, "sites_missing.html", {}, status=404)


def _today(request: Request) -> dt.date:
    return district(request).clock.today()


def _count(value) -> int:
    return parse_id(value) or 0


# ---- the list, creating and editing a site, opening and closing it


@staff_only(*ADMIN)
async def admin_sites(request: Request):
    """GET /admin/sites: every site with its code, name, sub-district, open or closed, and links."""
    return await _page(request, "sites.html", {
        "rows": await sites.all_sites(_today(request)),
        "saved": parse_id(request.query_params.get("saved")),
    })


def _site_form(form) -> dict[str, str]:
    return {"code": parse_text(form.get("code"), 40), "name": parse_text(form.get("name"), 120),
            "subdistrict": parse_text(form.get("subdistrict"), 60),
            "address": parse_text(form.get("address"), 220), "phone": parse_text(form.get("phone"), 50)}


async def _form_page(request: Request, site, values: dict, errors: dict, *, status: int = 200):
    return await _page(request, "sites_form.html", {
        "site": site, "values": values, "errors": errors, "subdistricts": sites.subdistricts(),
        "upcoming": await sites.upcoming_bookings(site.id, _today(request)) if site else 0,
        "changed": parse_text(request.query_params.get("changed"), 10),
    }, status=status)


@staff_only(*ADMIN)
async def admin_site_new(request: Request):
    """GET: the empty form.  POST: create the site (open), then its weekly template."""
    if request.method == "GET":
        return await _form_page(request, None, {}, {})
    values = _site_form(await request.form())
    try:
        site = await sites.create_site(values)
    except SiteInvalid as exc:
        return await _form_page(request, None, values, exc.errors, status=422)
    await record(request, "site_create", detail=f"{site.code} {site.subdistrict}")
    return see_other(url_for(request, "admin_site_template", site=site.id, created=1))


@staff_only(*ADMIN)
async def admin_site_edit(request: Request):
    """GET ?site=: the site's form, and opening or closing it.  POST: save name, sub-district,
    address and phone (the code stays)."""
    source = await request.form() if request.method == "POST" else request.query_params
    site = await sites.site_by_id(parse_id(source.get("site")))
    if site is None:
        return await _missing(request)
    if request.method == "GET":
        return await _form_page(request, site, {}, {})
    values = _site_form(source)
    try:
        changed = await sites.edit_site(site, values)
    except SiteInvalid as exc:
        return await _form_page(request, site, values, exc.errors, status=422)
    if changed:
        await record(request, "site_edit", detail=f"{site.code}: {', '.join(changed)}")
    return see_other(url_for(request, "admin_sites", saved=site.id))


@staff_only(*ADMIN)
async def admin_site_open(request: Request):
    """POST site=, active=1|0: open the site for new bookings, or close it (bookings stay)."""
    form = await request.form()
    site = await sites.site_by_id(parse_id(form.get("site")))
    if site is None:
        return await _missing(request)
    active = parse_text(form.get("active"), 1) == "1"
    if await sites.set_open(site, active, district(request)):
        await record(request, "site_open" if active else "site_close", detail=site.code)
    return see_other(url_for(request, "admin_site_edit", site=site.id,
                             changed="open" if active else "closed"))


# ---- the weekly template


async def _template_page(request: Request, site, *, error: CapacityError | None = None,
                         values: dict | None = None, status: int = 200):
    q = request.query_params
    today = _today(request)
    return await _page(request, "sites_template.html", {
        "site": site, "windows": await capacity.template(site.id), "error": error,
        "values": {"from_day": today.isoformat(),
                   "to_day": (today + dt.timedelta(days=27)).isoformat(), **(values or {})},
        "created": q.get("created") == "1", "added": _count(q.get("added")),
        "removed": q.get("removed") == "1",
    }, status=status)


async def _form_site(request: Request):
    form = await request.form()
    return form, await sites.site_by_id(parse_id(form.get("site")))


@staff_only(*ADMIN)
async def admin_site_template(request: Request):
    """GET ?site=: the site's weekly template, a form to add a window, and applying it to dates."""
    site = await sites.site_by_id(parse_id(request.query_params.get("site")))
    if site is None:
        return await _missing(request)
    return await _template_page(request, site)


@staff_only(*ADMIN)
async def admin_site_template_add(request: Request):
    """POST site=, weekday= (0-6, all, workdays), start=, end=, capacity=: add a window."""
    form, site = await _form_site(request)
    if site is None:
        return await _missing(request)
    values = {name: parse_text(form.get(name), 10) for name in ("weekday", "start", "end", "capacity")}
    try:
        added = await capacity.add_window(site, values["weekday"], values["start"], values["end"],
                                          values["capacity"])
    except CapacityError as exc:
        return await _template_page(request, site, error=exc, values=values, status=422)
    w = added[0]
    await record(request, "template_add", detail=f"{site.code} weekday {values['weekday']} "
                                                  f"{w.start}-{w.end} x{w.capacity}")
    return see_other(url_for(request, "admin_site_template", site=site.id, added=len(added)))


@staff_only(*ADMIN)
async def admin_site_template_remove(request: Request):
    """POST site=, window=: remove one window of the template (opened slots stay)."""
    form, site = await _form_site(request)
    if site is None:
        return await _missing(request)
    removed = await capacity.remove_window(site.id, parse_id(form.get("window")))
    if removed:
        await record(request, "template_remove",
                     detail=f"{site.code} weekday {removed.weekday} {removed.start}-{removed.end}")
    return see_other(url_for(request, "admin_site_template", site=site.id, removed=1))


@staff_only(*ADMIN)
async def admin_site_template_apply(request: Request):
    """POST site=, from_day=, to_day=: open the template's windows on those days (never below the
    places taken); then the slots of those days, with what was done."""
    form, site = await _form_site(request)
    if site is None:
        return await _missing(request)
    from_day, to_day = parse_day(form.get("from_day")), parse_day(form.get("to_day"))
    try:
        result = await capacity.apply_template(site, from_day, to_day, today=_today(request),
                                               district=district(request))
    except CapacityError as exc:
        values = {"from_day": parse_text(form.get("from_day"), 10), "to_day": parse_text(form.get("to_day"), 10)}
        return await _template_page(request, site, error=exc, values=values, status=422)
    await record(request, "template_apply", detail=(
        f"{site.code} {from_day}..{to_day}: {result.created} created, {result.raised} raised, "
        f"{result.lowered} lowered, {result.unchanged} unchanged, {len(result.held)} kept taken places, "
        f"{len(result.conflicts)} overlapping"))
    shown_to = min(to_day, from_day + dt.timedelta(days=capacity.MAX_SHOWN_DAYS - 1))
    return see_other(url_for(request, "admin_site_slots", site=site.id, from_day=from_day.isoformat(),
                             to_day=shown_to.isoformat(), applied=1, created=result.created,
                             raised=result.raised, lowered=result.lowered, unchanged=result.unchanged,
                             kept=len(result.held), overlapping=len(result.conflicts)))


# ---- the slots of a date range, and per-window edits


def _range(request: Request, source) -> tuple[dt.date, dt.date, bool]:
    """The days to show: from (default today), to (default a week); at most a month (clipped)."""
    from_day = parse_day(source.get("from_day")) or _today(request)
    to_day = parse_day(source.get("to_day")) or from_day + dt.timedelta(days=WEEK - 1)
    to_day = max(to_day, from_day)
    last = from_day + dt.timedelta(days=capacity.MAX_SHOWN_DAYS - 1)
    return from_day, min(to_day, last), to_day > last


async def _slots_page(request: Request, site, source, *, error: CapacityError | None = None,
                      status: int = 200):
    from_day, to_day, clipped = _range(request, source)
    q = request.query_params
    applied = {k: _count(q.get(k)) for k in ("created", "raised", "lowered", "unchanged", "kept",
                                             "overlapping")} if q.get("applied") == "1" else None
    return await _page(request, "sites_slots.html", {
        "site": site, "days": await capacity.windows_between(site, from_day, to_day),
        "from_day": from_day, "to_day": to_day, "clipped": clipped, "error": error,
        "applied": applied, "saved": parse_id(q.get("saved")), "reopened": parse_id(q.get("reopened")),
        "typed": parse_text(source.get("capacity"), 10) if error else "",
    }, status=status)


@staff_only(*ADMIN)
async def admin_site_slots(request: Request):
    """GET ?site=&from_day=&to_day=: each window of those days: places, booked, held, free, closed."""
    site = await sites.site_by_id(parse_id(request.query_params.get("site")))
    if site is None:
        return await _missing(request)
    return await _slots_page(request, site, request.query_params)


@staff_only(*ADMIN)
async def admin_site_slot_capacity(request: Request):
    """POST site=, slot=, capacity= (and the page's from_day, to_day): set one window's places;
    below the places taken it is refused (422) with the number taken."""
    form, site = await _form_site(request)
    if site is None:
        return await _missing(request)
    slot = await capacity.window(site.id, parse_id(form.get("slot")))
    if slot is None:
        return await _missing(request)
    try:
        fresh = await capacity.set_window_capacity(slot, parse_text(form.get("capacity"), 10),
                                                   district(request))
    except CapacityError as exc:
        exc.slot_id = slot.id
        return await _slots_page(request, site, form, error=exc, status=422)
    if fresh.capacity != slot.capacity:
        await record(request, "slot_capacity", detail=(
            f"{site.code} {slot.day} {slot.start}: {slot.capacity} -> {fresh.capacity}"))
    return see_other(url_for(request, "admin_site_slots", site=site.id,
                             from_day=parse_text(form.get("from_day"), 10) or None,
                             to_day=parse_text(form.get("to_day"), 10) or None, saved=slot.id))


@staff_only(*ADMIN)
async def admin_site_slot_reopen(request: Request):
    """POST site=, slot=: a closed window takes bookings again (a closure called off)."""
    form, site = await _form_site(request)
    if site is None:
        return await _missing(request)
    slot = await capacity.window(site.id, parse_id(form.get("slot")))
    if slot is None:
        return await _missing(request)
    if await capacity.reopen_window(slot, district(request)):
        await record(request, "slot_reopen", detail=f"{site.code} {slot.day} {slot.start}")
    return see_other(url_for(request, "admin_site_slots", site=site.id,
                             from_day=parse_text(form.get("from_day"), 10) or None,
                             to_day=parse_text(form.get("to_day"), 10) or None, reopened=slot.id))


ROUTES = [
    Route("/admin/sites", admin_sites, name="admin_sites"),
    Route("/admin/sites/new", admin_site_new, methods=["GET", "POST"], name="admin_site_new"),
    Route("/admin/sites/edit", admin_site_edit, methods=["GET", "POST"], name="admin_site_edit"),
    Route("/admin/sites/open", admin_site_open, methods=["POST"], name="admin_site_open"),
    Route("/admin/sites/template", admin_site_template, name="admin_site_template"),
    Route("/admin/sites/template/add", admin_site_template_add, methods=["POST"],
          name="admin_site_template_add"),
    Route("/admin/sites/template/remove", admin_site_template_remove, methods=["POST"],
          name="admin_site_template_remove"),
    Route("/admin/sites/template/apply", admin_site_template_apply, methods=["POST"],
          name="admin_site_template_apply"),
    Route("/admin/sites/slots", admin_site_slots, name="admin_site_slots"),
    Route("/admin/sites/slots/capacity", admin_site_slot_capacity, methods=["POST"],
          name="admin_site_slot_capacity"),
    Route("/admin/sites/slots/reopen", admin_site_slot_reopen, methods=["POST"],
          name="admin_site_slot_reopen"),
]
