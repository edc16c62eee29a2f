"""Reports (/admin/reports): per sub-district with the district's totals, per site per day, and
the second-dose completion rate over time, each with a small SVG chart; bookings by channel; the
waiting list (who waits for what, the offers per day with a chart, the time to a booking); each
with a CSV download.

The filters come as query parameters (from_day, to_day, site, subdistrict; page for the per-site
table), read here and checked in models/operations/reports.py: anything that cannot be used is
answered 422 with what to correct, never with a guess. Per sub-district and completion read a
resident snapshot this process keeps (at most a minute old; the page says when it was taken).
"""
from __future__ import annotations

import io
import logging

from starlette.requests import Request
from starlette.responses import StreamingResponse
from starlette.routing import Route

from models import csv_safe
from models.operations import reports
from ... import charts
from ...http import district, parse_day, parse_id, parse_text
from ...staff_auth import ADMIN, current_staff, record, staff_only
from ...templating import render
from ...words import words_for


log = logging.getLogger("booking.reports")
CSV_ROWS = 500  # rows written to the response at a time


def _snapshots_of(state) -> reports.Snapshots:
    if not hasattr(state, "report_snapshots"):
        state.report_snapshots = reports.Snapshots()
    return state.report_snapshots


def _snapshots(request: Request) -> reports.Snapshots:
    """This process's resident snapshot (models/operations/reports.py: Snapshots)."""
    return _snapshots_of(request.app.state)


async def warm_up(app) -> None:
    """Take the resident snapshot once when the server starts (web/app.py's lifespan), in the
    background, so that the first report page does not wait for it (about a second on a million
    residents)."""
    try:
        await _snapshots_of(app.state).get(app.state.district)
    except Exception:  # the first report page will try again
        log.exception("report snapshot at start-up failed")


def _asked(request: Request) -> tuple[reports.Asked, dict[str, str]]:
    """The filters parsed, and as typed (for the form); a field typed but unreadable is named."""
    q = request.query_params
    typed = {"from_day": parse_text(q.get("from_day"), 20), "to_day": parse_text(q.get("to_day"), 20),
             "site": parse_text(q.get("site"), 12), "subdistrict": parse_text(q.get("subdistrict"), 50)}
    from_day, to_day, site = parse_day(q.get("from_day")), parse_day(q.get("to_day")), parse_id(q.get("site"))
    unreadable = {name for name, value in (("from_day", from_day), ("to_day", to_day), ("site", site))
                  if typed[name] and value is None}
    # A date field shows only a day (a date input holds nothing else); the summary says what was wrong.
    typed.update(from_day=from_day.isoformat() if from_day else "", to_day=to_day.isoformat() if to_day else "")
    return reports.Asked(from_day, to_day, site, typed["subdistrict"], frozenset(unreadable)), typed


def _percent(share: float | None) -> str:
    return "—" if share is None else f"{share * 100:.1f}%"


async def _page(request: Request, page: str, context: dict, *, status: int = 200):
    return render(request, f"pages/admin/{page}", {
        "staff": await current_staff(request), "choices": await reports.choices(),
        "percent": _percent, "charts": charts, **context}, status=status)


async def _refused(request: Request, page: str, typed: dict, exc: reports.FilterError):
    return await _page(request, page, {"typed": typed, "error": exc, "report": None}, status=422)


def _values(report_filters: reports.Filters, typed: dict) -> dict[str, str]:
    """What the form shows: the days used (defaults filled in) and the choices made."""
    f = report_filters
    return {**typed, "from_day": f.from_day.isoformat() if f.from_day else "",
            "to_day": f.to_day.isoformat() if f.to_day else "",
            "site": str(f.site.id) if f.site else "", "subdistrict": f.subdistrict}


@staff_only(*ADMIN)
async def admin_reports(request: Request):
    """GET /admin/reports?from_day=&to_day=&subdistrict=: per sub-district and the district's
    totals (people whose first dose was in the range, when one is given)."""
    asked, typed = _asked(request)
    try:
        report = await reports.by_area(district(request), _snapshots(request), asked)
    except reports.FilterError as exc:
        return await _refused(request, "reports.html", typed, exc)
    return await _page(request, "reports.html", {
        "report": report, "typed": _values(report.filters, typed),
        "points": [(r.name, r.completion or 0) for r in report.rows]})


@staff_only(*ADMIN)
async def admin_reports_sites(request: Request):
    """GET /admin/reports/sites?from_day=&to_day=&site=&subdistrict=&page=: per site per day."""
    asked, typed = _asked(request)
    try:
        report = await reports.site_days(district(request), asked, parse_id(request.query_params.get("page")))
    except reports.FilterError as exc:
        return await _refused(request, "reports_sites.html", typed, exc)
    return await _page(request, "reports_sites.html", {
        "report": report, "typed": _values(report.filters, typed),
        "points": [(f"{d.day:%m-%d}", d.utilisation or 0) for d in report.per_day]})


@staff_only(*ADMIN)
async def admin_reports_completion(request: Request):
    """GET /admin/reports/completion?from_day=&to_day=&subdistrict=: the completion rate per day."""
    asked, typed = _asked(request)
    try:
        report = await reports.completion(district(request), _snapshots(request), asked)
    except reports.FilterError as exc:
        return await _refused(request, "reports_completion.html", typed, exc)
    return await _page(request, "reports_completion.html", {
        "report": report, "typed": _values(report.filters, typed),
        "points": [(f"{d.day:%m-%d}", d.rate) for d in report.days]})


@staff_only(*ADMIN)
async def admin_reports_channels(request: Request):
    """GET /admin/reports/channels?from_day=&to_day=&site=&subdistrict=: active bookings per channel."""
    asked, typed = _asked(request)
    try:
        report = await reports.by_channel(district(request), asked)
    except reports.FilterError as exc:
        return await _refused(request, "reports_channels.html", typed, exc)
    return await _page(request, "reports_channels.html",
                       {"report": report, "typed": _values(report.filters, typed)})


@staff_only(*ADMIN)
async def admin_reports_waitlist(request: Request):
    """GET /admin/reports/waitlist: the list by site and choice, who could use a place on each of
    the coming days, offers per day (the last two weeks) and the median time to a booking."""
    report = await reports.waitlist_report(district(request).clock.now())
    return await _page(request, "reports_waitlist.html", {
        "report": report, "typed": {"subdistrict": ""},
        "points": [(f"{d.day:%m-%d}", d.sent) for d in report.days]})


# ---- CSV: UTF-8 with a BOM (Excel and WPS open it as UTF-8), streamed a row at a time; the
# header and the codes in the first column (total, a channel) in the interface's language.


def _csv(request: Request, rows, name: str, *, channels: bool = False) -> StreamingResponse:
    words = words_for(request)
    first = words.channel if channels else words.value

    async def lines():
        out = io.StringIO()
        out.write("\ufeff")
        writer = csv_safe.writer(out)
        for n, values in enumerate(rows, 1):
            values = words.header(values) if n == 1 else [first(values[0]) if values[0] else "", *values[1:]]
            writer.writerow(values)
            if n % CSV_ROWS == 0:
                yield out.getvalue()
                out.seek(0)
                out.truncate()
        yield out.getvalue()

    return StreamingResponse(lines(), media_type="text/csv; charset=utf-8",
                             headers={"Content-Disposition": f'attachment; filename="{name}"'})


def _span(f: reports.Filters) -> str:
    days = f"{f.from_day or '…'}..{f.to_day or '…'}" if f.from_day or f.to_day else "all days"
    return " ".join(p for p in (days, f.site.code if f.site else "", f.subdistrict) if p)


@staff_only(*ADMIN)
async def admin_reports_csv(request: Request):
    """GET /admin/reports/subdistricts.csv with the page's filters."""
    asked, typed = _asked(request)
    try:
        report = await reports.by_area(district(request), _snapshots(request), asked)
    except reports.FilterError as exc:
        return await _refused(request, "reports.html", typed, exc)
    await record(request, "export_report", detail=f"subdistricts {_span(report.filters)}")
    today = district(request).clock.today().isoformat()
    return _csv(request, reports.area_values(report), f"report-subdistricts-{today}.csv")


@staff_only(*ADMIN)
async def admin_reports_sites_csv(request: Request):
    """GET /admin/reports/sites.csv with the page's filters: every row of the range, not a page."""
    asked, typed = _asked(request)
    try:
        filters, rows = await reports.site_day_csv(district(request), asked)
    except reports.FilterError as exc:
        return await _refused(request, "reports_sites.html", typed, exc)
    await record(request, "export_report", detail=f"sites {_span(filters)}")
    return _csv(request, rows, f"report-sites-{filters.from_day}-{filters.to_day}.csv")


@staff_only(*ADMIN)
async def admin_reports_completion_csv(request: Request):
    """GET /admin/reports/completion.csv with the page's filters."""
    asked, typed = _asked(request)
    try:
        report = await reports.completion(district(request), _snapshots(request), asked)
    except reports.FilterError as exc:
        return await _refused(request, "reports_completion.html", typed, exc)
    await record(request, "export_report", detail=f"completion {_span(report.filters)}")
    f = report.filters
    return _csv(request, reports.completion_values(report), f"report-completion-{f.from_day}-{f.to_day}.csv")


@staff_only(*ADMIN)
async def admin_reports_channels_csv(request: Request):
    """GET /admin/reports/channels.csv with the page's filters."""
    asked, typed = _asked(request)
    try:
        report = await reports.by_channel(district(request), asked)
    except reports.FilterError as exc:
        return await _refused(request, "reports_channels.html", typed, exc)
    await record(request, "export_report", detail=f"channels {_span(report.filters)}")
    today = district(request).clock.today().isoformat()
    return _csv(request, reports.channel_values(report), f"report-channels-{today}.csv", channels=True)


@staff_only(*ADMIN)
async def admin_reports_waitlist_csv(request: Request):
    """GET /admin/reports/waitlist.csv: the offers per day of the page, with their totals."""
    report = await reports.waitlist_report(district(request).clock.now())
    first, last = report.days[0].day, report.days[-1].day
    await record(request, "export_report", detail=f"waitlist {first}..{last}")
    return _csv(request, reports.waitlist_values(report), f"report-waitlist-{first}-{last}.csv")


ROUTES = [
    Route("/admin/reports", admin_reports, name="admin_reports"),
    Route("/admin/reports/subdistricts.csv", admin_reports_csv, name="admin_reports_csv"),
    Route("/admin/reports/sites", admin_reports_sites, name="admin_reports_sites"),
    Route("/admin/reports/sites.csv", admin_reports_sites_csv, name="admin_reports_sites_csv"),
    Route("/admin/reports/completion", admin_reports_completion, name="admin_reports_completion"),
    Route("/admin/reports/completion.csv", admin_reports_completion_csv,
          name="admin_reports_completion_csv"),
    Route("/admin/reports/channels", admin_reports_channels, name="admin_reports_channels"),
    Route("/admin/reports/channels.csv", admin_reports_channels_csv, name="admin_reports_channels_csv"),
    Route("/admin/reports/waitlist", admin_reports_waitlist, name="admin_reports_waitlist"),
    Route("/admin/reports/waitlist.csv", admin_reports_waitlist_csv, name="admin_reports_waitlist_csv"),
]
