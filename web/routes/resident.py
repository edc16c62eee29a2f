"""The resident journey: personal link -> who you are -> site -> day and time -> check -> confirmation.

Each handler parses, calls the booking service (models/booking/service.py), and renders.
"""
from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

from starlette.requests import Request
from models.booking import availability, service, waitlist
from models.booking.service import Standing
from models.channels import entry
from models.db.tables import Link, Resident
from models.people import links, pii, residents
from models.rules.eligibility import Refusal, Refused
from .. import i18n
from ..http import client_address, district, parse_day, parse_id, parse_text, see_other, url_for
from ..journey import Journey
from ..limits import address_key
from ..refusals import GoTo, PageRefusal
from ..templating import render


@dataclass
class Visit:
    """The resident behind this browser session, as of now."""

    journey: Journey
    link: Link
    resident: Resident
    now: dt.datetime
    standing: Standing | None = None
    by_offer: bool = False  # came by a waiting-list offer's link, ID number not typed (no `link`)

    @property
    def masked_name(self) -> str:
        return pii.mask_name(self.resident.name)


def link_invalid(request: Request):
    """One page for unknown, expired and revoked links: it tells a guesser nothing."""
    return render(request, "pages/resident/refusal.html", {"kind": "link_invalid"}, status=404)


def slow_down(request: Request, hit):
    """429: too many failures from this address (a refused hit of web/limits.py); Retry-After
    says when to try again."""
    wait = hit.retry_after
    return render(request, "pages/resident/refusal.html", {"kind": "slow_down", "wait": wait},
                  status=429, headers={"Retry-After": str(wait)})


async def load_visit(request: Request) -> Visit | None:
    """The live link of this session and its resident; a dead link ends the session."""
    journey = Journey(request.session)
    now = district(request).clock.now()
    link = await links.live_link(journey.link_id, now)
    if link is None:
        journey.end()
        return None
    return Visit(journey, link, link.resident, now)


async def linked_visit(request: Request) -> Visit:
    """The visit of this session's live link; else the one page for a link that does not work."""
    visit = await load_visit(request)
    if visit is None:
        raise PageRefusal(link_invalid(request))
    return visit


async def verified_visit(request: Request) -> Visit:
    """The visit of a resident who proved who they are, with their standing; else back home."""
    visit = await load_visit(request)
    if visit is None or not visit.journey.verified:
        raise GoTo(url_for(request, "booking"))
    visit.standing = await service.stand(district(request), visit.resident, visit.now)
    return visit


async def choosing_visit(request: Request) -> Visit:
    """A verified visit of someone who may choose a place (to book or to move); else back home."""
    visit = await verified_visit(request)
    if not visit.standing.can_choose:
        raise GoTo(url_for(request, "booking"))
    return visit


async def booked_visit(request: Request) -> Visit:
    """A verified visit of someone with an active booking; else back home."""
    visit = await verified_visit(request)
    if visit.standing.booking is None:
        raise GoTo(url_for(request, "booking"))
    return visit


async def open_link(request: Request):
    """GET /b/{token}: does not use the link up (scanners open it too); sets a session, 303 away.

    Every try is counted before the token is looked up; a live link gives its try back, so
    only unknown, expired and revoked tokens stay counted: residents behind one carrier address
    all get in, a guesser is stopped, even one sending all their guesses at once."""
    limits = request.app.state.limits
    hit = await limits.hit("open_link", address_key(client_address(request)))
    if not hit:
        return slow_down(request, hit)
    link = await links.resolve_token(request.path_params["token"], district(request).clock.now())
    if link is None:
        return link_invalid(request)
    await limits.give_back(hit)
    Journey(request.session).start(link.id)
    return see_other(url_for(request, "booking"))


async def booking_home(request: Request):
    """GET /booking: greeting and ID check, then the booking, a refusal, or on to site choice."""
    visit = await linked_visit(request)
    if not visit.journey.verified:
        return _verify_page(request, visit)
    standing = await service.stand(district(request), visit.resident, visit.now)
    if standing.refusal == Refusal.BOOKED:
        return await _booking_page(request, visit, standing, just_booked=False)
    if standing.refusal:
        return await _refusal(request, visit, standing)
    return see_other(url_for(request, "site"))


def _window_context(visit: Visit, window) -> dict:
    return {"name": visit.masked_name, "window": window, "today": visit.now.date()}


async def _family_offer(visit: Visit) -> bool:
    """Offer "book for someone else on this phone" only while a proved phone is in force and
    someone other than this person is registered with it."""
    if not visit.journey.on_phone(visit.now):
        return False
    return await entry.others_on_phone(visit.journey.phone_login, visit.resident.id, now=visit.now)


def _verify_page(request: Request, visit: Visit, *, error: str = "", tries_left: int = 0,
                 typed: str = "", status: int = 200, locked_until: dt.datetime | None = None):
    d = district(request)
    # `locked_until`: the lock this answer found, even when the request that takes the link's
    # last try has not written it yet (fifty at once: tests/test_limits_race.py).
    until = locked_until or links.locked_until(visit.link, visit.now)
    window = d.rules.window(visit.resident.first_dose_date, visit.resident.vaccine)
    return render(request, "pages/resident/verify.html", {
        **_window_context(visit, window),
        "error": error, "tries_left": tries_left, "locked_until": until,
        "typed": typed,  # the ID number as typed: only in this POST's answer, to correct it
        "max_failures": d.verify_max_failures, "lock_minutes": d.verify_lock_minutes,
    }, status=423 if until else status)


async def _refusal(request: Request, visit: Visit, standing: Standing):
    """The journey's words for why the person cannot book; with no room anywhere, the waiting
    list: where they stand on it, or the form to join it (web/routes/waitlist.py)."""
    listed = await waitlist.on_list(visit.resident.id) if standing.refusal == Refusal.NO_ROOM else None
    return render(request, "pages/resident/refusal.html", {
        **_window_context(visit, standing.window), "kind": standing.refusal,
        "phone_family": await _family_offer(visit), "listed": listed, "can_join": not visit.by_offer,
        "second_dose_date": visit.resident.second_dose_date, "subdistrict": visit.resident.subdistrict,
    })


async def booking_verify(request: Request):
    """POST /booking/verify: the typed ID number must match the record behind the link."""
    visit = await linked_visit(request)
    # Counted before the number is compared (the link's own count, too: links.verify_identity);
    # a right number or a typo of the format (not a guess) gives the address's try back.
    limits = request.app.state.limits
    hit = await limits.hit("verify", address_key(client_address(request)))
    if not hit:
        return slow_down(request, hit)
    form = await request.form()
    d = district(request)
    id_text = parse_text(form.get("id_number"), 64)
    result = await links.verify_identity(
        d.vault, visit.link, id_text, now=visit.now,
        max_failures=d.verify_max_failures, lock_minutes=d.verify_lock_minutes)
    if result.reason not in ("mismatch", "locked"):
        await limits.give_back(hit)
    if result.ok:
        visit.journey.mark_verified()
        lang = i18n.choose_language(request.cookies.get(i18n.LANG_COOKIE))
        await residents.prefer_language(visit.resident, lang)  # their SMS from now on
        # Straight to the first question when they may book: one round trip less on a slow network.
        standing = await service.stand(d, visit.resident, visit.now)
        return see_other(url_for(request, "site" if standing.refusal is None else "booking"))
    await visit.link.refresh_from_db()
    error = f"invalid_{result.invalid_reason}" if result.reason == "invalid" else result.reason
    return _verify_page(request, visit, error=error, tries_left=result.tries_left, typed=id_text,
                        status=422, locked_until=result.locked_until)


async def booking_site(request: Request):
    """GET/POST /booking/site: keep the first-dose site or pick another that has room."""
    visit = await choosing_visit(request)
    standing = visit.standing
    error = ""
    if request.method == "POST":
        form = await request.form()
        site_id = parse_id(form.get("site"))
        if site_id is not None and await availability.has_room_at(site_id, standing.window, visit.now):
            visit.journey.choose_site(site_id)
            return see_other(url_for(request, "slot"))
        error = "choose_site" if site_id is None else "site_full"
    choices = await availability.site_choices(visit.resident, standing.window, visit.now)
    open_ids = {c.site.id for c in choices if c.first_free_day}
    chosen = visit.journey.site_id
    first = choices[0] if choices and choices[0].is_first_site else None
    if chosen not in open_ids:
        chosen = next((c.site.id for c in choices if c.first_free_day), None)
    first_site_full = first is not None and first.first_free_day is None
    return render(request, "pages/resident/site.html", {
        **_window_context(visit, standing.window),
        "choices": choices, "chosen": chosen, "error": error, "first_site_full": first_site_full,
        "moving": standing.booking is not None, "listed": await _listed(standing) if first_site_full else None,
    }, status=422 if error else 200)


async def booking_slot(request: Request):
    """GET/POST /booking/slot: a day allowed by the interval rule, then a window with room."""
    visit = await choosing_visit(request)
    site = await availability.open_site(visit.journey.site_id)
    if site is None:
        return see_other(url_for(request, "site"))
    standing, journey = visit.standing, visit.journey
    error = ""
    if request.method == "POST":
        form = await request.form()
        slot = await availability.slot_at(site.id, parse_id(form.get("slot")))
        if slot is None:
            error = "choose_slot"
        else:
            journey.look_at_day(slot.day)
            try:
                await service.choose(district(request), standing, slot.id)
            except Refused:
                error = "slot_full"
            else:
                journey.choose_slot(slot.id)
                return see_other(url_for(request, "check"))
    flash = journey.pop_flash()
    days = await availability.days_for_site(site.id, standing.window, visit.now)
    wanted = parse_day(request.query_params.get("day")) or journey.day
    day = availability.day_to_show(days, wanted)
    slots = await availability.windows_for_day(site.id, day, visit.now) if day else []
    return render(request, "pages/resident/slot.html", {
        **_window_context(visit, standing.window),
        "site": site, "days": days, "day": day, "slots": slots, "error": error or flash,
        "chosen": journey.slot_id, "moving": standing.booking is not None,
        "listed": None if any(s.free for s in slots) else await _listed(standing),
    }, status=422 if error else 200, fragment="fragments/_slot_picker.html")


async def _listed(standing: Standing):
    """Where a person choosing a place stands on the waiting list (None when not on it, or when
    moving a booking: booking ended their place on it). Asked only where a page finds no room
    (the first-dose site full, a day full): there it shows their place, or the form to join."""
    return None if standing.booking else await waitlist.on_list(standing.resident.id)


async def booking_check(request: Request):
    """GET /booking/check: every answer on one page, each with a way to change it."""
    visit = await choosing_visit(request)
    standing, journey = visit.standing, visit.journey
    slot = await service.chosen_slot(standing, journey.slot_id)
    if slot is None:
        return see_other(url_for(request, "slot" if journey.site_id else "site"))
    try:  # the hold may have run out while they were away: take it again if there is still room
        held = await service.keep_hold(district(request), standing, slot.id)
    except Refused:
        journey.lose_slot("slot_taken")
        return see_other(url_for(request, "slot"))
    journey.checking(standing.booking.slot_id if standing.booking else None)
    return render(request, "pages/resident/check.html", {
        **_window_context(visit, standing.window),
        "slot": slot, "key": journey.request_key(), "current": standing.booking,
        "held_until": held.expires_at, "late": standing.is_late(slot.day),
        "companion": standing.needs_companion(slot.day),
    })


async def booking_confirm(request: Request):
    """POST /booking/confirm: book (or move) through the booking service; 303 to the confirmation."""
    visit = await choosing_visit(request)
    form = await request.form()
    slot_id = parse_id(form.get("slot")) or 0
    current = visit.standing.booking
    if current is not None and current.slot_id == slot_id and visit.journey.moved_from:
        return see_other(url_for(request, "done"))  # a move sent twice: the first one did it
    try:
        await service.confirm(district(request), visit.standing, slot_id,
                              request_key=parse_text(form.get("key"), 64) or None,
                              channel=visit.journey.channel,
                              chosen=visit.journey.slot_id)
    except Refused as exc:
        if exc.reason in (Refusal.BOOKED, Refusal.NOT_CHOSEN):  # their booking, or start again
            return see_other(url_for(request, "booking"))
        visit.journey.lose_slot("slot_taken")
        return see_other(url_for(request, "slot"))
    visit.journey.forget_choices()
    return see_other(url_for(request, "done"))


async def booking_done(request: Request):
    """GET /booking/done: the confirmation of the booking just made (by this journey, or by
    taking a waiting-list offer in this browser)."""
    visit = await _offer_taker(request) or await booked_visit(request)
    moved_from = visit.journey.moved_from
    if moved_from == visit.standing.booking.slot_id:  # "moved" to the window it was in
        return await _booking_page(request, visit, visit.standing, just_booked=False)
    old = await availability.slot_by_id(moved_from)
    return await _booking_page(request, visit, visit.standing, just_booked=True,
                               old_slot=await availability.slot_with_site(old.id) if old else None)


async def _offer_taker(request: Request) -> Visit | None:
    """The person who took a waiting-list offer in this browser without typing their ID number
    (web/routes/waitlist.py: the offer link books that one window): their confirmation, while
    the booking is on the offered window. None when this browser proved who they are (the
    journey's own page then) or took no offer."""
    journey = Journey(request.session)
    if not journey.took_offer:
        return None
    offer = await waitlist.offer_by_id(journey.offer_id)
    visit = await load_visit(request) if journey.link_id is not None else None  # (it ends a linkless session)
    if offer is None or (visit is not None and visit.journey.verified and visit.resident.id == offer.resident_id):
        return None
    d = district(request)
    now = d.clock.now()
    standing = await service.stand(d, offer.resident, now)
    if standing.booking is None or standing.booking.slot_id != offer.slot_id:
        return None
    return Visit(journey, None, offer.resident, now, standing, by_offer=True)


async def _booking_page(request: Request, visit: Visit, standing: Standing, *, just_booked: bool,
                        old_slot=None):
    """The booking: just made ("预约成功"), just moved from `old_slot` ("改约成功", the old and
    the new time), or as it stands."""
    booking = standing.booking
    slot = booking.slot
    return render(request, "pages/resident/booking.html", {
        **_window_context(visit, standing.window), "phone_family": await _family_offer(visit),
        "booking": booking, "slot": slot, "site": slot.site, "just_booked": just_booked,
        "old_slot": old_slot,
        "phone": visit.resident.phone_masked,
        "late": standing.is_late(slot.day),
        "companion": standing.needs_companion(slot.day),
        "can_move": standing.can_choose, "by_offer": visit.by_offer,
    })


async def booking_cancel(request: Request):
    """GET: are you sure?  POST: cancel, the place goes back to others."""
    visit = await booked_visit(request)
    booking = visit.standing.booking
    if request.method == "POST":
        await service.cancel(district(request), visit.resident.id, booking.id)
        visit.journey.forget_choices()
        return see_other(url_for(request, "cancelled"))
    return render(request, "pages/resident/cancel.html", {
        **_window_context(visit, visit.standing.window), "booking": booking,
        "slot": booking.slot, "site": booking.slot.site,
    })


async def booking_cancelled(request: Request):
    visit = await load_visit(request)
    if visit is None or not visit.journey.verified:
        return see_other(url_for(request, "booking"))
    return render(request, "pages/resident/cancelled.html", {
        "name": visit.masked_name, "phone_family": await _family_offer(visit)})
