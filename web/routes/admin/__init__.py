"""The district's console at /admin (role admin): the audit trail, sites and capacity, closing a
day, risk areas, imports, links and invitations, the SMS outbox, accounts, reports. One module per part; each handler
parses, calls one operation in models/operations or models/staff, and renders."""
from __future__ import annotations

from starlette.routing import Route

from . import accounts, audit, closing, imports, invitations, messages, reports, risk, sites

# Paths that take a file upload, and the largest file each accepts (web/security.py: BodyGuard).
UPLOADS = imports.UPLOADS

ROUTES = [
    Route("/admin", audit.admin_home, name="admin"),
    *sites.ROUTES,
    *closing.ROUTES,
    *risk.ROUTES,
    *imports.ROUTES,
    *invitations.ROUTES,
    *messages.ROUTES,
    *accounts.ROUTES,
    *reports.ROUTES,
]
