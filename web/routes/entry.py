"""The public way in, for people without a personal link: phone number -> SMS code -> everyone on
that phone -> the chosen person's ID number -> the same journey as the SMS link. Also: a booking
found by its code and ID number, and the printable poster with the QR code of this way in.

Each handler parses, calls one function of models/channels/entry.py, and renders. Answers never
depend on whether a number is registered (the service sees to that; the pages only word it).
"""
from __future__ import annotations

import datetime as dt

from starlette.requests import Request

from models import metrics
from models.channels import entry
from .. import i18n, poster
from ..http import client_address, district, parse_id, parse_text, see_other, url_for
from ..journey import Journey
from ..limits import address_key
from ..templating import render

MAX_PHONE = 32  # "+86 138 1234 5678" and its full-width spellings fit
MAX_CODE = 16
MAX_ID = 64
MAX_BOOKING_CODE = 32
# Each limited step takes its hit (web/limits.py) before the code, number or booking is
# checked; a good answer, or one that checked nothing, gives it back.
CODE_COUNTED = ("wrong", "too_many")  # wrong codes stay counted


def _now(request: Request) -> dt.datetime:
    return district(request).clock.now()


def _limits(request: Request):
    """The rate limits, and this client's address as they count it (IPv6: its /64)."""
    return request.app.state.limits, address_key(client_address(request))


def slow_down(request: Request, hit):
    """429: too many from this address (a refused hit); the page and Retry-After say when to
    come back."""
    wait = hit.retry_after
    return render(request, "pages/entry/slow_down.html", {"minutes": max((wait + 59) // 60, 1)},
                  status=429, headers={"Retry-After": str(wait)})


def _phone_page(request: Request, *, error: str = "", typed: str = "", status: int = 200):
    journey = Journey(request.session)
    return render(request, "pages/entry/phone.html", {
        "error": error, "typed": typed, "on_phone": journey.on_phone(_now(request)),
    }, status=status)


def _sms_cap_page(request: Request, journey: Journey, refused: entry.EntryRefused):
    """429: the number has had all the SMS it may be sent on demand for now (whoever asks, and
    whether it is registered or not); the page and Retry-After say when. A code already sent
    may still be typed, so the code page stays within reach."""
    journey.await_code(refused.sent.sealed_phone, refused.sent.masked_phone)
    metrics.refused("sms_number")
    caps = district(request).sms_caps
    wait = max(int((refused.until - _now(request)).total_seconds() + 0.999), 1)
    return render(request, "pages/entry/sms_cap.html", {
        "until": refused.until, "per_hour": caps.per_hour, "per_day": caps.per_day,
        "minutes": entry.CODE_MINUTES,
    }, status=429, headers={"Retry-After": str(wait)})


async def _send_code(request: Request, phone_text: str):
    """Ask for a code (counted per address, before anything is queued: each may cost an SMS)
    and go to the code page. A request that queued nothing (a mistyped number, a code sent
    less than a minute ago, the number's SMS cap) gives its count back."""
    limits, address = _limits(request)
    hit = await limits.hit("sms_code", address)
    if not hit:
        return slow_down(request, hit)
    journey = Journey(request.session)
    lang = i18n.choose_language(request.cookies.get(i18n.LANG_COOKIE))
    try:
        sent = await entry.request_code(district(request), phone_text, now=_now(request), lang=lang)
    except entry.EntryRefused as exc:
        await limits.give_back(hit)
        if exc.reason == "sms_cap":
            return _sms_cap_page(request, journey, exc)
        if exc.reason != "wait":  # "phone": a mistyped number, kept in the form to correct
            return _phone_page(request, error=exc.reason, typed=phone_text, status=422)
        sent = exc.sent  # a code went out less than a minute ago: that one is on its way
        journey.await_code(sent.sealed_phone, sent.masked_phone)
        return see_other(url_for(request, "entry_code", wait=exc.wait))
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
               wait: int = 0, typed: str = "", status: int = 200):
    return render(request, "pages/entry/code.html", {
        "phone": journey.code_masked, "error": error, "tries_left": tries_left, "wait": wait,
        "typed": typed,
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
    limits, address = _limits(request)
    hit = await limits.hit("entry", address)
    if not hit:
        return slow_down(request, hit)
    form = await request.form()
    code_text = parse_text(form.get("code"), MAX_CODE)
    try:
        login = await entry.check_code(d, phone, code_text, now=_now(request))
    except entry.EntryRefused as exc:
        if exc.reason not in CODE_COUNTED:
            await limits.give_back(hit)
        # A mistyped or wrong code stays in the form to correct; a dead one (used, expired,
        # too many tries) does not: a new code is needed.
        typed = code_text if exc.reason in ("code_format", "wrong") else ""
        return _code_page(request, journey, error=exc.reason, tries_left=exc.tries_left,
                          typed=typed, status=422)
    await limits.give_back(hit)
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


def _person_page(request: Request, member: entry.Member, *, error: str = "", typed: str = "",
                 tries_left: int = 0, until: dt.datetime | None = None, status: int = 200):
    d = district(request)
    return render(request, "pages/entry/person.html", {
        "member": member, "error": error, "tries_left": tries_left, "locked_until": until,
        "typed": typed,  # the ID number as typed: only in this POST's answer, to correct it
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
    id_text = parse_text(source.get("id_number"), MAX_ID)
    try:
        entry.check_id(id_text)  # a typo is not a guess: refused before anything is counted
    except entry.EntryRefused as exc:
        return _person_page(request, member, error=exc.reason, typed=id_text, status=422)
    # Counted against the asker, before the number is compared: this address, and this phone
    # asking for this person. Never the person's own link: their SMS link stays open.
    limits, address = _limits(request)
    person = ("entry_person", phone_hash, str(member.resident_id))
    by_address, by_person = await limits.hit_all([("verify", address), person])
    if not by_address:
        return slow_down(request, by_address)
    now = _now(request)
    if not by_person:
        return _person_page(request, member, error="locked", status=422,
                            until=now + dt.timedelta(seconds=by_person.retry_after))
    try:
        link = await entry.enter_as(d, phone_hash, member.resident_id, id_text, now=now)
    except entry.EntryRefused as exc:
        if exc.reason != "mismatch":
            await limits.give_back(by_address, by_person)
            return _person_page(request, member, error=exc.reason, typed=id_text, status=422)
        left = limits.rules["entry_person"].amount - by_person.count
        if left > 0:
            return _person_page(request, member, error="mismatch", tries_left=left,
                                typed=id_text, status=422)
        wait = await limits.retry_after(*person)
        return _person_page(request, member, error="locked", status=422,
                            until=now + dt.timedelta(seconds=wait))
    await limits.give_back(by_address, by_person)
    journey.start(link.id)
    journey.mark_verified()
    return see_other(url_for(request, "booking"))


async def entry_leave(request: Request):
    """POST /entry/leave: forget the proved phone (a shared phone, a community centre's tablet)."""
    Journey(request.session).end()
    return see_other(url_for(request, "start"))


def _code_letters() -> dict:
    """What the booking-code hint and error say a code is made of (models/booking_codes.py)."""
    return {"code_digits": entry.CODE_DIGITS_USED, "code_never": entry.CODE_LETTERS_NEVER}


async def find_booking(request: Request):
    """GET/POST /find: a booking by its code and the ID number -> the booking page, where it is
    seen, moved or cancelled."""
    if request.method != "POST":
        return render(request, "pages/entry/find.html", _code_letters())
    form = await request.form()
    code_text = parse_text(form.get("booking_code"), MAX_BOOKING_CODE)
    id_text = parse_text(form.get("id_number"), MAX_ID)
    now = _now(request)

    def page(error: str, until: dt.datetime | None = None):
        # What was typed stays in the form (the ID number only in this POST's answer: never in
        # a URL, the session or a log), so one wrong character is one character to fix.
        return render(request, "pages/entry/find.html", {
            "error": error, "locked_until": until, "typed_code": code_text, "typed_id": id_text,
            **_code_letters(),
        }, status=422)

    try:
        code = entry.find_key(code_text, id_text)  # typos are refused before anything counts
    except entry.EntryRefused as exc:
        return page(exc.reason)
    # Counted against the asker before anything is looked up: this address, and this booking
    # code, whether it exists or not (the same answers, the same work, for real and made-up
    # codes). Never the resident's link: their SMS link and phone entry stay open.
    limits, address = _limits(request)
    by_address, by_code = await limits.hit_all([("entry", address), ("find_code", code)])
    if not by_address:
        return slow_down(request, by_address)
    if not by_code:
        return page("locked", now + dt.timedelta(seconds=by_code.retry_after))
    try:
        link = await entry.find_booking(district(request), code_text, id_text, now=now)
    except entry.EntryRefused as exc:
        return page(exc.reason)
    await limits.give_back(by_address, by_code)
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
