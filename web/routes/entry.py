"""The public way in, for people without a personal link: phone number -> SMS code -> everyone on
that phone -> the chosen person's ID number -> the same journey as the SMS link. Also: a booking
found by its code and ID number, and the printable poster with the QR code of this way in.

Each handler parses, calls one function of models/people/entry.py, and renders. Answers never
depend on whether a number is registered (the service sees to that; the pages only word it).
"""
from __future__ import annotations

import datetime as dt

from starlette.requests import Request

from models.people import entry
from .. import i18n, poster
from ..http import client_address, district, parse_id, parse_text, see_other, url_for
from ..journey import Journey
from ..templating import render

MAX_PHONE = 32  # "+86 138 1234 5678" and its full-width spellings fit
MAX_CODE = 16
MAX_ID = 64
MAX_BOOKING_CODE = 32
ID_COUNTED = ("mismatch", "locked")  # a mistyped ID number is not a guess: it does not count


def _now(request: Request) -> dt.datetime:
    return district(request).clock.now()


def slow_down(request: Request, limit: str, address: str):
    """429: too many from this address; the page and Retry-After say when to come back."""
    wait = request.app.state.limits.retry_after(limit, address)
    return render(request, "pages/entry/slow_down.html", {"minutes": max((wait + 59) // 60, 1)},
                  status=429, headers={"Retry-After": str(wait)})


def _phone_page(request: Request, *, error: str = "", status: int = 200):
    journey = Journey(request.session)
    return render(request, "pages/entry/phone.html", {
        "error": error, "on_phone": journey.on_phone(_now(request)),
    }, status=status)


async def _send_code(request: Request, phone_text: str):
    """Ask for a code (counted per address: each may cost an SMS) and go to the code page."""
    limits, address = request.app.state.limits, client_address(request)
    if not limits.allowed("sms_code", address):
        return slow_down(request, "sms_code", address)
    journey = Journey(request.session)
    lang = i18n.choose_language(request.cookies.get(i18n.LANG_COOKIE))
    try:
        sent = await entry.request_code(district(request), phone_text, now=_now(request), lang=lang)
    except entry.EntryRefused as exc:
        if exc.reason != "wait":
            return _phone_page(request, error=exc.reason, status=422)
        sent = exc.sent  # a code went out less than a minute ago: that one is on its way
        journey.await_code(sent.sealed_phone, sent.masked_phone)
        return see_other(url_for(request, "entry_code", wait=exc.wait))
    limits.fail("sms_code", address)
    journey.await_code(sent.sealed_phone, sent.masked_phone)
    return see_other(url_for(request, "entry_code"))


async def entry_start(request: Request):
    """GET /entry: the phone number form (the poster's QR code leads here). POST: send a code."""
    if request.method == "POST":
        form = await request.form()
        return await _send_code(request, parse_text(form.get("phone"), MAX_PHONE))
    return _phone_page(request)


async def entry_resend(request: Request):
    """POST /entry/resend: another code to the same number (one a minute)."""
    phone = entry.unseal_phone(district(request), Journey(request.session).sealed_phone)
    if phone is None:
        return see_other(url_for(request, "entry"))
    return await _send_code(request, phone)


def _code_page(request: Request, journey: Journey, *, error: str = "", tries_left: int = 0,
               wait: int = 0, status: int = 200):
    return render(request, "pages/entry/code.html", {
        "phone": journey.code_masked, "error": error, "tries_left": tries_left, "wait": wait,
        "minutes": entry.CODE_MINUTES, "max_tries": entry.MAX_TRIES,
        "resend_seconds": entry.RESEND_SECONDS,
    }, status=status)


async def entry_code(request: Request):
    """GET /entry/code: "we sent a code to 138****5678", the code form. POST: check the code."""
    journey = Journey(request.session)
    d = district(request)
    phone = entry.unseal_phone(d, journey.sealed_phone)
    if phone is None:
        return see_other(url_for(request, "entry"))
    if request.method != "POST":
        wait = parse_id(request.query_params.get("wait")) or 0
        return _code_page(request, journey, error="wait" if wait else "",
                          wait=min(wait, entry.RESEND_SECONDS))
    limits, address = request.app.state.limits, client_address(request)
    if not limits.allowed("entry", address):
        return slow_down(request, "entry", address)
    form = await request.form()
    try:
        login = await entry.check_code(d, phone, parse_text(form.get("code"), MAX_CODE),
                                       now=_now(request))
    except entry.EntryRefused as exc:
        if exc.reason in ("wrong", "too_many"):
            limits.fail("entry", address)
        return _code_page(request, journey, error=exc.reason, tries_left=exc.tries_left, status=422)
    journey.phone_proved(login.login_id, login.valid_until)
    return see_other(url_for(request, "entry_family"))


async def _phone_hash(request: Request, journey: Journey) -> str | None:
    return await entry.phone_session(journey.phone_login, now=_now(request))


async def entry_family(request: Request):
    """GET /entry/family: everyone registered with the proved phone, each to book separately."""
    journey = Journey(request.session)
    phone_hash = await _phone_hash(request, journey)
    if phone_hash is None:
        journey.leave_phone()
        return see_other(url_for(request, "entry"))
    return render(request, "pages/entry/family.html", {
        "members": await entry.family(district(request), phone_hash),
        "until": journey.phone_until,
    })


def _person_page(request: Request, member: entry.Member, *, error: str = "",
                 tries_left: int = 0, until: dt.datetime | None = None, status: int = 200):
    d = district(request)
    return render(request, "pages/entry/person.html", {
        "member": member, "error": error, "tries_left": tries_left, "locked_until": until,
        "max_failures": d.verify_max_failures, "lock_minutes": d.verify_lock_minutes,
    }, status=423 if error == "locked" else status)


async def entry_person(request: Request):
    """GET /entry/person?r=ID: the chosen person's ID number form. POST: into their journey,
    verified, as if they had opened their SMS link and typed it there."""
    journey = Journey(request.session)
    phone_hash = await _phone_hash(request, journey)
    if phone_hash is None:
        journey.leave_phone()
        return see_other(url_for(request, "entry"))
    d = district(request)
    source = await request.form() if request.method == "POST" else request.query_params
    member = await entry.member(d, phone_hash, parse_id(source.get("r")))
    if member is None:
        return see_other(url_for(request, "entry_family"))
    if request.method != "POST":
        return _person_page(request, member)
    limits, address = request.app.state.limits, client_address(request)
    if not limits.allowed("verify", address):
        return slow_down(request, "verify", address)
    try:
        link = await entry.enter_as(d, phone_hash, member.resident_id,
                                    parse_text(source.get("id_number"), MAX_ID), now=_now(request))
    except entry.EntryRefused as exc:
        if exc.reason in ID_COUNTED:
            limits.fail("verify", address)
        return _person_page(request, member, error=exc.reason, tries_left=exc.tries_left,
                            until=exc.until, status=422)
    journey.start(link.id)
    journey.mark_verified()
    return see_other(url_for(request, "booking"))


async def entry_leave(request: Request):
    """POST /entry/leave: forget the proved phone (a shared phone, a community centre's tablet)."""
    Journey(request.session).end()
    return see_other(url_for(request, "start"))


async def find_booking(request: Request):
    """GET/POST /find: a booking by its code and the ID number -> the booking page, where it is
    seen, moved or cancelled."""
    if request.method != "POST":
        return render(request, "pages/entry/find.html", {})
    limits, address = request.app.state.limits, client_address(request)
    if not limits.allowed("entry", address):
        return slow_down(request, "entry", address)
    form = await request.form()
    try:
        link = await entry.find_booking(
            district(request), parse_text(form.get("booking_code"), MAX_BOOKING_CODE),
            parse_text(form.get("id_number"), MAX_ID), now=_now(request))
    except entry.EntryRefused as exc:
        if exc.reason in ("not_found", "locked"):
            limits.fail("entry", address)
        return render(request, "pages/entry/find.html", {"error": exc.reason, "locked_until": exc.until},
                      status=422)
    journey = Journey(request.session)
    journey.start(link.id)
    journey.mark_verified()
    return see_other(url_for(request, "booking"))


async def poster_page(request: Request):
    """GET /poster: the A4 poster to print (the QR code of /entry and the three ways to book)."""
    lang = i18n.choose_language(request.cookies.get(i18n.LANG_COOKIE))
    address = district(request).base_url.rstrip("/") + url_for(request, "entry")
    return render(request, "pages/entry/poster.html", {
        "poster": poster.poster_svg(address, lang), "address": address,
    })
