"""Staff who see only their own area: the account's Area, and the refusal when a request reaches
outside it (models/staff/scope.py decides who is in; this answers and audits).

The refusal is a 403 page that says whose area the account covers, and an audit entry
`out_of_area` with the route and the resident's row id (never a name or a number)."""
from __future__ import annotations

from starlette.requests import Request
from starlette.responses import Response

from models.staff.scope import Area
from .staff_auth import current_staff, record
from .templating import render

OUT_OF_AREA = "out_of_area"  # the audit action of every refusal


async def area_of(request: Request) -> Area:
    """The signed-in staff member's area."""
    return Area.of(await current_staff(request))


async def refuse_outside(request: Request, resident_id: int | None = None, *, detail: str = "") -> Response:
    """403: the resident, booking or site asked for is outside this account's area; audited."""
    route = f"{request.method} {request.url.path}"
    await record(request, OUT_OF_AREA, resident=resident_id, detail=f"{route} {detail}".strip())
    return render(request, "pages/staff/outside_area.html", {"staff": await current_staff(request)},
                  status=403, fragment="fragments/_outside_area.html")
