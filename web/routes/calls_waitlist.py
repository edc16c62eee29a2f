"""The agent console's waiting list (models/booking/waitlist.py): an agent puts a caller on it
(the resident's three choices, and a call back for someone without a mobile phone), sees where
they stand on the caller's card (web/routes/callcentre.py), takes them off; the call-back list
shows the places held for call-back people, to phone: booked through the check page like any
window (the engine turns the held place into the booking), or declined. Every action audited,
in the account's area only, as the rest of the console.
"""
from __future__ import annotations

from starlette.requests import Request
from starlette.routing import Route

from models.booking import waitlist
from models.channel import Channel
from models.people.pii import mask_name
from models.rules.eligibility import Refused
from ..http import district, parse_id, parse_text, see_other, url_for
from ..staff_auth import CALLS, current_staff, record, staff_only
from .callcentre import _card, _card_page, _channel, _missing, _page, _resident, callbacks_in_area


@staff_only(*CALLS)
async def calls_waitlist_join(request: Request):
    """POST /staff/calls/waitlist: put the caller on the waiting list with their choice (a call
    back when they have no mobile phone), or change it; audited. Refused with the card's words."""
    form = await request.form()
    card = await _card(request, parse_id(form.get("r")))
    choice = waitlist.Choice.parse(parse_text(form.get("scope"), 12), parse_text(form.get("days"), 10),
                                   parse_text(form.get("part"), 10))
    callback = form.get("callback") == "1"
    kept = {"choice": choice, "callback": callback}
    channel = await _channel(request, form)
    if channel is None:
        error = "channel_wrong" if parse_text(form.get("channel"), 20) else "channel_missing"
        return await _card_page(request, card, status=422, waitlist_error=error, **kept)
    try:
        await waitlist.join(district(request), card, choice, channel=channel, callback=callback,
                            staff_id=(await current_staff(request)).id)
    except Refused as exc:
        return await _card_page(request, card, status=422, waitlist_error=exc.reason, **kept)
    await record(request, "waitlist_add", resident=card.resident,
                 detail=card.resident.id_masked + (" call back" if callback else "")
                        + (f" via {channel}" if channel != Channel.CALLCENTRE else ""))
    return see_other(url_for(request, "calls_card", r=card.resident.id) + "#waitlist")


@staff_only(*CALLS)
async def calls_waitlist_leave(request: Request):
    """POST /staff/calls/waitlist/leave: take the caller off the list (a place held for them goes
    to the next person); audited when they were on it."""
    form = await request.form()
    resident = await _resident(request, parse_id(form.get("r")))
    if await waitlist.leave(district(request), resident.id):
        await record(request, "waitlist_leave", resident=resident, detail=resident.id_masked)
    return see_other(url_for(request, "calls_card", r=resident.id) + "#waitlist")


@staff_only(*CALLS)
async def calls_callbacks(request: Request):
    """GET /staff/calls/callbacks: the places held for people without a mobile phone, to phone."""
    offers = await callbacks_in_area(request)
    return await _page(request, "callbacks.html", {
        "offers": offers, "mask_name": mask_name, "now": district(request).clock.now(),
        "declined": request.query_params.get("declined") == "1", "gone": request.query_params.get("gone") == "1",
    })


@staff_only(*CALLS)
async def calls_callback_decline(request: Request):
    """POST /staff/calls/callbacks/decline: the caller does not want the place ("不需要"): they stay
    on the list, the place goes to the next person; audited."""
    form = await request.form()
    resident = await _resident(request, parse_id(form.get("r")))
    offer = await waitlist.offer_by_id(parse_id(form.get("offer")))
    if offer is None or offer.resident_id != resident.id:
        return await _missing(request)
    declined = await waitlist.decline(district(request), offer.id)
    if declined:
        slot = offer.slot
        await record(request, "waitlist_decline", resident=resident,
                     detail=f"{resident.id_masked} {slot.site.code} {slot.day} {slot.start}")
    if form.get("back") == "card":
        return see_other(url_for(request, "calls_card", r=resident.id) + "#waitlist")
    # Not declined: the offer was answered or ran out meanwhile (the list no longer shows it).
    return see_other(url_for(request, "calls_callbacks", **({"declined": 1} if declined else {"gone": 1})))


ROUTES = [
    Route("/staff/calls/waitlist", calls_waitlist_join, methods=["POST"], name="calls_waitlist_join"),
    Route("/staff/calls/waitlist/leave", calls_waitlist_leave, methods=["POST"], name="calls_waitlist_leave"),
    Route("/staff/calls/callbacks", calls_callbacks, name="calls_callbacks"),
    Route("/staff/calls/callbacks/decline", calls_callback_decline, methods=["POST"],
          name="calls_callback_decline"),
]
