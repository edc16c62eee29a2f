"""The resident's side of the waiting list: join it where the journey finds no room, see where
they stand, leave it; and the offer link of an SMS (/o/…): the place held for them, confirm or
"not for me".

Each handler parses, calls the list (models/booking/waitlist.py) or the booking service, and
renders; the journey's pages, refusals and dead-link page are web/routes/resident.py's.

Decided: the offer link does not ask for the ID number again. It went to the person's own
phone, and all it can do is book the one window held for them (or give it up, or take them off
the list); the page shows only the masked name. Seeing, moving or cancelling the booking it
makes still asks for the ID number, through the personal link (/b/…) of the confirmation SMS.
"""
from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

from starlette.requests import Request

from models.booking import service, waitlist
from models.db.tables import Resident, WaitlistOffer as Offer
from models.people import pii
from models.rules.eligibility import Refusal, Refused
from ..http import client_address, district, parse_text, see_other, url_for
from ..journey import Journey
from ..limits import address_key
from ..refusals import GoTo, PageRefusal
from ..templating import render
from .resident import Visit, link_invalid, load_visit, slow_down, verified_visit
from .resident import _refusal as refusal_page  # the journey's refusal page, its words once (docs/rules.md)

USED = (Offer.TAKEN, Offer.DECLINED)  # answered by the person: its link did its work, now dead
AFTER = ("left", "declined")  # what the list page says it just did (?after=…)


@dataclass
class ListVisit:
    """The person whose place on the list this browser may see: proved by ID number in this
    session (`visit`, who may also change their choice), or the one an offer link was opened for."""

    journey: Journey
    resident: Resident
    now: dt.datetime
    visit: Visit | None = None  # verified by ID number

    @property
    def verified(self) -> bool:
        return self.visit is not None


async def _verified_here(request: Request) -> Visit | None:
    """The visit of a person who proved who they are in this browser, if any. Only a session
    with a link is looked at: load_visit ends a session whose link is dead, and a session opened
    by an offer link has none (its offer must stay)."""
    if Journey(request.session).link_id is None:
        return None
    visit = await load_visit(request)
    return visit if visit is not None and visit.journey.verified else None


async def _list_visit(request: Request) -> ListVisit:
    """The verified visit, else the person of this browser's offer; else the journey's redirect."""
    visit = await _verified_here(request)
    if visit is not None:
        return ListVisit(visit.journey, visit.resident, visit.now, visit)
    journey = Journey(request.session)
    offer = await waitlist.offer_by_id(journey.offer_id)
    if offer is None:
        raise GoTo(url_for(request, "booking"))
    return ListVisit(journey, offer.resident, district(request).clock.now())


# ---- joining, where they stand, leaving


async def booking_waitlist(request: Request):
    """GET: where they stand on the list (or, off it, the way back on).  POST: join it, or
    change what they would accept (one entry a person: a second join keeps their turn)."""
    if request.method == "POST":
        return await _join(request)
    person = await _list_visit(request)
    listed = await waitlist.on_list(person.resident.id)
    after = request.query_params.get("after")
    after = after if after in AFTER else ""
    if listed is None:
        return await _off_list(request, person, left=after == "left")
    await listed.entry.fetch_related("site")
    return render(request, "pages/resident/waitlist.html", {
        "name": _masked(person.resident), "listed": listed, "choice": listed.choice,
        "entry": listed.entry, "offer": listed.offer, "declined": after == "declined",
        "can_change": person.verified, "phone": person.resident.phone_masked,
        "hold_minutes": district(request).offer_minutes,
    })


async def _join(request: Request):
    visit = await verified_visit(request)
    form = await request.form()
    choice = waitlist.Choice.parse(form.get("scope"), form.get("days"), form.get("part"))
    if visit.standing.refusal == Refusal.BOOKED:  # their booking is the answer: the journey shows it
        return see_other(url_for(request, "booking"))
    try:
        await waitlist.join(district(request), visit.standing, choice, channel=visit.journey.channel)
    except Refused:  # vaccinated, restricted, too early: the journey's own words
        return await refusal_page(request, visit, visit.standing)
    return see_other(url_for(request, "waitlist"))


async def _off_list(request: Request, person: ListVisit, *, left: bool):
    """Not on the list: just left it, or never joined (or booked). A verified person who may
    join sees the form again; one who booked meanwhile goes to their booking."""
    joinable = False
    if person.verified:
        standing = await service.stand(district(request), person.resident, person.now)
        if standing.refusal == Refusal.BOOKED or (standing.refusal not in waitlist.JOINABLE and not left):
            return see_other(url_for(request, "booking"))
        joinable = standing.refusal in waitlist.JOINABLE
    return render(request, "pages/resident/waitlist_off.html", {
        "name": _masked(person.resident), "left": left, "joinable": joinable})


async def waitlist_leave(request: Request):
    """POST /booking/waitlist/leave: off the list; a place held for them goes to the next person."""
    person = await _list_visit(request)
    await waitlist.leave(district(request), person.resident.id)
    return see_other(url_for(request, "waitlist") + "?after=left")


def _masked(resident: Resident) -> str:
    return pii.mask_name(resident.name)


# ---- offers


async def open_offer(request: Request):
    """GET /o/{token}: the link of an offer SMS. As /b/ (web/routes/resident.py: open_link):
    counted against the address before the look-up, the try given back for a live offer; the
    offer kept in the session and 303 on, so the token never stays in the address bar.

    An unknown token, or the link of an offer the person already answered (confirmed or "not
    for me"), is the dead-link page; one that ran out or was withdrawn opens the page saying
    the place has gone, and whether they are still on the list."""
    limits = request.app.state.limits
    hit = await limits.hit("open_link", address_key(client_address(request)))
    if not hit:
        return slow_down(request, hit)
    offer = await waitlist.offer_by_token(request.path_params["token"])
    if offer is None or offer.status in USED:
        return link_invalid(request)
    await limits.give_back(hit)
    journey = Journey(request.session)
    visit = await load_visit(request) if journey.link_id is not None else None
    if visit is not None and visit.resident.id != offer.resident_id:
        journey.end()  # someone else's journey on this phone: the offer's person's now
    journey.open_offer(offer.id)
    return see_other(url_for(request, "offer"))


async def _session_offer(request: Request) -> tuple[Offer, ListVisit]:
    """The offer opened by its link in this browser, else the open offer of the person verified
    here (reached from the list page); else the dead-link page."""
    journey = Journey(request.session)
    offer = await waitlist.offer_by_id(journey.offer_id)
    verified = await _verified_here(request)
    if offer is None:
        listed = await waitlist.on_list(verified.resident.id) if verified else None
        if listed is None or listed.offer is None:
            raise PageRefusal(link_invalid(request))
        offer = listed.offer
        await offer.fetch_related("resident")
        journey.open_offer(offer.id)
    if verified is not None and verified.resident.id != offer.resident_id:
        verified = None
    return offer, ListVisit(journey, offer.resident, district(request).clock.now(), verified)


async def booking_offer(request: Request):
    """GET: the window held for them, until when, "confirm" and "not for me".
    POST action=confirm: booked through the booking service, then the journey's confirmation;
    action=decline: the place to the next person, they stay on the list."""
    offer, person = await _session_offer(request)
    if request.method == "POST":
        form = await request.form()
        action = form.get("action")
        if action == "confirm":
            return await _confirm(request, offer, person, parse_text(form.get("key"), 64) or None)
        if action == "decline":
            if await waitlist.decline(district(request), offer.id):
                return see_other(url_for(request, "waitlist") + "?after=declined")
        return see_other(url_for(request, "offer"))  # not open any more: the page says so
    if not waitlist.is_open(offer, person.now):
        if offer.status == Offer.TAKEN and person.journey.took_offer:
            return see_other(url_for(request, "done"))
        return await _gone(request, offer, person)
    standing = await service.stand(district(request), person.resident, person.now)
    return render(request, "pages/resident/offer.html", {
        "name": _masked(person.resident), "slot": offer.slot, "site": offer.slot.site,
        "until": offer.expires_at, "key": person.journey.request_key(), "window": standing.window,
        "late": standing.is_late(offer.slot.day), "companion": standing.needs_companion(offer.slot.day),
    })


async def _confirm(request: Request, offer: Offer, person: ListVisit, key: str | None):
    d = district(request)
    try:
        await service.confirm_offer(d, offer.id, request_key=key)
    except Refused as exc:
        standing = await service.stand(d, person.resident, person.now)
        if exc.reason == Refusal.GONE or standing.refusal not in (
                Refusal.VACCINATED, Refusal.RESTRICTED, Refusal.TOO_EARLY):
            await offer.refresh_from_db()
            return await _gone(request, offer, person)
        visit = person.visit or Visit(person.journey, None, person.resident, person.now, standing, by_offer=True)
        return await refusal_page(request, visit, standing)
    person.journey.checking(None)  # a new booking, not a move: the confirmation says so
    person.journey.forget_choices()
    person.journey.take_offer()
    return see_other(url_for(request, "done"))


async def _gone(request: Request, offer: Offer, person: ListVisit):
    """410: the place is no longer held for them (ran out, withdrawn, taken or given up);
    whether they are still on the list, and the way back on."""
    listed = await waitlist.on_list(person.resident.id)
    return render(request, "pages/resident/offer_gone.html", {
        "name": _masked(person.resident), "status": offer.status, "listed": listed,
        "until": offer.expires_at, "can_change": person.verified,
    }, status=410)
