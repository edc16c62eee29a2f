"""Invitation batches, reminders, links re-issued, and the list of people past day 56.

A batch (invitations, reminders, expired links) may be a million people: it runs as a background
task of the server process that received the form, and the admin watches a progress page that
refreshes itself (<meta http-equiv="refresh">, no JavaScript). Each person is claimed in their own
transaction, so a batch cut short by a restart is resumed by sending it again: nobody gets two
messages. The SMS are queued; the SMS sender (`run.py send-sms`) delivers them at its own pace.
"""
from __future__ import annotations

import asyncio
import io
import logging
import secrets

from starlette.requests import Request
from starlette.responses import StreamingResponse
from starlette.routing import Route

from models import csv_safe
from models.messaging import caps
from models import metrics
from models.operations import outreach
from models.operations.invitations import InviteError, Scope
from models.people import lookup
from models.people.pii import mask_name
from ...http import district, parse_day, parse_id, parse_text, see_other, url_for
from ...scoping import area_of
from ...staff_auth import ADMIN, current_staff, record, staff_only
from ...templating import render
from ...words import words_for

log = logging.getLogger("booking.outreach")


async def _page(request: Request, page: str, context: dict, **kw):
    return render(request, f"pages/admin/{page}", {"staff": await current_staff(request), **context}, **kw)


# ---- background batches: this process's runs, by a random id (no personal data in the URL)


def _runs(request: Request) -> dict[str, outreach.Batch]:
    state = request.app.state
    if not hasattr(state, "outreach_runs"):
        state.outreach_runs, state.outreach_tasks = {}, set()
    return state.outreach_runs


def _running(request: Request, kind: str) -> str | None:
    """The id of this kind of batch still running here: a form posted twice joins it."""
    return next((run_id for run_id, b in _runs(request).items() if b.kind == kind and not b.finished), None)


def _start(request: Request, batch: outreach.Batch, job, action: str, detail: str) -> str:
    """Run `job(progress)` (returns the count) in the background; audit the count when it ends."""
    run_id = secrets.token_urlsafe(9)
    _runs(request)[run_id] = batch

    async def run():
        try:
            count = await job(batch)
            batch(count)
        except Exception:  # the page says it stopped; sending again resumes where it stopped
            batch.failed = True
            log.exception("%s batch stopped", batch.kind)
            await record(request, action, detail=f"{detail}: stopped after {batch.done}")
        else:
            await record(request, action, detail=f"{detail}: {count} sent")
        finally:
            batch.finished = True

    task = asyncio.create_task(run())
    tasks = request.app.state.outreach_tasks
    tasks.add(task)
    task.add_done_callback(tasks.discard)
    return run_id


def _scope(source) -> Scope:
    return Scope(parse_text(source.get("subdistrict"), 50), parse_id(source.get("site")))


def _scope_text(scope: Scope) -> str:
    return ", ".join(filter(None, [scope.subdistrict, f"site #{scope.site_id}" if scope.site_id else ""])) \
        or "whole district"


# ---- invitations and reminders


async def _overview(request: Request, scope: Scope, days: int | None, *, error: str = "",
                    status: int = 200):
    d = district(request)
    days = days or outreach.DEFAULT_REMIND_DAYS
    view = await outreach.overview(d, scope, days)
    return await _page(request, "invitations.html", {
        "view": view, "preview": view.preview, "days": days, "error": error,
        "running": {kind: _running(request, kind) for kind in ("invite", "remind")},
    }, status=status)


@staff_only(*ADMIN)
async def admin_invitations(request: Request):
    """GET /admin/invitations?subdistrict=&site=&days=: who is due, by sub-district and site; reminders."""
    q = request.query_params
    days_text = parse_text(q.get("days"), 4)
    days = outreach.remind_days(parse_id(days_text))
    if days_text and days is None:
        return await _overview(request, _scope(q), None, error="days", status=422)
    return await _overview(request, _scope(q), days)


@staff_only(*ADMIN)
async def admin_invitations_send(request: Request):
    """POST /admin/invitations/send: invite everyone due in the scope (the count the admin saw)."""
    form = await request.form()
    scope = _scope(form)
    if running := _running(request, "invite"):  # posted twice, or another batch: one at a time
        return see_other(url_for(request, "admin_invitations_progress", run=running))
    d = district(request)
    try:
        due = await outreach.invite_due(d, scope, parse_id(form.get("expected")))
    except outreach.NotNow as exc:  # the numbers moved since the preview: show them again
        return await _overview(request, scope, None, error=exc.reason, status=422)
    detail = f"{_scope_text(scope)}, {due} due"
    await record(request, "invite_start", detail=detail)
    run = _start(request, outreach.Batch("invite", due, scope.subdistrict),
                 lambda progress: outreach.invite(d, scope, progress), "invite", detail)
    return see_other(url_for(request, "admin_invitations_progress", run=run))


@staff_only(*ADMIN)
async def admin_invitations_remind(request: Request):
    """POST /admin/invitations/remind: one reminder, with a new link, to those invited N days ago."""
    form = await request.form()
    days = outreach.remind_days(parse_id(form.get("days")))
    if days is None:
        return await _overview(request, Scope(), None, error="days", status=422)
    if running := _running(request, "remind"):
        return see_other(url_for(request, "admin_invitations_progress", run=running))
    d = district(request)
    try:
        due = await outreach.remind_due(d, days, parse_id(form.get("expected")))
    except outreach.NotNow as exc:
        return await _overview(request, Scope(), days, error=exc.reason, status=422)
    detail = f"invited {days}+ days ago, {due} due"
    await record(request, "remind_start", detail=detail)
    run = _start(request, outreach.Batch("remind", due, str(days)),
                 lambda progress: outreach.remind(d, days, progress), "remind", detail)
    return see_other(url_for(request, "admin_invitations_progress", run=run))


@staff_only(*ADMIN)
async def admin_invitations_progress(request: Request):
    """GET /admin/invitations/progress?run=: how far a batch got; refreshes itself until it ends."""
    run_id = parse_text(request.query_params.get("run"), 20)
    batch = _runs(request).get(run_id) if run_id else None
    return await _page(request, "invitations_progress.html", {"batch": batch},
                       status=200 if batch else 404)


# ---- links


async def _links(request: Request, context: dict, *, status: int = 200):
    d = district(request)
    return await _page(request, "invitations_links.html", {
        "expired": await outreach.expired_count(d), "running": _running(request, "reissue"),
        "searched": False, "error": "", "q": "", **context,
    }, status=status)


@staff_only(*ADMIN)
async def admin_links(request: Request):
    """GET /admin/links?done=: find a person to re-issue their link; links expired without a booking."""
    done = await lookup.resident_by_id(parse_id(request.query_params.get("done")))
    return await _links(request, {"done": done, "done_name": mask_name(done.name) if done else ""})


@staff_only(*ADMIN)
async def admin_links_search(request: Request):
    """POST /admin/links/search: by full ID number or mobile, as the call centre searches."""
    form = await request.form()
    typed = parse_text(form.get("q"), 40)
    try:
        query = lookup.parse_query(typed)
    except lookup.BadSearch as exc:
        return await _links(request, {"searched": True, "error": exc.reason, "q": typed}, status=422)
    result = await lookup.search(district(request).vault, query, await area_of(request))  # admins: everyone
    await record(request, "search", detail=f"by {query.kind}, {len(result.rows)} found")
    return await _links(request, {"searched": True, "result": result, "q": typed})


@staff_only(*ADMIN)
async def admin_links_reissue(request: Request):
    """POST /admin/links/reissue: revoke the person's links, send a new one by SMS."""
    form = await request.form()
    try:
        resident = await outreach.reissue_one(district(request), parse_id(form.get("r")))
    except InviteError:
        return await _links(request, {"error": "base_url"}, status=422)
    except caps.CapReached as exc:  # the number's SMS asked for on demand (models/messaging/caps.py)
        metrics.refused("sms_number")
        return await _links(request, {"error": "sms_cap", "until": exc.until}, status=429)
    if resident is None:
        return await _links(request, {"error": "missing"}, status=404)
    await record(request, "reissue_link", resident=resident, detail="old links revoked, 1 SMS queued")
    if form.get("back") == "card":
        return see_other(url_for(request, "calls_card", r=resident.id, reissued=1))
    return see_other(url_for(request, "admin_links", done=resident.id))


@staff_only(*ADMIN)
async def admin_links_expired(request: Request):
    """POST /admin/links/expired: a new link for everyone whose link expired without a booking."""
    form = await request.form()
    if running := _running(request, "reissue"):
        return see_other(url_for(request, "admin_invitations_progress", run=running))
    d = district(request)
    try:
        due = await outreach.expired_due(d, parse_id(form.get("expected")))
    except outreach.NotNow as exc:
        return await _links(request, {"error": exc.reason}, status=422)
    detail = f"expired links, {due} due"
    await record(request, "reissue_expired_start", detail=detail)
    run = _start(request, outreach.Batch("reissue", due),
                 lambda progress: outreach.reissue_expired(d, progress), "reissue_expired", detail)
    return see_other(url_for(request, "admin_invitations_progress", run=run))


# ---- past the due day


@staff_only(*ADMIN)
async def admin_overdue(request: Request):
    """GET /admin/overdue?subdistrict=&after_day=&after_id=: past their due day, not booked; paged."""
    q = request.query_params
    subdistrict = parse_text(q.get("subdistrict"), 50)
    day, last_id = parse_day(q.get("after_day")), parse_id(q.get("after_id"))
    listing = await outreach.overdue_listing(district(request), subdistrict=subdistrict,
                                             after=(day, last_id) if day and last_id else None)
    return await _page(request, "invitations_overdue.html", {"listing": listing, "subdistrict": subdistrict})


@staff_only(*ADMIN)
async def admin_overdue_csv(request: Request):
    """GET /admin/overdue.csv?subdistrict=: the whole list, masked, streamed (Excel and WPS open it:
    BOM); the header in the interface's language (models/staff/vocabulary.py)."""
    d = district(request)
    subdistrict = parse_text(request.query_params.get("subdistrict"), 50)
    await record(request, "export_overdue", detail=subdistrict or "whole district")
    header = words_for(request).header(outreach.CSV_COLUMNS)

    async def lines():
        yield "\ufeff" + _csv_line(header)
        async for row in outreach.overdue_rows(d, subdistrict):
            yield _csv_line(row)

    name = f"overdue-{d.clock.today().isoformat()}.csv"
    return StreamingResponse(lines(), media_type="text/csv; charset=utf-8",
                             headers={"Content-Disposition": f'attachment; filename="{name}"'})


def _csv_line(values) -> str:
    out = io.StringIO()
    csv_safe.writer(out).writerow(values)
    return out.getvalue()


ROUTES = [
    Route("/admin/invitations", admin_invitations, name="admin_invitations"),
    Route("/admin/invitations/send", admin_invitations_send, methods=["POST"], name="admin_invitations_send"),
    Route("/admin/invitations/remind", admin_invitations_remind, methods=["POST"],
          name="admin_invitations_remind"),
    Route("/admin/invitations/progress", admin_invitations_progress, name="admin_invitations_progress"),
    Route("/admin/links", admin_links, name="admin_links"),
    Route("/admin/links/search", admin_links_search, methods=["POST"], name="admin_links_search"),
    Route("/admin/links/reissue", admin_links_reissue, methods=["POST"], name="admin_links_reissue"),
    Route("/admin/links/expired", admin_links_expired, methods=["POST"], name="admin_links_expired"),
    Route("/admin/overdue", admin_overdue, name="admin_overdue"),
    Route("/admin/overdue.csv", admin_overdue_csv, name="admin_overdue_csv"),
]
