"""The admin console: the audit trail, filtered."""
from __future__ import annotations

from starlette.requests import Request

from models.staff import audit
from ...http import parse_day, parse_id, parse_text
from ...staff_auth import ADMIN, current_staff, staff_only
from ...templating import render
from ...words import words_for


@staff_only(*ADMIN)
async def admin_home(request: Request):
    """GET /admin: the audit trail, newest first, filtered by person, action, resident or day."""
    q = request.query_params
    filters = {"username": parse_text(q.get("username"), 40), "action": parse_text(q.get("action"), 40),
               "resident_id": parse_id(q.get("resident")), "day": parse_day(q.get("day"))}
    rows = await audit.entries(**filters, before_id=parse_id(q.get("before")))
    words = words_for(request)
    return render(request, "pages/admin/audit.html", {
        "staff": await current_staff(request), "rows": rows, "filters": filters, "words": words,
        "actions": audit.named_actions(await audit.actions(), words), "page_size": audit.PAGE,
    })
