"""Group booking at /group (roles subdistrict and admin): a residents' committee's list, each
row's standing at once, book the eligible into a site's windows in one go, the result per row (and
as CSV), then move or cancel the whole group or one person (models/operations/groups.py).

ID numbers and phones travel only in POST bodies; URLs carry list and row ids. Every POST path is
fixed (ids in hidden fields) so the CSRF middleware protects each one. A list of another
sub-district is refused and audited (web/scoping.py). Every action is audited: the list's, and
each booking made, moved or cancelled, with its resident.
"""
from __future__ import annotations

import io
import re
import secrets

from starlette.datastructures import UploadFile
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from models import csv_safe
from models.booking.codes import format_code
from models.operations import groups, imports
from .. import i18n
from ..http import district, parse_day, parse_id, parse_text, see_other, url_for
from ..i18n import gettext as _
from ..scoping import OUT_OF_AREA, refuse_outside
from ..staff_auth import GROUP, current_staff, record, staff_only
from ..templating import render

KEY = re.compile(r"^[A-Za-z0-9_-]{8,32}$")  # a booking form's key (secrets.token_urlsafe(12))
CSV_COLUMNS = ("row", "name", "id_number", "phone", "result", "explanation", "code", "site",
               "address", "day", "time")


# ---- words: where a row stands, what an action came to


def _booking_text(booking) -> str:
    slot = booking.slot
    return _("%(code)s，%(day)s %(time)s，%(site)s") % {
        "code": format_code(booking.code), "day": i18n.day_text(slot.day),
        "time": i18n.window_text(slot.start, slot.end), "site": slot.site.name}


ID_PROBLEMS = {
    "empty": lambda: _("没有填身份证号"),
    "length": lambda: _("身份证号应为18位"),
    "format": lambda: _("身份证号应为17位数字加一位数字或X"),
    "birth_date": lambda: _("身份证号中的出生日期不存在"),
    "checksum": lambda: _("身份证号校验位不对，请核对"),
    "region": lambda: _("身份证号前6位不是有效的地区代码"),
}


def explain_status(row: groups.Row) -> str:
    """Where a row stands now, in the reader's language."""
    s = row.status
    if s == groups.ELIGIBLE:
        return _("可以预约")
    if s == "booked" and row.booking:
        text = _booking_text(row.booking)
        return (_("已通过本名单预约：%(booking)s") if row.ours else _("已有预约：%(booking)s")) % {"booking": text}
    if s == "too_early":
        return _("还未到预约时间：%(day)s起可约") % {"day": i18n.day_text(row.opens_on)}
    if s == groups.DUPLICATE:
        return _("与第%(row)s行是同一人，不重复预约") % {"row": row.first_row}
    if s == groups.INVALID_ID:
        return ID_PROBLEMS.get(row.member.id_problem, ID_PROBLEMS["format"])()
    if s in (groups.NOT_FOUND, groups.OTHER_AREA) and row.area:  # the same, on record elsewhere or not
        return _("查无第一剂接种记录（本名单只查%(area)s的居民），请核对身份证号；"
                 "其他街道的居民请由其所在街道或本人预约") % {"area": row.area}
    return {
        "vaccinated": _("已完成第二剂接种"),
        "restricted": _("所在街道为中高风险地区，暂停预约"),
        "no_room": _("可接种日期内各接种点都已约满"),
        groups.NOT_FOUND: _("查无第一剂接种记录，请核对身份证号"),
        groups.NAME_MISMATCH: _("姓名与接种记录不符，请核对"),
        groups.OTHER_AREA: _("查无第一剂接种记录，请核对身份证号"),  # rows worked on before
        groups.NO_NAME: _("没有填姓名"),
    }.get(s, s)


def explain_outcome(row: groups.Row) -> str:
    """What the list's latest action on this row came to; where it stands if nothing yet."""
    o = row.outcome
    current = _booking_text(row.booking) if row.booking else ""
    if o in (groups.BOOKED, groups.MOVED, groups.UNCHANGED) and row.booking:
        word = {groups.BOOKED: _("已预约：%(booking)s"), groups.MOVED: _("已改约：%(booking)s"),
                groups.UNCHANGED: _("已在所选时段，未改动：%(booking)s")}[o]
        return word % {"booking": current}
    if o == groups.ALREADY_BOOKED:
        return (_("原已有预约，未重复预约：%(booking)s") % {"booking": current} if current
                else _("原已有预约，未重复预约"))
    if o == groups.CANCELLED:
        return _("已取消预约")
    words = {
        groups.FULL: _("所选时段已约满，未能预约"),
        groups.NOT_ALLOWED: _("所选日期不在其可接种期内"),
        groups.NOT_OURS: _("不是通过本名单预约的，未改动"),
    }
    if o in words:
        return words[o]
    if o in (groups.BOOKED, groups.MOVED, groups.UNCHANGED):  # and cancelled since
        return _("预约已不在")
    if o and o != row.status:  # the row's standing has changed since: say why it was not done then
        return outcome_names().get(o, o)
    return explain_status(row)


def outcome_names() -> dict[str, str]:
    """Short names of outcomes, for the summary's reasons."""
    return {
        groups.ALREADY_BOOKED: _("原已有预约"), groups.FULL: _("所选时段已约满"),
        groups.NOT_ALLOWED: _("所选日期不在可接种期内"), groups.NOT_OURS: _("不是本名单预约的"),
        "too_early": _("还未到预约时间"), "vaccinated": _("已完成接种"),
        "restricted": _("中高风险地区"), "no_room": _("已约满"), "booked": _("已有预约"),
        groups.NOT_FOUND: _("查无记录"), groups.NAME_MISMATCH: _("姓名不符"),
        groups.OTHER_AREA: _("查无记录"), groups.DUPLICATE: _("重复行"),
        groups.INVALID_ID: _("身份证号有误"), groups.NO_NAME: _("没有姓名"),
    }


WORDS = {"explain_status": explain_status, "explain_outcome": explain_outcome}


# ---- helpers


async def _page(request: Request, page: str, context: dict, **kw):
    return render(request, f"pages/group/{page}",
                  {"staff": await current_staff(request), **WORDS, **context}, **kw)


async def _refused(request: Request, exc: Exception):
    """The page for a list that is not there, or not this account's to see (audited)."""
    if isinstance(exc, groups.NotYours):
        return await refuse_outside(request, detail=f"group list {exc.list_id}")
    return await _page(request, "missing.html", {}, status=404)


def _windows(values) -> list[int]:
    ids = [parse_id(v) for v in values[: groups.MAX_WINDOWS]]
    return [i for i in ids if i]


def _to_list(request: Request, list_id: int, **params):
    return see_other(url_for(request, "group_list", list_id=list_id, **params))


# ---- lists


@staff_only(*GROUP)
async def group_home(request: Request):
    """GET /group: the lists this account may see, and a new list (upload, paste, or empty)."""
    return await _home(request)


async def _home(request: Request, *, error: str = "", detail: str = "", status: int = 200):
    staff = await current_staff(request)
    return await _page(request, "index.html", {
        "lists": await groups.lists_for(staff), "error": error, "detail": detail,
        "max_rows": groups.MAX_ROWS}, status=status)


@staff_only(*GROUP)
async def group_create(request: Request):
    """POST /group/new (multipart: csrftoken first): a list from a CSV file, pasted text, or
    nothing (to add people one by one); 303 to the list with each row's standing."""
    staff = await current_staff(request)
    form = await request.form(max_files=1, max_fields=10)
    try:
        name = parse_text(form.get("name"), 100)
        upload, text = form.get("file"), form.get("text")
        data, filename = b"", "pasted"
        if isinstance(upload, UploadFile) and upload.filename:
            filename = imports.safe_filename(upload.filename)
            data = await upload.read()
        elif isinstance(text, str):
            data = text.encode("utf-8", "replace")
    finally:
        await form.close()
    try:
        group = await groups.create_list(district(request).vault, staff, name, data, filename)
    except imports.ImportFileError as exc:
        return await _home(request, error=exc.code, detail=exc.detail, status=422)
    except groups.ListError as exc:
        return await _home(request, error=exc.code, status=422)
    await record(request, "group_create", detail=f"list {group.id}: {group.rows} rows")
    return _to_list(request, group.id)


@staff_only(*GROUP)
async def group_list(request: Request):
    """GET /group/{list_id}?site=&day=&w=: every row's standing; site, day and windows to book."""
    q = request.query_params
    try:
        page = await groups.list_page(
            district(request), await current_staff(request), parse_id(request.path_params["list_id"]),
            site_id=parse_id(q.get("site")), day=parse_day(q.get("day")), slot_ids=_windows(q.getlist("w")))
    except (groups.NoSuchList, groups.NotYours) as exc:
        return await _refused(request, exc)
    await record(request, "group_view", detail=f"list {page.group.id}: {len(page.rows)} rows")
    error = parse_text(q.get("error"), 20)
    return await _page(request, "list.html", {
        "page": page, "key": secrets.token_urlsafe(12), "error": error,
        "max_rows": groups.MAX_ROWS})


@staff_only(*GROUP)
async def group_add(request: Request):
    """POST /group/add: one more person at the end of the list; 303 back to it."""
    form = await request.form()
    list_id = parse_id(form.get("g"))
    person = groups.Typed(parse_text(form.get("name"), 50), parse_text(form.get("id_number"), 40),
                          parse_text(form.get("phone"), 20))
    if not (person.name or person.id_number):
        if list_id is None:
            return await _refused(request, groups.NoSuchList(list_id))
        return _to_list(request, list_id, error="empty_row")
    try:
        member = await groups.add_member(district(request).vault, await current_staff(request),
                                         list_id, person)
    except (groups.NoSuchList, groups.NotYours) as exc:
        return await _refused(request, exc)
    except groups.ListError as exc:
        return _to_list(request, list_id, error=exc.code)
    await record(request, "group_add", detail=f"list {list_id}: row {member.row}")
    return see_other(url_for(request, "group_list", list_id=list_id) + f"#row-{member.row}")


# ---- actions


async def _audit(request: Request, action: str, done: groups.Done) -> None:
    """One entry for the action, one per booking it made, moved or cancelled, one per row it
    refused because the person lives in another sub-district."""
    group = done.group
    for change in done.changes:
        await record(request, change.kind, resident=change.resident_id,
                     detail=f"group list {group.id}: {change.detail}")
    for member in done.outside:
        await record(request, OUT_OF_AREA, resident=member.resident_id,
                     detail=f"{request.method} {request.url.path} group list {group.id} row {member.row}")
    await record(request, f"group_{action}",
                 detail=f"list {group.id}: {len(done.changes)} {action}, {len(done.outside)} outside the area")


@staff_only(*GROUP)
async def group_book(request: Request):
    """POST /group/book: book the list's eligible into the chosen windows; 303 to the result.
    The form's key makes a second post of the same form book nobody twice."""
    form = await request.form()
    list_id = parse_id(form.get("g"))
    key = parse_text(form.get("key"), 32)
    key = key if KEY.match(key) else secrets.token_urlsafe(12)
    try:
        done = await groups.book(district(request), await current_staff(request), list_id,
                                 _windows(form.getlist("w")), key=key)
    except (groups.NoSuchList, groups.NotYours) as exc:
        return await _refused(request, exc)
    except groups.ListError as exc:
        return _to_list(request, list_id, error=exc.code)
    await _audit(request, "book", done)
    return see_other(url_for(request, "group_result", list_id=list_id))


@staff_only(*GROUP)
async def group_move(request: Request):
    """GET /group/{list_id}/move?m=&site=&day=&w=: where to move the group (or one person) to.
    POST /group/move: move them through the booking service; 303 to the result."""
    if request.method == "POST":
        form = await request.form()
        list_id = parse_id(form.get("g"))
        try:
            done = await groups.move(district(request), await current_staff(request), list_id,
                                     _windows(form.getlist("w")), member_id=parse_id(form.get("m")))
        except (groups.NoSuchList, groups.NotYours) as exc:
            return await _refused(request, exc)
        except groups.ListError as exc:
            return see_other(url_for(request, "group_move_to", list_id=list_id, m=parse_id(form.get("m")),
                                     error=exc.code))
        await _audit(request, "move", done)
        return see_other(url_for(request, "group_result", list_id=list_id))
    q = request.query_params
    try:
        page = await groups.move_page(
            district(request), await current_staff(request), parse_id(request.path_params.get("list_id")),
            member_id=parse_id(q.get("m")), site_id=parse_id(q.get("site")), day=parse_day(q.get("day")),
            slot_ids=_windows(q.getlist("w")))
    except (groups.NoSuchList, groups.NotYours) as exc:
        return await _refused(request, exc)
    return await _page(request, "move.html", {"page": page, "m": parse_id(q.get("m")),
                                              "error": parse_text(q.get("error"), 20)})


@staff_only(*GROUP)
async def group_cancel(request: Request):
    """GET /group/{list_id}/cancel?m=: are you sure?  POST /group/cancel: cancel the group's
    bookings (or one person's) through the booking service; 303 to the result."""
    if request.method == "POST":
        form = await request.form()
        list_id = parse_id(form.get("g"))
        try:
            done = await groups.cancel(district(request), await current_staff(request), list_id,
                                       member_id=parse_id(form.get("m")))
        except (groups.NoSuchList, groups.NotYours) as exc:
            return await _refused(request, exc)
        await _audit(request, "cancel", done)
        return see_other(url_for(request, "group_result", list_id=list_id))
    q = request.query_params
    try:
        page = await groups.cancel_page(district(request), await current_staff(request),
                                        parse_id(request.path_params.get("list_id")),
                                        member_id=parse_id(q.get("m")))
    except (groups.NoSuchList, groups.NotYours) as exc:
        return await _refused(request, exc)
    return await _page(request, "cancel.html", {"page": page, "m": parse_id(q.get("m"))})


# ---- the result


@staff_only(*GROUP)
async def group_result(request: Request):
    """GET /group/{list_id}/result: the latest action's result, plainly at the top, then per row."""
    try:
        page = await groups.result_page(district(request), await current_staff(request),
                                        parse_id(request.path_params.get("list_id")))
    except (groups.NoSuchList, groups.NotYours) as exc:
        return await _refused(request, exc)
    return await _page(request, "result.html", {"page": page, "names": outcome_names()})


def _csv_row(row: groups.Row) -> list:
    m, b = row.member, row.booking
    slot = b.slot if b else None
    return [m.row, m.name, m.id_masked, m.phone_masked, row.outcome or row.status, explain_outcome(row),
            format_code(b.code) if b else "", slot.site.name if slot else "",
            slot.site.address if slot else "", slot.day.isoformat() if slot else "",
            f"{slot.start}-{slot.end}" if slot else ""]


@staff_only(*GROUP)
async def group_result_csv(request: Request):
    """GET /group/{list_id}/result.csv: the result per row for the committee's own list: UTF-8
    with a BOM (Excel opens it right), ID numbers and phones masked; audited."""
    try:
        page = await groups.result_page(district(request), await current_staff(request),
                                        parse_id(request.path_params.get("list_id")))
    except (groups.NoSuchList, groups.NotYours) as exc:
        return await _refused(request, exc)
    i18n.set_language(i18n.choose_language(request.cookies.get(i18n.LANG_COOKIE)))
    buffer = io.StringIO()
    out = csv_safe.writer(buffer)
    out.writerow(CSV_COLUMNS)
    for row in page.rows:
        out.writerow(_csv_row(row))
    await record(request, "group_download", detail=f"list {page.group.id}: {len(page.rows)} rows")
    return Response("\ufeff" + buffer.getvalue(), media_type="text/csv; charset=utf-8", headers={
        "Content-Disposition": f'attachment; filename="group-{page.group.id}-result.csv"'})


ROUTES = [
    Route("/group", group_home, name="group"),
    Route("/group/new", group_create, methods=["POST"], name="group_create"),
    Route("/group/add", group_add, methods=["POST"], name="group_add"),
    Route("/group/book", group_book, methods=["POST"], name="group_book"),
    Route("/group/move", group_move, methods=["POST"], name="group_move"),
    Route("/group/cancel", group_cancel, methods=["POST"], name="group_cancel"),
    Route("/group/{list_id}", group_list, name="group_list"),
    Route("/group/{list_id}/move", group_move, name="group_move_to"),
    Route("/group/{list_id}/cancel", group_cancel, name="group_cancel_confirm"),
    Route("/group/{list_id}/result", group_result, name="group_result"),
    Route("/group/{list_id}/result.csv", group_result_csv, name="group_result_csv"),
]
