"""The SMS outbox as admins see it: how many are queued, sent, delivered or failed, and resend.

A message failed for good (an invalid number, a rejected template, or every retry used) keeps
the gateway's reason; once the cause is fixed the admin puts it back in the queue, one or all.
"""
from __future__ import annotations

from starlette.requests import Request
from starlette.routing import Route

from models.messaging import delivery, outbox
from ...http import parse_id, parse_text, see_other, url_for
from ...staff_auth import ADMIN, current_staff, record, staff_only
from ...templating import render

FLASH = "messages_flash"


@staff_only(*ADMIN)
async def admin_messages(request: Request):
    """GET /admin/messages: counts by state and the failed messages with their reasons."""
    return render(request, "pages/admin/messages.html", {
        "staff": await current_staff(request), "counts": await delivery.status_counts(),
        "failed": await outbox.failed_messages(), "flash": request.session.pop(FLASH, None),
    })


@staff_only(*ADMIN)
async def admin_messages_resend(request: Request):
    """POST /admin/messages/resend: `m` one failed message, or `all=1` every failed one."""
    form = await request.form()
    one = parse_id(form.get("m"))
    if one is None and parse_text(form.get("all"), 1) != "1":
        return see_other(url_for(request, "admin_messages"))
    count = await delivery.resend_failed(None if one is None else [one])
    await record(request, "sms_resend", detail=f"message {one}" if one is not None else f"all failed: {count}")
    request.session[FLASH] = {"count": count}
    return see_other(url_for(request, "admin_messages"))


ROUTES = [
    Route("/admin/messages", admin_messages, name="admin_messages"),
    Route("/admin/messages/resend", admin_messages_resend, methods=["POST"], name="admin_messages_resend"),
]
