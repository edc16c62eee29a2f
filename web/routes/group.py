"""Group booking at /group (roles subdistrict and admin): a residents' committee's list, each
row's standing at once, book the eligible into a site's windows in one go, the result per row (and
as CSV), then move or cancel the whole group or one person (models/channels/groups/).

ID numbers and phones travel only in POST bodies; URLs carry list and row ids. Every POST path is
fixed (ids in hidden fields) so the CSRF middleware protects each one. A list of another
sub-district is refused and audited (web/scoping.py). Every action is audited: the list's, and
each booking made, moved or cancelled, with its resident.
"""
from __future__ import annotations

import io
import re
import secrets
from urllib.parse import urlencode

from starlette.datastructures import UploadFile
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from models import csv_safe
from models.booking_codes import format_code
from models.channels import groups
from models.operations import imports
from .. import i18n
from ..http import district, parse_day, parse_id, parse_text, see_other, url_for
from ..i18n import gettext as _
from ..scoping import OUT_OF_AREA, refuse_outside
from ..staff_auth import GROUP, current_staff, record, staff_only
from ..templating import render, wants_fragment

_CONTROL = re.compile(r"[\x00-\x1f\x7f]")
KEY = re.compile(r"^[A-Za-z0-9_-]{8,32}$")  # a booking form's key (secrets.token_urlsafe(12))
SHOWN = re.compile(r"^[0-9a-f]{20}$")  # a page's Picker.digest


def csv_columns() -> list[str]:
    """The result CSV's header, in the reader's language."""
    return [_("行号"), _("姓名"), _("身份证号"), _("手机"), _("结果"), _("说明"), _("预约码"),
            _("接种点"), _("地址"), _("日期"), _("时间")]


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


# The short words, one vocabulary for the counts on the list page, the reasons on the result
# page and the result column of the CSV: where a row stands (status_names) and what an action
# came to (outcome_names: a row not done keeps its standing as its outcome).


def status_names() -> dict[str, str]:
    return {
        groups.ELIGIBLE: _("可以预约"), "booked": _("已有预约"), "too_early": _("还未到预约时间"),
        "vaccinated": _("已完成接种"), "restricted": _("中高风险地区"), "no_room": _("已约满"),
        groups.NOT_FOUND: _("查无记录"), groups.NAME_MISMATCH: _("姓名不符"),
        groups.OTHER_AREA: _("查无记录"), groups.DUPLICATE: _("重复行"),
        groups.INVALID_ID: _("身份证号有误"), groups.NO_NAME: _("没有姓名"),
    }


def outcome_names() -> dict[str, str]:
    return {
        **status_names(),  # "booked" below is the action's, not "had a booking"
        groups.BOOKED: _("已预约"), groups.MOVED: _("已改约"), groups.UNCHANGED: _("未改动"),
        groups.CANCELLED: _("已取消"), groups.ALREADY_BOOKED: _("原已有预约"),
        groups.FULL: _("所选时段已约满"), groups.NOT_ALLOWED: _("所选日期不在可接种期内"),
        groups.NOT_OURS: _("不是本名单预约的"),
    }


def result_name(row: groups.Row) -> str:
    """The row's result in a word: what the latest action came to, or where it stands."""
    o = row.outcome
    if o in (groups.BOOKED, groups.MOVED, groups.UNCHANGED) and not row.booking:
        return _("预约已不在")  # cancelled since
    if o:
        return outcome_names().get(o, o)
    return status_names().get(row.status, row.status)


def times_text(windows) -> str:
    return _("、").join(i18n.window_text(w.start, w.end) for w in windows)


WORDS = {"explain_status": explain_status, "explain_outcome": explain_outcome,
         "status_names": status_names, "outcome_names": outcome_names, "times_text": times_text}


# ---- helpers


async def _page(request: Request, page: str, context: dict, **kw):
    return render(request, f"pages/group/{page}",
                  {"staff": await current_staff(request), **WORDS, **context}, **kw)


async def _refused(request: Request, exc: Exception):
    """The page for a list that is not there, or not this account's to see (audited)."""
    if isinstance(exc, groups.NotYours):
        return await refuse_outside(request, detail=f"group list {exc.list_id}")
    return await _page(request, "missing.html", {}, status=404)


def _as_typed(value, max_length: int) -> str:
    """A name as typed: like parse_text() but not width-folded, so "（" and "．" stay full-width
    (matching the record folds them: groups.same_name())."""
    return _CONTROL.sub("", str(value or "")).strip()[:max_length]


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
        name = _as_typed(form.get("name"), 100)
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
    """GET /group/{list_id}?site=&day=&w=: every row's standing; site, day and windows to book.
    htmx asks for the booking form alone (pages/group/_picker.html) whenever a select or a
    window's box changes: it holds no row, so that is not audited as a view of the list."""
    q = request.query_params
    try:
        page = await groups.list_page(
            district(request), await current_staff(request), parse_id(request.path_params["list_id"]),
            site_id=parse_id(q.get("site")), day=parse_day(q.get("day")), slot_ids=_windows(q.getlist("w")))
    except (groups.NoSuchList, groups.NotYours) as exc:
        return await _refused(request, exc)
    return await _list(request, page, error=parse_text(q.get("error"), 20))


async def _list(request: Request, page: groups.ListPage, *, error: str = "", status: int = 200):
    if not wants_fragment(request):
        await record(request, "group_view", detail=f"list {page.group.id}: {len(page.rows)} rows")
    return await _page(request, "list.html", {
        "page": page, "key": secrets.token_urlsafe(12), "error": error, "max_rows": groups.MAX_ROWS,
        "action": "book", "act_url": url_for(request, "group_book"), "m": None,
        "pick_url": url_for(request, "group_list", list_id=page.group.id)},
        status=status, fragment="pages/group/_picker.html")


def _choice(values) -> dict:
    """The site, day and windows a booking or move form posted (or a look at them asked for)."""
    return {"site_id": parse_id(values.get("site")), "day": parse_day(values.get("day")),
            "slot_ids": _windows(values.getlist("w"))}


def _choice_url(request: Request, name: str, choice: dict, **params) -> str:
    """The page `name` for a choice of site, day and windows (each window a `w`)."""
    url = url_for(request, name, **params)
    pairs = [(k, v) for k, v in (("site", choice["site_id"]), ("day", choice["day"])) if v is not None]
    query = urlencode(pairs + [("w", w) for w in choice["slot_ids"]])
    return url + ("&" if "?" in url else "?") + query if query else url


@staff_only(*GROUP)
async def group_add(request: Request):
    """POST /group/add: one more person at the end of the list; 303 back to it."""
    form = await request.form()
    list_id = parse_id(form.get("g"))
    person = groups.Typed(_as_typed(form.get("name"), 50), parse_text(form.get("id_number"), 40),
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
    """POST /group/book: book the list's eligible into the windows ticked, exactly as the page
    showed them (`shown`, its digest); 303 to the result. Another choice than the page showed
    (a select changed without JavaScript, or the list or the places changed meanwhile): the page
    again, for the choice posted, with "check again" (409), nobody booked. `do=check` (the
    "how many fit" button): 303 to the page for the choice. The form's key makes a second post
    of the same form book nobody twice."""
    form = await request.form()
    list_id = parse_id(form.get("g"))
    choice = _choice(form)
    if form.get("do") == "check":
        return see_other(_choice_url(request, "group_list", choice, list_id=list_id) + "#book-heading")
    key = parse_text(form.get("key"), 32)
    key = key if KEY.match(key) else secrets.token_urlsafe(12)
    shown = parse_text(form.get("shown"), 20)
    try:
        done = await groups.book_shown(district(request), await current_staff(request), list_id,
                                       shown=shown if SHOWN.match(shown) else "", key=key, **choice)
    except (groups.NoSuchList, groups.NotYours) as exc:
        return await _refused(request, exc)
    except groups.Changed as exc:
        return await _list(request, exc.page, error="changed", status=409)
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
        list_id, member_id, choice = parse_id(form.get("g")), parse_id(form.get("m")), _choice(form)
        if form.get("do") == "check":  # as /group/book
            return see_other(_choice_url(request, "group_move_to", choice, list_id=list_id, m=member_id))
        shown = parse_text(form.get("shown"), 20)
        try:
            done = await groups.move_shown(district(request), await current_staff(request), list_id,
                                           member_id=member_id, shown=shown if SHOWN.match(shown) else "",
                                           **choice)
        except (groups.NoSuchList, groups.NotYours) as exc:
            return await _refused(request, exc)
        except groups.Changed as exc:
            return await _move_page(request, exc.page, member_id, error="changed", status=409)
        except groups.ListError as exc:
            return see_other(url_for(request, "group_move_to", list_id=list_id, m=member_id,
                                     error=exc.code))
        await _audit(request, "move", done)
        return see_other(url_for(request, "group_result", list_id=list_id))
    q = request.query_params
    try:
        page = await groups.move_page(
            district(request), await current_staff(request), parse_id(request.path_params.get("list_id")),
            member_id=parse_id(q.get("m")), **_choice(q))
    except (groups.NoSuchList, groups.NotYours) as exc:
        return await _refused(request, exc)
    return await _move_page(request, page, parse_id(q.get("m")), error=parse_text(q.get("error"), 20))


async def _move_page(request: Request, page: groups.ListPage, member_id: int | None, *,
                     error: str = "", status: int = 200):
    return await _page(request, "move.html", {
        "page": page, "m": member_id, "error": error, "key": "", "action": "move",
        "act_url": url_for(request, "group_move"), "pick_url": url_for(request, "group_move_to", list_id=page.group.id)},
        status=status, fragment="pages/group/_picker.html")


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


# ---- correcting a row


@staff_only(*GROUP)
async def group_row(request: Request):
    """GET /group/{list_id}/row?m=: correct a row (name; ID number and phone typed again) or take
    it off the list. POST /group/row: correct it; POST /group/remove: take it off; both audited,
    303 back to the list. A row the list has booked is moved or cancelled instead."""
    staff = await current_staff(request)
    if request.method == "GET":
        q = request.query_params
        try:
            member = await groups.find_member(staff, parse_id(request.path_params.get("list_id")),
                                              parse_id(q.get("m")))
        except (groups.NoSuchList, groups.NotYours) as exc:
            return await _refused(request, exc)
        return await _row_page(request, member)
    form = await request.form()
    list_id, member_id = parse_id(form.get("g")), parse_id(form.get("m"))
    person = groups.Typed(_as_typed(form.get("name"), 50), parse_text(form.get("id_number"), 40),
                          parse_text(form.get("phone"), 20))
    try:
        member = await groups.correct_member(district(request).vault, staff, list_id, member_id, person)
    except (groups.NoSuchList, groups.NotYours) as exc:
        return await _refused(request, exc)
    except groups.ListError as exc:
        member = await groups.find_member(staff, list_id, member_id)
        return await _row_page(request, member, error=exc.code, typed=person, status=422)
    await record(request, "group_edit", resident=member.resident_id,
                 detail=f"list {list_id}: row {member.row} corrected")
    return see_other(url_for(request, "group_list", list_id=list_id) + f"#row-{member.row}")


@staff_only(*GROUP)
async def group_remove(request: Request):
    """POST /group/remove: take a row off the list (see group_row); audited."""
    staff = await current_staff(request)
    form = await request.form()
    list_id, member_id = parse_id(form.get("g")), parse_id(form.get("m"))
    try:
        member = await groups.remove_member(staff, list_id, member_id)
    except (groups.NoSuchList, groups.NotYours) as exc:
        return await _refused(request, exc)
    except groups.ListError as exc:
        return await _row_page(request, await groups.find_member(staff, list_id, member_id),
                               error=exc.code, status=422)
    await record(request, "group_remove", resident=member.resident_id,
                 detail=f"list {list_id}: row {member.row} removed")
    return see_other(url_for(request, "group_list", list_id=list_id) + "#rows-heading")


async def _row_page(request: Request, member, *, error: str = "", typed: groups.Typed | None = None,
                    status: int = 200):
    return await _page(request, "row.html", {"member": member, "group": member.group, "error": error,
                                             "typed": typed}, status=status)


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
    return [m.row, m.name, m.id_masked, m.phone_masked, result_name(row), explain_outcome(row),
            format_code(b.code) if b else "", slot.site.name if slot else "",
            slot.site.address if slot else "", slot.day.isoformat() if slot else "",
            f"{slot.start}-{slot.end}" if slot else ""]


@staff_only(*GROUP)
async def group_result_csv(request: Request):
    """GET /group/{list_id}/result.csv: the result per row for the committee's own list, header
    and results in the reader's language (the words of the pages): UTF-8 with a BOM (Excel and
    WPS open it right), ID numbers and phones masked; audited."""
    try:
        page = await groups.result_page(district(request), await current_staff(request),
                                        parse_id(request.path_params.get("list_id")))
    except (groups.NoSuchList, groups.NotYours) as exc:
        return await _refused(request, exc)
    i18n.set_language(i18n.choose_language(request.cookies.get(i18n.LANG_COOKIE)))
    buffer = io.StringIO()
    out = csv_safe.writer(buffer)
    out.writerow(csv_columns())
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
    Route("/group/row", group_row, methods=["POST"], name="group_row_save"),
    Route("/group/remove", group_remove, methods=["POST"], name="group_remove"),
    Route("/group/{list_id}", group_list, name="group_list"),
    Route("/group/{list_id}/move", group_move, name="group_move_to"),
    Route("/group/{list_id}/cancel", group_cancel, name="group_cancel_confirm"),
    Route("/group/{list_id}/row", group_row, name="group_row"),
    Route("/group/{list_id}/result", group_result, name="group_result"),
    Route("/group/{list_id}/result.csv", group_result_csv, name="group_result_csv"),
]
