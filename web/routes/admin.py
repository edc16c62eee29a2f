"""The admin console: the audit trail, filtered."""
from __future__ import annotations

import datetime as dt

from starlette.requests import Request

from models import audit
from ..staff_auth import ADMIN, current_staff, staff_only
from ..templating import render


def _int(value) -> int | None:
    try:
        return int(value)
    except (TypeError, ValueError):
        return None


@staff_only(*ADMIN)
async def admin_home(request: Request):
    """GET /admin: the audit trail, newest first, filtered by person, action, resident or day."""
    q = request.query_params
    try:
        day = dt.date.fromisoformat(q["day"]) if q.get("day") else None
    except ValueError:
        day = None
    filters = {"username": q.get("username", ""), "action": q.get("action", ""),
               "resident_id": _int(q.get("resident")), "day": day}
    rows = await audit.entries(**filters, before_id=_int(q.get("before")))
    return render(request, "pages/admin/audit.html", {
        "staff": await current_staff(request), "rows": rows, "filters": filters,
        "actions": await audit.actions(), "page_size": audit.PAGE,
    })
