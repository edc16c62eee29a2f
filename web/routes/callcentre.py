"""The call-centre console: find the caller, see their card, book, move or cancel for them.

ID numbers and phones travel only in POST bodies (search, reveal); URLs carry row ids.
A sub-district account serves only its sub-district's residents (models/staff/scope.py): its
search finds nobody else, and any page or action for someone else by row id is a 403 page,
audited as `out_of_area` (web/scoping.py); the call centre and admins serve the whole district.
Every POST path is fixed (ids in hidden fields) so the CSRF middleware protects each one.
Booking, moving and cancelling go through the same booking service as the resident's link.
The waiting list's actions and the call-back list are web/routes/calls_waitlist.py's; the card
shows where the caller stands on the list.
A clinic account (family doctors, community health centres) says on the check page how each
booking was made, by phone (family_doctor) or at the desk (clinic_desk); every other account's
bookings are the call centre's. A channel the account may not use is refused (422), never stored.
"""
from __future__ import annotations

import datetime as dt
import secrets

from starlette.requests import Request
from starlette.routing import Route

from models.booking import availability, service, waitlist
from models.booking_codes import format_code, spell_code
from models.booking.service import Standing
from models.channel import Channel
from models.channels import agents
from models.db.tables import Booking, Resident
from models.people import lookup
from models.rules.eligibility import Refusal, Refused
from models.staff.scope import OutsideArea
from ..http import district, parse_day, parse_id, parse_text, see_other, url_for
from ..refusals import GoTo, PageRefusal
from ..scoping import area_of, refuse_outside
from ..staff_auth import CALLS, current_staff, record, staff_only
from ..templating import render


async def _page(request: Request, page: str, context: dict, **kw):
    return render(request, f"pages/staff/calls/{page}", {"staff": await current_staff(request), **context}, **kw)


async def _resident(request: Request, resident_id: int | None) -> Resident:
    """The caller's record; else refused: no such record (404), or someone outside the account's
    area (403, audited)."""
    try:
        resident = await lookup.resident_in(await area_of(request), resident_id)
    except OutsideArea as exc:
        raise PageRefusal(await refuse_outside(request, exc.resident_id)) from None
    if resident is None:
        raise PageRefusal(await _missing(request))
    return resident


async def _card(request: Request, resident_id: int | None) -> Standing:
    """Where the caller stands now (their card); else refused (see _resident)."""
    return await service.stand(district(request), await _resident(request, resident_id))


async def _card_page(request: Request, card: Standing, *, revealed: dict | None = None, status: int = 200,
                     fragment: str | None = None, **extra):
    """The caller's card, with where they stand on the waiting list (and, for a clinic account,
    the ways a join may be recorded under)."""
    channels = agents.booking_channels((await current_staff(request)).role)
    return await _page(request, "card.html", {
        "card": card, "revealed": revealed or {}, "listed": await waitlist.on_list(card.resident.id),
        "joinable": card.booking is None and card.refusal in waitlist.JOINABLE,
        "channels": channels if len(channels) > 1 else (), **extra,
    }, status=status, fragment=fragment)


async def _choosing_card(request: Request, resident_id: int | None) -> Standing:
    """The card of a caller who may choose a place (to book or move); else back to the card."""
    card = await _card(request, resident_id)
    if not card.can_choose:
        raise GoTo(url_for(request, "calls_card", r=card.resident.id))
    return card


def _to_card(request: Request, resident_id: int):
    return see_other(url_for(request, "calls_card", r=resident_id))


async def _missing(request: Request):
    return await _page(request, "missing.html", {}, status=404)


async def callbacks_in_area(request: Request) -> list:
    """The open offers of call-back people in the account's area, soonest to run out first."""
    area = await area_of(request)
    if area.everyone:
        return await waitlist.callbacks()
    return await waitlist.callbacks(area.subdistrict) if area.subdistrict else []


@staff_only(*CALLS)
async def calls_home(request: Request):
    """GET /staff/calls: the search box (and how many call-back people have a place held)."""
    return await _page(request, "search.html", {"searched": False, "callbacks": len(await callbacks_in_area(request))})


@staff_only(*CALLS)
async def calls_search(request: Request):
    """POST /staff/calls/search: by full ID number or mobile; the same answer found or not."""
    form = await request.form()
    typed = parse_text(form.get("q"), 40)
    try:
        query = lookup.parse_query(typed)
    except lookup.BadSearch as exc:
        # While the agent is still typing (htmx keyup on #q), a half-typed number is not an error yet.
        typing = request.headers.get("hx-trigger") == "q"
        return await _page(request, "search.html", {"searched": True, "error": exc.reason, "q": typed,
                                                    "typing": typing},
                           status=422, fragment="fragments/_calls_results.html")
    result = await lookup.search(district(request).vault, query, await area_of(request))
    await record(request, "search", detail=f"by {query.kind}, {len(result.rows)} found")
    return await _page(request, "search.html", {"searched": True, "result": result, "q": typed},
                       fragment="fragments/_calls_results.html")


@staff_only(*CALLS)
async def calls_card(request: Request):
    """GET /staff/calls/resident?r=<row id>: the caller's card, masked; opening it is audited."""
    card = await _card(request, parse_id(request.query_params.get("r")))
    await record(request, "view_resident", resident=card.resident)
    return await _card_page(request, card)


@staff_only(*CALLS)
async def calls_reveal(request: Request):
    """POST /staff/calls/reveal: the full ID or phone (htmx swaps it in); each reveal is audited."""
    form = await request.form()
    field = parse_text(form.get("field"), 8)
    if field not in lookup.FIELDS:
        return await _missing(request)
    card = await _card(request, parse_id(form.get("r")))
    full = lookup.reveal(district(request).vault, card.resident, field)
    await record(request, f"reveal_{field}", resident=card.resident)
    return await _card_page(request, card, revealed={field: full}, field=field,
                            fragment="fragments/_calls_number.html")


async def _picker(request: Request, card: Standing, site_id: int | None, wanted: dt.date | None,
                  *, error: str = "", status: int = 200, focus: bool = True):
    """The booking page (or, for htmx, its picker): the chosen site's days and windows first, the
    other sites folded below; focus goes to the day's windows unless the agent is moving through
    the site list with the arrow keys (or an error summary takes it)."""
    window, now = card.window, card.now
    choices = await availability.site_choices(card.resident, window, now)
    open_ids = [c.site.id for c in choices if c.first_free_day]
    current = card.booking
    if site_id is None and current:  # moving: start from where they are booked now
        site_id, wanted = current.slot.site_id, wanted or current.slot.day
    site_id = site_id if site_id in open_ids else (open_ids[0] if open_ids else None)
    days = await availability.days_for_site(site_id, window, now) if site_id else []
    day = availability.day_to_show(days, wanted)
    slots = await availability.windows_for_day(site_id, day, now) if day else []
    return await _page(request, "book.html", {
        "card": card, "choices": choices, "site_id": site_id, "days": days, "day": day,
        "slots": slots, "error": error, "focus_windows": focus and not error,
    }, status=status, fragment="fragments/_calls_picker.html")


@staff_only(*CALLS)
async def calls_book(request: Request):
    """GET /staff/calls/book?r=&site=&day=: site, day and window with live availability."""
    q = request.query_params
    card = await _choosing_card(request, parse_id(q.get("r")))
    from_site_list = request.headers.get("hx-trigger") == "calls-site-form"
    return await _picker(request, card, parse_id(q.get("site")), parse_day(q.get("day")),
                         focus=not from_site_list)


@staff_only(*CALLS)
async def calls_hold(request: Request):
    """POST /staff/calls/hold: keep the chosen window for 5 minutes, then the check page."""
    form = await request.form()
    card = await _card(request, parse_id(form.get("r")))
    slot = await availability.slot_by_id(parse_id(form.get("slot")))
    site_id = slot.site_id if slot else parse_id(form.get("site"))
    if slot is None:
        return await _picker(request, card, site_id, None, error="choose_slot", status=422)
    try:
        await service.choose(district(request), card, slot.id)
    except Refused as exc:
        if exc.reason not in (Refusal.FULL, Refusal.NOT_ALLOWED):
            return _to_card(request, card.resident.id)
        return await _picker(request, card, site_id, slot.day, error="slot_full", status=422)
    return see_other(url_for(request, "calls_check", r=card.resident.id, slot=slot.id))


@staff_only(*CALLS)
async def calls_check(request: Request):
    """GET /staff/calls/check?r=&slot=: read the answers back, then confirm (one key per page)."""
    q = request.query_params
    card = await _choosing_card(request, parse_id(q.get("r")))
    slot = await service.chosen_slot(card, parse_id(q.get("slot")))
    if slot is None:
        return see_other(url_for(request, "calls_book", r=card.resident.id))
    return await _check_page(request, card, slot, secrets.token_urlsafe(16))


async def _check_page(request: Request, card: Standing, slot, key: str, *, error: str = "",
                      status: int = 200):
    """The read-back page; a clinic account also chooses the booking's channel there."""
    channels = agents.booking_channels((await current_staff(request)).role)
    return await _page(request, "check.html", {
        "card": card, "slot": slot, "key": key, "held_until": await _held_until(card, slot.id),
        "late": card.is_late(slot.day), "companion": card.needs_companion(slot.day),
        "channels": channels if len(channels) > 1 else (), "error": error,
    }, status=status)


async def _held_until(card: Standing, slot_id: int):
    """Until when a place on the window is kept for the caller: their hold, or the waiting-list
    offer that holds it for them (a call back); None when neither."""
    held = await service.current_hold(card, slot_id)
    if held:
        return held.expires_at
    listed = await waitlist.on_list(card.resident.id)
    offer = listed.offer if listed else None
    return offer.expires_at if offer and offer.slot_id == slot_id and waitlist.is_open(offer, card.now) else None


async def _channel(request: Request, form) -> str | None:
    """The channel posted with a confirmation, if this account may record bookings under it
    (an account with only one may leave it out); else None."""
    role = (await current_staff(request)).role
    return agents.posted_channel(role, parse_text(form.get("channel"), 20))


@staff_only(*CALLS)
async def calls_confirm(request: Request):
    """POST /staff/calls/confirm: book or move through the booking service; 303 to the read-out script."""
    form = await request.form()
    card = await _card(request, parse_id(form.get("r")))
    slot_id = parse_id(form.get("slot")) or 0
    channel = await _channel(request, form)
    if channel is None:  # not chosen, or not one this account may use: ask again, store nothing
        slot = await service.chosen_slot(card, slot_id) if card.can_choose else None
        if slot is None:
            return _to_card(request, card.resident.id)
        key = parse_text(form.get("key"), 64) or secrets.token_urlsafe(16)
        posted = parse_text(form.get("channel"), 20)
        return await _check_page(request, card, slot, key, status=422,
                                 error="channel_wrong" if posted else "channel_missing")
    try:
        # The check page the agent confirmed read this very window back to the caller.
        placed = await service.confirm(district(request), card, slot_id, channel=channel,
                                       request_key=parse_text(form.get("key"), 64) or None,
                                       chosen=slot_id)
    except Refused as exc:
        if exc.reason not in (Refusal.FULL, Refusal.NOT_ALLOWED, Refusal.GONE):
            return _to_card(request, card.resident.id)
        slot = await availability.slot_by_id(slot_id)
        return await _picker(request, card, slot.site_id if slot else None,
                             slot.day if slot else None, error="slot_taken", status=409)
    booking = placed.booking
    if placed.changed:  # the service hands the booking back with its window and site
        slot = booking.slot
        await record(request, placed.kind, resident=card.resident,
                     detail=f"{format_code(booking.code)} {slot.site.code} {slot.day} {slot.start}"
                            + (f" via {channel}" if channel != Channel.CALLCENTRE else ""))
    moved = {"moved": 1} if placed.kind == "move" else {}
    return see_other(url_for(request, "calls_done", b=booking.id, **moved))


async def _script_booking(request: Request, status: str) -> Booking:
    """The booking ?b= for a read-out script, if it is in `status`; else refused (403 outside
    the area, audited; 404 none) or back to the caller's card."""
    booking_id = parse_id(request.query_params.get("b"))
    try:
        booking = await lookup.booking_for_script(await area_of(request), booking_id)
    except OutsideArea as exc:
        raise PageRefusal(await refuse_outside(request, exc.resident_id, detail=f"b={booking_id}")) from None
    if booking is None:
        raise PageRefusal(await _missing(request))
    if booking.status != status:
        raise GoTo(url_for(request, "calls_card", r=booking.resident_id))
    return booking


@staff_only(*CALLS)
async def calls_done(request: Request):
    """GET /staff/calls/done?b=: the script the agent reads out to the caller."""
    booking = await _script_booking(request, Booking.ACTIVE)
    card = await _card(request, booking.resident_id)
    return await _page(request, "done.html", {
        "card": card, "booking": booking, "slot": booking.slot, "site": booking.slot.site,
        "moved": request.query_params.get("moved") == "1",
        "late": card.is_late(booking.slot.day),
        "companion": card.needs_companion(booking.slot.day),
        "spelled": spell_code(booking.code),
    })


@staff_only(*CALLS)
async def calls_cancel(request: Request):
    """GET: are you sure?  POST: cancel through the booking service; the place goes back."""
    if request.method == "POST":
        form = await request.form()
        resident_id = (await _resident(request, parse_id(form.get("r")))).id
        booking, cancelled = await service.cancel(district(request), resident_id,
                                                  parse_id(form.get("b")) or 0)
        if booking is None:
            return await _missing(request)
        if cancelled:
            await record(request, "cancel", resident=resident_id, detail=format_code(booking.code))
        return see_other(url_for(request, "calls_cancelled", b=booking.id))
    card = await _card(request, parse_id(request.query_params.get("r")))
    if card.booking is None:
        return _to_card(request, card.resident.id)
    return await _page(request, "cancel.html", {"card": card, "booking": card.booking})


@staff_only(*CALLS)
async def calls_cancelled(request: Request):
    """GET /staff/calls/cancelled?b=: what to tell the caller after a cancellation."""
    booking = await _script_booking(request, Booking.CANCELLED)
    return await _page(request, "cancelled.html", {"booking": booking, "resident": booking.resident})


ROUTES = [
    Route("/staff/calls", calls_home, name="calls"),
    Route("/staff/calls/search", calls_search, methods=["POST"], name="calls_search"),
    Route("/staff/calls/resident", calls_card, name="calls_card"),
    Route("/staff/calls/reveal", calls_reveal, methods=["POST"], name="calls_reveal"),
    Route("/staff/calls/book", calls_book, name="calls_book"),
    Route("/staff/calls/hold", calls_hold, methods=["POST"], name="calls_hold"),
    Route("/staff/calls/check", calls_check, name="calls_check"),
    Route("/staff/calls/confirm", calls_confirm, methods=["POST"], name="calls_confirm"),
    Route("/staff/calls/done", calls_done, name="calls_done"),
    Route("/staff/calls/cancel", calls_cancel, methods=["GET", "POST"], name="calls_cancel"),
    Route("/staff/calls/cancelled", calls_cancelled, name="calls_cancelled"),
]
