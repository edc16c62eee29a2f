"""The site check-in console: today's bookings at the door, look-up, check-in, end of day (rule 10).

A site account works at its own site only: asking for another site's page or posting another
site's code or booking id is a 403 page, audited as `out_of_area` (web/scoping.py). Looking a
code or ID number up at the door shows only the site's own bookings for today: anything else is
one answer, "not a booking here today" (models/operations/checkin.py: ELSEWHERE), with nothing
of where, when or who. An admin picks any site and sees the detailed reasons.

Look-ups are counted per account before anything is looked up (RATE_LIMIT_SITE_LOOKUP,
RATE_LIMIT_SITE_LOOKUP_HOUR: past either, 429 with Retry-After), and audited one by one up to
LOOKUPS_AUDITED_PER_HOUR an hour; beyond, one audit row per SUMMARY_EVERY look-ups with the
hour's count, so a script cannot fill the audit trail (issue 21, finding 6).

Same-day leftovers (issue 24): at the end of a clinic day, with doses already drawn, the site says
"N places left today until HH:MM", reads it back ("send N waiting-list offers"), and the service
offers them at once, with the short hold, to the people on the waiting list who accept the site,
in the list's order (models/booking/waitlist.py: leftovers). The page then follows how many are
waiting for an answer and how many have accepted, refreshing itself (a meta refresh: no script).
"""
from __future__ import annotations

import datetime as dt
import re

from starlette.requests import Request
from starlette.routing import Route

from models.booking import waitlist
from models.booking.waitlist import LeftoverError
from models.db.tables import Site, StaffUser
from models.operations import checkin
from models.operations.imports.csvfile import LONG_NUMBER
from models.operations.imports.sites import SITE_CODE
from models.people.pii import mask_name
from models.staff.scope import OutsideArea
from ..http import district, parse_id, parse_text, see_other, url_for
from ..refusals import PageRefusal
from ..scoping import area_of, refuse_outside
from ..staff_auth import SITE, current_staff, record, staff_only
from ..templating import render

FLASH = "site_flash"  # what the page after a 303 says was done: {"checked_in": id} or {"no_shows": n}
SITE_LOOKUP, SITE_LOOKUP_HOUR = "site_lookup", "site_lookup_hour"  # web/settings.py: the limits
LOOKUPS_AUDITED_PER_HOUR = 200  # per account and clock hour: about a busy site's honest hour
SUMMARY_EVERY = 20  # beyond them, one audit row (`site_lookups_counted`) per this many
LEFTOVERS_MOST = 500  # leftover places offered at once: models/booking/waitlist.py leftovers()' bound
REFRESH_SECONDS = 20  # how often the leftovers page follows the answers while it is watched
CLOCK_TIME = re.compile(r"([01]?[0-9]|2[0-3])[:：]([0-5][0-9])")  # 17:00, 9:30, or with a full-width colon


async def _site(request: Request, user: StaffUser, code) -> Site | None:
    """The site worked at: a site account's own (another site's code is refused: 403, audited);
    an admin's choice; None when there is none to work at."""
    code = parse_text(code, 32)
    if user.role == "site":
        if code and (user.site is None or code != user.site.code):
            shown = code if SITE_CODE.match(code) and not LONG_NUMBER.search(code) else "?"
            raise PageRefusal(await refuse_outside(request, detail=f"site={shown}"))  # never a number typed
        return user.site
    return await checkin.site_by_code(code)


def _home(request: Request, user: StaffUser, site: Site) -> str:
    if user.role == "site":
        return url_for(request, "site_home")
    return url_for(request, "site_home", site=site.code)


async def _choose(request: Request, user: StaffUser, code: str = ""):
    """An admin first picks a site (a site account without one can only ask for it)."""
    sites = await checkin.open_sites() if user.role == "admin" else []
    return render(request, "pages/staff/site/choose.html",
                  {"staff": user, "sites": sites, "unknown": code}, status=404 if code else 200)


async def _flash(request: Request) -> dict | None:
    note = request.session.pop(FLASH, None)
    if note and note.get("checked_in"):
        booking = await checkin.booking_with_resident(parse_id(note["checked_in"]) or 0)
        return {"checked_in": booking} if booking else None
    return note


async def _page(request: Request, user: StaffUser, site: Site, *, status: int = 200,
                headers: dict[str, str] | None = None, **extra):
    """The console page (or, for htmx, only its look-up panel)."""
    today = district(request).clock.today()
    rows = await checkin.todays_bookings(site.id, today)
    return render(request, "pages/staff/site/checkin.html", {
        "staff": user, "site": site, "today": today, "rows": rows, "counts": checkin.count(rows),
        "home": _home(request, user, site), "mask_name": mask_name, **extra,
    }, status=status, fragment="fragments/_site_lookup.html", headers=headers)


async def _refused(request: Request, site: Site, found: checkin.Finding) -> None:
    await record(request, "check_in_refused", resident=found.resident_id,
                 detail=f"{found.refusal} {found.shown_as} site={site.code}")


async def _count_lookup(request: Request, user: StaffUser) -> tuple[int, int]:
    """Count one look-up against the account's limits before anything is looked up (an atomic
    hit-then-check, web/limits.py), from whatever address: (the account's look-ups this clock
    hour, this one included; 0 when the counters' store is away) when it may go ahead, or
    (0, seconds to wait) when refused. The one place the console talks to the limits."""
    limits = request.app.state.limits
    key = f"staff:{user.id}"
    hits = await limits.hit_all([(SITE_LOOKUP, key), (SITE_LOOKUP_HOUR, key)])
    if all(hits):
        return hits[1].count, 0
    if await limits.audit_quota("site_lookup_throttled", key):  # capped like every noisy refusal
        await record(request, "site_lookup_throttled", detail=f"{user.username}")
    return 0, max(hit.retry_after for hit in hits if not hit)


async def _audit_lookup(request: Request, site: Site, found: checkin.Finding, count: int) -> None:
    """One audit row per look-up up to LOOKUPS_AUDITED_PER_HOUR in the hour; then one row with
    the hour's count at the first beyond and every SUMMARY_EVERY after."""
    if count <= LOOKUPS_AUDITED_PER_HOUR:
        if found.refusal:
            await _refused(request, site, found)
        else:
            await record(request, "check_in_lookup", resident=found.resident_id,
                         detail=f"{found.shown_as} site={site.code}")
        return
    beyond = count - LOOKUPS_AUDITED_PER_HOUR
    if beyond == 1 or beyond % SUMMARY_EVERY == 0:
        await record(request, "site_lookups_counted",
                     detail=f"{count} look-ups this hour site={site.code}: the first "
                            f"{LOOKUPS_AUDITED_PER_HOUR} itemised, then counted every {SUMMARY_EVERY}")


@staff_only(*SITE)
async def site_home(request: Request):
    """GET /staff/site: today's bookings at the site, the look-up box, end of day."""
    user = await current_staff(request)
    code = parse_text(request.query_params.get("site"), 32)
    site = await _site(request, user, code)
    if site is None:
        return await _choose(request, user, code)
    return await _page(request, user, site, flash=await _flash(request))


async def _posted(request: Request):
    """(user, form, site) of a console POST; site is None when there is none to work at (another
    site's is refused, see _site)."""
    user = await current_staff(request)
    form = await request.form()
    return user, form, await _site(request, user, form.get("site"))


@staff_only(*SITE)
async def site_lookup(request: Request):
    """POST /staff/site/lookup: a booking code or an ID number -> the booking, or why not."""
    user, form, site = await _posted(request)
    if site is None:
        return see_other(url_for(request, "site_home"))
    query = parse_text(form.get("q"), 64)
    count, wait = await _count_lookup(request, user)
    if wait:
        return await _page(request, user, site, error="throttled", wait_minutes=-(-wait // 60),
                           status=429, headers={"Retry-After": str(wait)})
    try:
        d = district(request)
        found = await checkin.find(d.vault, query, site.id, d.clock.today(), area=await area_of(request))
    except checkin.BadDoorQuery as exc:
        return await _page(request, user, site, error=exc.reason, query=query, status=422)
    await _audit_lookup(request, site, found, count)
    return await _page(request, user, site, found=found, status=422 if found.refusal else 200)


@staff_only(*SITE)
async def site_check_in(request: Request):
    """POST /staff/site/check-in: check the person in and record their second dose."""
    user, form, site = await _posted(request)
    if site is None:
        return see_other(url_for(request, "site_home"))
    booking_id = parse_id(form.get("booking"))
    try:
        found = await checkin.check_in(booking_id, site.id, district(request).clock.today(),
                                       area=await area_of(request))
    except OutsideArea as exc:  # another site's booking: nothing about it is shown
        return await refuse_outside(request, exc.resident_id, detail=f"booking={booking_id} site={site.code}")
    if found.refusal:
        await _refused(request, site, found)
        return await _page(request, user, site, found=found, status=422)
    await record(request, "check_in", resident=found.resident,
                 detail=f"{found.shown_as} site={site.code}")
    request.session[FLASH] = {"checked_in": found.booking.id}
    return see_other(_home(request, user, site))


@staff_only(*SITE)
async def site_close(request: Request):
    """GET /staff/site/close: confirm the end of the day; POST: mark who did not come as no-shows."""
    user = await current_staff(request)
    source = await request.form() if request.method == "POST" else request.query_params
    site = await _site(request, user, source.get("site"))
    if site is None:
        return see_other(url_for(request, "site_home"))
    now = district(request).clock.now()
    today = now.date()
    if request.method == "POST":
        count = await checkin.mark_no_shows(site.id, today)
        await record(request, "no_shows", detail=f"{count} site={site.code} day={today.isoformat()}")
        request.session[FLASH] = {"no_shows": count}
        return see_other(_home(request, user, site))
    counts = checkin.count(await checkin.todays_bookings(site.id, today))
    last_end = await checkin.last_window_end(site.id, today)
    return render(request, "pages/staff/site/close.html", {
        "staff": user, "site": site, "today": today, "counts": counts, "home": _home(request, user, site),
        "last_end": last_end if last_end and now.strftime("%H:%M") < last_end else None,
    })


# ---- same-day leftovers


def _site_params(user: StaffUser, site: Site) -> dict:
    """The query a console address needs: an admin names the site, a site account has one."""
    return {} if user.role == "site" else {"site": site.code}


def _leftover_answers(count_text: str, until_text: str, now: dt.datetime, minutes: int) -> tuple[int, str]:
    """The places left and the time the site stops, as typed, checked the way the service checks
    them (a count from 1 to LEFTOVERS_MOST; a time of day still far enough ahead for the hold
    and the journey): (count, "HH:MM"); else LeftoverError with code count, until or late."""
    if not re.fullmatch(r"[0-9]{1,4}", count_text) or not 1 <= int(count_text) <= LEFTOVERS_MOST:
        raise LeftoverError("count")
    found = CLOCK_TIME.fullmatch(until_text)
    if found is None:
        raise LeftoverError("until")
    until = f"{int(found.group(1)):02d}:{found.group(2)}"
    waitlist.leftover_window(now, until, minutes)  # LeftoverError("late") when it is too late today
    return int(count_text), until


async def _leftovers_page(request: Request, user: StaffUser, site: Site, *, status: int = 200, **extra):
    """Today's leftover offers at the site (per window: waiting for an answer, accepted), and the
    form that offers more; while watched (?watch=1) only the figures, refreshing themselves."""
    d = district(request)
    now = d.clock.now()
    windows = await waitlist.leftovers_today(site.id, now)
    return render(request, "pages/staff/site/leftovers.html", {
        "staff": user, "site": site, "today": now.date(), "windows": windows,
        "open": sum(w[1] for w in windows), "taken": sum(w[2] for w in windows),
        "params": _site_params(user, site), "home": _home(request, user, site),
        "minutes": d.same_day_offer_minutes, "refresh": REFRESH_SECONDS, "most": LEFTOVERS_MOST, **extra,
    }, status=status)


@staff_only(*SITE)
async def site_leftovers(request: Request):
    """GET /staff/site/leftovers: today's leftover offers and how many accepted (?watch=1: the
    figures alone, refreshing every REFRESH_SECONDS); the form "N places left today until HH:MM"."""
    user = await current_staff(request)
    q = request.query_params
    site = await _site(request, user, q.get("site"))
    if site is None:
        return see_other(url_for(request, "site_home"))
    typed = {"count": parse_text(q.get("count"), 8), "until": parse_text(q.get("until"), 8)}  # "change"
    return await _leftovers_page(request, user, site, watch=q.get("watch") == "1", typed=typed,
                                 flash=await _flash(request))


@staff_only(*SITE)
async def site_leftovers_check(request: Request):
    """GET /staff/site/leftovers/check?count=&until=: the answers read back, and the button that
    sends the offers, saying how many; a mistake back on the form with what was typed."""
    user = await current_staff(request)
    q = request.query_params
    site = await _site(request, user, q.get("site"))
    if site is None:
        return see_other(url_for(request, "site_home"))
    d = district(request)
    typed = {"count": parse_text(q.get("count"), 8), "until": parse_text(q.get("until"), 8)}
    try:
        count, until = _leftover_answers(typed["count"], typed["until"], d.clock.now(), d.same_day_offer_minutes)
    except LeftoverError as exc:
        return await _leftovers_page(request, user, site, status=422, error=exc.code, typed=typed)
    start, _end = waitlist.leftover_window(d.clock.now(), until, d.same_day_offer_minutes)
    return render(request, "pages/staff/site/leftovers_check.html", {
        "staff": user, "site": site, "count": count, "until": until, "start": start,
        "minutes": d.same_day_offer_minutes, "params": _site_params(user, site),
    })


@staff_only(*SITE)
async def site_leftovers_send(request: Request):
    """POST /staff/site/leftovers: offer the leftover places to the waiting list now; audited
    (the count, the time and how many offers went out); 303 to the page that follows them."""
    user, form, site = await _posted(request)
    if site is None:
        return see_other(url_for(request, "site_home"))
    d = district(request)
    typed = {"count": parse_text(form.get("count"), 8), "until": parse_text(form.get("until"), 8)}
    try:
        count, until = _leftover_answers(typed["count"], typed["until"], d.clock.now(), d.same_day_offer_minutes)
        made = await waitlist.leftovers(d, site, count, until)
    except LeftoverError as exc:
        return await _leftovers_page(request, user, site, status=422, error=exc.code, typed=typed)
    await record(request, "leftovers", detail=f"{count} left until {until} site={site.code}: {made.offered} offered")
    request.session[FLASH] = {"leftovers": count, "offered": made.offered}
    return see_other(url_for(request, "site_leftovers", watch=1, **_site_params(user, site)))


ROUTES = [
    Route("/staff/site", site_home, name="site_home"),
    Route("/staff/site/lookup", site_lookup, methods=["POST"], name="site_lookup"),
    Route("/staff/site/check-in", site_check_in, methods=["POST"], name="site_check_in"),
    Route("/staff/site/close", site_close, methods=["GET", "POST"], name="site_close"),
    Route("/staff/site/leftovers", site_leftovers, name="site_leftovers"),
    Route("/staff/site/leftovers", site_leftovers_send, methods=["POST"], name="site_leftovers_send"),
    Route("/staff/site/leftovers/check", site_leftovers_check, name="site_leftovers_check"),
]
