"""The city health platform's hand-off (广州健康通): POST /api/handoff, a signed server-to-server
question "can this person book?", and GET /h/{token}, the one-time address it answers with,
which opens the person's journey already verified. Both are off (404) without HANDOFF_PARTNERS.

The work, the signature included, is models/channels/handoff.py's; these only read the request
and write the answer.
"""
from __future__ import annotations

from starlette.requests import Request
from starlette.responses import JSONResponse

from models.channels import handoff
from .. import i18n
from ..http import client_address, district, see_other, url_for
from ..journey import Journey
from ..limits import address_key
from . import resident

YEAR = 365 * 24 * 3600
MAX_HEADER = 200


def _partners(request: Request) -> dict[str, str]:
    return dict(request.app.state.settings.handoff_partners)


def _header(request: Request, name: str) -> str:
    return request.headers.get(name, "")[:MAX_HEADER]


async def api_handoff(request: Request):
    """POST /api/handoff: {"id_number": "…", "lang"?: "zh"|"en"}, signed by a partner; the answer
    as JSON (README: "The city health platform's hand-off")."""
    partners = _partners(request)
    if not partners:
        return JSONResponse({"error": "not_found"}, status_code=404)
    call = handoff.Call(
        method=request.method, path=request.url.path, partner=_header(request, "x-partner"),
        timestamp=_header(request, "x-timestamp"), nonce=_header(request, "x-nonce"),
        signature=_header(request, "x-signature"), body=await request.body(),
        address=client_address(request))
    answer = await handoff.hand_off(district(request), partners, call, request.app.state.limits)
    headers = {"Retry-After": "60"} if answer.status == 429 else None
    return JSONResponse(answer.body, status_code=answer.status, headers=headers)


async def open_handoff(request: Request):
    """GET /h/{token}: use up the one-time address, start the journey as verified (the ID check
    is skipped here only: the partner verified the person) and go on to choose a site."""
    if not _partners(request):
        return resident.link_invalid(request)
    limits, address = request.app.state.limits, client_address(request)
    hit = await limits.hit("open_link", address_key(address))  # before the token is looked up
    if not hit:
        return resident.slow_down(request, hit)
    opened = await handoff.open_ticket(district(request), request.path_params["token"],
                                       address=address)
    if opened is None:
        return resident.link_invalid(request)
    await limits.give_back(hit)  # a good one-time address: only failures stay counted
    journey = Journey(request.session)
    journey.start(opened.link_id)
    journey.mark_verified()
    journey.handed_off()
    response = see_other(url_for(request, "site" if opened.may_choose else "booking"))
    if opened.lang in i18n.LANGUAGES:
        response.set_cookie(i18n.LANG_COOKIE, opened.lang, max_age=YEAR, httponly=True,
                            samesite="lax", secure=request.app.state.settings.https)
    return response
