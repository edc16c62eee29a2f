"""Closing a day or a window: how many bookings it touches, then a bulk move or cancellation.

The preview has one target picker (sites and days with free places) and buttons that say in
numbers what they will do; each confirm form carries the digest of the numbers it showed, and the
run recomputes them: a mismatch shows the preview again and changes nothing."""
from __future__ import annotations

from starlette.requests import Request
from starlette.routing import Route

from models.operations import closing
from models.operations.closing import ClosingError
from ...http import district, parse_day, parse_id, parse_text, see_other, url_for
from ...staff_auth import ADMIN, current_staff, record, staff_only
from ...templating import render

MODES = ("move", "cancel")
LOOK = "look"  # the picker's own button: show the numbers for the target chosen


async def _page(request: Request, page: str, context: dict, *, status: int = 200, fragment: str | None = None):
    return render(request, f"pages/admin/{page}", {
        "staff": await current_staff(request), "sites": await closing.sites(), **context,
    }, status=status, fragment=fragment)


def _asked(source) -> dict:
    """The closure as typed: site id, day, start (blank: the whole day), reason; the target as
    picked, "site_id:YYYY-MM-DD" (closing.Choice.key)."""
    to = parse_text(source.get("to"), 24)
    to_site, _, to_day = to.partition(":")
    return {"site": parse_id(source.get("site")), "day": parse_day(source.get("day")),
            "start": parse_text(source.get("start"), 10), "reason": parse_text(source.get("reason"), 200),
            "to": to, "to_site": parse_id(to_site), "to_day": parse_day(to_day)}


async def _closure(request: Request, asked: dict) -> closing.Closure:
    return await closing.closure(await closing.site_by_id(asked["site"]), asked["day"],
                                 asked["start"], asked["reason"], today=district(request).clock.today())


async def _target(request: Request, c: closing.Closure, asked: dict) -> closing.Target:
    return await closing.target(c, await closing.site_by_id(asked["to_site"]), asked["to_day"],
                                now=district(request).clock.now())


@staff_only(*ADMIN)
async def admin_closing(request: Request):
    """GET /admin/closing: which site, day (and window) to close, and why."""
    return await _page(request, "closing.html", {"asked": _asked(request.query_params), "error": None})


async def _plan(request: Request, c: closing.Closure, target: closing.Target | None) -> closing.Plan:
    d = district(request)
    return await closing.plan(c, target, rules=d.rules, now=d.clock.now())


async def _preview_page(request: Request, c: closing.Closure, asked: dict, *,
                        error: ClosingError | None = None, status: int = 200):
    """The closure's counts, the picker, and what each button would do now."""
    move_plan = None
    if asked["to"]:
        try:
            move_plan = await _plan(request, c, await _target(request, c, asked))
        except ClosingError as exc:
            if error is None:
                error, status = exc, 422
    choices = await closing.choices(c, now=district(request).clock.now())
    return await _page(request, "closing_preview.html", {
        "preview": await closing.preview(c), "asked": asked, "error": error, "choices": choices,
        "move_plan": move_plan, "cancel_plan": await _plan(request, c, None),
    }, status=status, fragment="pages/admin/closing_plan.html")


@staff_only(*ADMIN)
async def admin_closing_preview(request: Request):
    """GET ?site=&day=&start=&reason=[&to_site=&to_day=]: how many bookings (and people) the
    closure touches; with a target, how many would be moved and how many cancelled."""
    asked = _asked(request.query_params)
    try:
        c = await _closure(request, asked)
    except ClosingError as exc:
        return await _page(request, "closing.html", {"asked": asked, "error": exc}, status=422)
    return await _preview_page(request, c, asked)


@staff_only(*ADMIN)
async def admin_closing_run(request: Request):
    """POST site, day, start, reason, mode=move (to) | cancel, digest: close the windows and move
    or cancel each booking on them, only if the numbers are still those the button showed; 303 to
    the counts. mode=look: 303 to the preview of the target picked."""
    form = await request.form()
    asked = _asked(form)
    mode = parse_text(form.get("mode"), 10)
    try:
        c = await _closure(request, asked)
    except ClosingError as exc:
        return await _page(request, "closing.html", {"asked": asked, "error": exc}, status=422)
    if mode == LOOK:
        return see_other(url_for(request, "admin_closing_preview", site=c.site.id, day=c.day.isoformat(),
                                 start=c.start, reason=c.reason, to=asked["to"] or None))
    try:
        if mode not in MODES:
            raise ClosingError("mode")
        move_to = await _target(request, c, asked) if mode == "move" else None
        plan = await _plan(request, c, move_to)
        if parse_text(form.get("digest"), 64) != plan.digest:
            return await _preview_page(request, c, asked, error=ClosingError("changed"), status=409)
        if move_to and not plan.moved:
            raise ClosingError("to_none", "to")
        result = await closing.close(district(request), c, move_to=move_to)
    except ClosingError as exc:
        return await _preview_page(request, c, asked, error=exc, status=422)
    where = f" -> {move_to.site.code} {move_to.day}" if move_to else " (cancel all)"
    await record(request, "close_window", detail=(
        f"{c}{where}: {result.moved} moved, {result.cancelled} cancelled, {result.gone} changed meanwhile, "
        f"{result.closed} window(s) closed"))
    return see_other(url_for(request, "admin_closing_done", site=c.site.id, day=c.day.isoformat(),
                             start=c.start or None, moved=result.moved, cancelled=result.cancelled,
                             gone=result.gone, closed=result.closed))


@staff_only(*ADMIN)
async def admin_closing_done(request: Request):
    """GET ?site=&day=&start=&moved=&cancelled=&gone=&closed=: what the closure did, and what is
    left on the closed windows now (nothing, unless it was stopped half-way: run it again)."""
    q = request.query_params
    site = await closing.site_by_id(parse_id(q.get("site")))
    day = parse_day(q.get("day"))
    if site is None or day is None:
        return see_other(url_for(request, "admin_closing"))
    c = closing.Closure(site, day, parse_text(q.get("start"), 5), "")
    counts = {k: parse_id(q.get(k)) or 0 for k in ("moved", "cancelled", "gone", "closed")}
    return await _page(request, "closing_done.html", {"preview": await closing.preview(c),
                                                      "counts": counts})


ROUTES = [
    Route("/admin/closing", admin_closing, name="admin_closing"),
    Route("/admin/closing/preview", admin_closing_preview, name="admin_closing_preview"),
    Route("/admin/closing/run", admin_closing_run, methods=["POST"], name="admin_closing_run"),
    Route("/admin/closing/done", admin_closing_done, name="admin_closing_done"),
]
