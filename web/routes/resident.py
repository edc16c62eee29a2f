"""The resident journey: personal link -> who you are -> site -> day and time -> check -> confirmation."""
from __future__ import annotations

import datetime as dt
import secrets
from dataclasses import dataclass

from starlette.requests import Request
from starlette.responses import RedirectResponse

from models import availability
from models import booking as engine
from models import clock, pii, rules
from models.eligibility import Standing, assess
from models.links import is_live, locked_until, resolve_token, verify_identity
from models.residents import age_on
from models.tables import Link, Resident, Site, Slot
from ..templating import render


@dataclass
class Visit:
    """The resident behind this browser session, as of now."""

    link: Link
    resident: Resident
    verified: bool
    now: dt.datetime
    standing: Standing | None = None

    @property
    def masked_name(self) -> str:
        return pii.mask_name(self.resident.name)


def redirect(url: str) -> RedirectResponse:
    return RedirectResponse(url, status_code=303)


def link_invalid(request: Request):
    """One page for unknown, expired and revoked links: it tells a guesser nothing."""
    return render(request, "pages/resident/refusal.html", {"kind": "link_invalid"}, status=404)


async def load_visit(request: Request) -> Visit | None:
    link_id = request.session.get("link")
    link = await Link.get_or_none(id=link_id) if link_id else None
    if link is None or not is_live(link):
        request.session.clear()
        return None
    resident = await Resident.get(id=link.resident_id).select_related("first_site")
    return Visit(link, resident, request.session.get("verified") == link.id, clock.local_now())


async def verified_visit(request: Request) -> Visit | RedirectResponse:
    """The visit of a resident who proved who they are and may choose a place; else where to go."""
    visit = await load_visit(request)
    if visit is None or not visit.verified:
        return redirect("/booking")
    visit.standing = await assess(visit.resident, visit.now, lead_days=_settings(request).booking_lead_days)
    if not visit.standing.can_choose:
        return redirect("/booking")
    return visit


def _settings(request: Request):
    return request.app.state.settings


def _client(request: Request) -> str:
    return request.client.host if request.client else "-"


async def open_link(request: Request):
    """GET /b/{token}: does not use the link up (scanners open it too); sets a session, 303 away."""
    if not request.app.state.limits.hit("open_link", _client(request)):
        return render(request, "pages/resident/refusal.html", {"kind": "slow_down"}, status=429)
    link = await resolve_token(request.path_params["token"])
    if link is None:
        return link_invalid(request)
    request.session.clear()
    request.session["link"] = link.id
    return redirect("/booking")


async def booking_home(request: Request):
    """GET /booking: greeting and ID check, then the booking, a refusal, or on to site choice."""
    visit = await load_visit(request)
    if visit is None:
        return link_invalid(request)
    if not visit.verified:
        return _verify_page(request, visit)
    standing = await assess(visit.resident, visit.now, lead_days=_settings(request).booking_lead_days)
    if standing.refusal == rules.BOOKED:
        return await _booking_page(request, visit, standing, just_booked=False)
    if standing.refusal:
        return _refusal(request, visit, standing)
    return redirect("/booking/site")


def _window_context(visit: Visit, window: rules.Window) -> dict:
    return {"name": visit.masked_name, "window": window, "today": visit.now.date()}


def _verify_page(request: Request, visit: Visit, *, error: str = "", tries_left: int = 0,
                 status: int = 200):
    until = locked_until(visit.link)
    window = rules.interval_window(visit.resident.first_dose_date, visit.resident.vaccine)
    return render(request, "pages/resident/verify.html", {
        **_window_context(visit, window),
        "error": error, "tries_left": tries_left, "locked_until": until,
        "max_failures": _settings(request).verify_max_failures,
        "lock_minutes": _settings(request).verify_lock_minutes,
    }, status=423 if until else status)


def _refusal(request: Request, visit: Visit, standing: Standing):
    return render(request, "pages/resident/refusal.html", {
        **_window_context(visit, standing.window), "kind": standing.refusal,
        "second_dose_date": visit.resident.second_dose_date,
    })


async def booking_verify(request: Request):
    """POST /booking/verify: the typed ID number must match the record behind the link."""
    visit = await load_visit(request)
    if visit is None:
        return link_invalid(request)
    if not request.app.state.limits.hit("verify", _client(request)):
        return render(request, "pages/resident/refusal.html", {"kind": "slow_down"}, status=429)
    form = await request.form()
    s = _settings(request)
    result = await verify_identity(visit.link, str(form.get("id_number", "")),
                                   max_failures=s.verify_max_failures, lock_minutes=s.verify_lock_minutes)
    if result.ok:
        request.session["verified"] = visit.link.id
        # Straight to the first question when they may book: one round trip less on a slow network.
        standing = await assess(visit.resident, visit.now, lead_days=s.booking_lead_days)
        return redirect("/booking/site" if standing.refusal is None else "/booking")
    await visit.link.refresh_from_db()
    error = f"invalid_{result.invalid_reason}" if result.reason == "invalid" else result.reason
    return _verify_page(request, visit, error=error, tries_left=result.tries_left, status=422)


async def booking_site(request: Request):
    """GET/POST /booking/site: keep the first-dose site or pick another that has room."""
    visit = await verified_visit(request)
    if not isinstance(visit, Visit):
        return visit
    choices = await availability.site_choices(visit.resident, visit.standing.window, visit.now)
    open_ids = {c.site.id for c in choices if c.first_free_day}
    error = ""
    if request.method == "POST":
        form = await request.form()
        site_id = _int(form.get("site"))
        if site_id in open_ids:
            request.session["site"] = site_id
            request.session.pop("day", None)
            request.session.pop("slot", None)
            return redirect("/booking/slot")
        error = "choose_site" if site_id is None else "site_full"
    chosen = request.session.get("site")
    first = choices[0] if choices and choices[0].is_first_site else None
    if chosen not in open_ids:
        chosen = next((c.site.id for c in choices if c.first_free_day), None)
    return render(request, "pages/resident/site.html", {
        **_window_context(visit, visit.standing.window),
        "choices": choices, "chosen": chosen, "error": error,
        "first_site_full": first is not None and first.first_free_day is None,
        "moving": visit.standing.booking is not None,
    }, status=422 if error else 200)


def _int(value) -> int | None:
    try:
        return int(value)
    except (TypeError, ValueError):
        return None


async def booking_slot(request: Request):
    """GET/POST /booking/slot: a day allowed by the interval rule, then a window with room."""
    visit = await verified_visit(request)
    if not isinstance(visit, Visit):
        return visit
    site = await Site.get_or_none(id=request.session.get("site") or 0, active=True)
    if site is None:
        return redirect("/booking/site")
    window = visit.standing.window
    error = ""
    if request.method == "POST":
        form = await request.form()
        slot = await Slot.get_or_none(id=_int(form.get("slot")) or 0, site_id=site.id)
        if slot is None:
            error = "choose_slot"
        else:
            request.session["day"] = slot.day.isoformat()
            try:
                await engine.hold(visit.resident, slot.id, window=window, now=visit.now)
            except engine.BookingError:
                error = "slot_full"
            else:
                request.session["slot"] = slot.id
                request.session.pop("key", None)
                return redirect("/booking/check")
    flash = request.session.pop("flash", "")
    days = await availability.days_for_site(site.id, window, visit.now)
    wanted = request.query_params.get("day") or request.session.get("day")
    day = next((d.day for d in days if d.day.isoformat() == wanted), None)
    day = day or next((d.day for d in days if d.free), None)
    slots = await availability.windows_for_day(site.id, day, visit.now) if day else []
    return render(request, "pages/resident/slot.html", {
        **_window_context(visit, window),
        "site": site, "days": days, "day": day, "slots": slots, "error": error or flash,
        "chosen": request.session.get("slot"),
    }, status=422 if error else 200, fragment="fragments/_slot_picker.html")


async def _chosen_slot(request: Request, visit: Visit) -> Slot | None:
    slot_id = request.session.get("slot")
    slot = await Slot.get_or_none(id=slot_id).select_related("site") if slot_id else None
    if slot is None or not availability.slot_is_allowed(slot, visit.standing.window, visit.now):
        return None
    return slot


async def booking_check(request: Request):
    """GET /booking/check: every answer on one page, each with a way to change it."""
    visit = await verified_visit(request)
    if not isinstance(visit, Visit):
        return visit
    slot = await _chosen_slot(request, visit)
    if slot is None:
        return redirect("/booking/slot" if request.session.get("site") else "/booking/site")
    held = await engine.live_hold(visit.resident.id)
    if held is None or held.slot_id != slot.id:
        try:  # the hold ran out while they were away: take it again if there is still room
            held = await engine.hold(visit.resident, slot.id, window=visit.standing.window, now=visit.now)
        except engine.BookingError:
            request.session.pop("slot", None)
            request.session["flash"] = "slot_taken"
            return redirect("/booking/slot")
    # One key per check page: a double tap or a resubmit sends it again and gets the same booking.
    key = request.session.setdefault("key", secrets.token_urlsafe(16))
    return render(request, "pages/resident/check.html", {
        **_window_context(visit, visit.standing.window),
        "slot": slot, "key": key, "current": visit.standing.booking, "held_until": held.expires_at,
        "late": visit.standing.window.is_late(slot.day),
        "companion": rules.needs_companion(age_on(visit.resident, slot.day)),
    })


async def booking_confirm(request: Request):
    """POST /booking/confirm: book (or move) through the engine; 303 to the confirmation."""
    visit = await verified_visit(request)
    if not isinstance(visit, Visit):
        return visit
    form = await request.form()
    key = str(form.get("key", ""))[:64] or None
    slot_id = _int(form.get("slot"))
    current = visit.standing.booking
    try:
        if current is None or (key and current.request_key == key):
            await engine.book(visit.resident, slot_id or 0, window=visit.standing.window,
                              now=visit.now, request_key=key, channel="sms")
        else:
            await engine.move(current, slot_id or 0, window=visit.standing.window, now=visit.now)
    except engine.BookingError as exc:
        if exc.reason == "already_booked":
            return redirect("/booking")
        request.session.pop("slot", None)
        request.session["flash"] = "slot_taken"
        return redirect("/booking/slot")
    _forget_choices(request)
    return redirect("/booking/done")


async def booked_visit(request: Request) -> tuple[Visit, Standing] | RedirectResponse:
    """The verified visit of a resident who has an active booking; else back to /booking."""
    visit = await load_visit(request)
    if visit is None or not visit.verified:
        return redirect("/booking")
    standing = await assess(visit.resident, visit.now, lead_days=_settings(request).booking_lead_days)
    if standing.booking is None:
        return redirect("/booking")
    return visit, standing


def _forget_choices(request: Request) -> None:
    for name in ("slot", "key", "site", "day"):
        request.session.pop(name, None)


async def booking_done(request: Request):
    """GET /booking/done: the confirmation of the booking just made."""
    found = await booked_visit(request)
    if not isinstance(found, tuple):
        return found
    return await _booking_page(request, *found, just_booked=True)


async def _booking_page(request: Request, visit: Visit, standing: Standing, *, just_booked: bool):
    booking = standing.booking
    slot = booking.slot
    return render(request, "pages/resident/booking.html", {
        **_window_context(visit, standing.window),
        "booking": booking, "slot": slot, "site": slot.site, "just_booked": just_booked,
        "phone": visit.resident.phone_masked,
        "late": standing.window.is_late(slot.day),
        "companion": rules.needs_companion(age_on(visit.resident, slot.day)),
        "can_move": standing.can_choose,
    })


async def booking_cancel(request: Request):
    """GET: are you sure?  POST: cancel, the place goes back to others."""
    found = await booked_visit(request)
    if not isinstance(found, tuple):
        return found
    visit, standing = found
    if request.method == "POST":
        await engine.cancel(standing.booking)
        _forget_choices(request)
        return redirect("/booking/cancelled")
    slot = standing.booking.slot
    return render(request, "pages/resident/cancel.html", {
        **_window_context(visit, standing.window), "booking": standing.booking,
        "slot": slot, "site": slot.site,
    })


async def booking_cancelled(request: Request):
    visit = await load_visit(request)
    if visit is None or not visit.verified:
        return redirect("/booking")
    return render(request, "pages/resident/cancelled.html", {"name": visit.masked_name})
