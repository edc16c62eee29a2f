"""Every role against every staff page and action: allowed, 403, or sent to sign in."""
from __future__ import annotations

import pytest
from starlette.routing import Route

from tests.factories import make_site
from tests.staff_helpers import make_staff, sign_in
from web.app import ROUTES

# Who may use what, written out independently of the code's own constants.
ALLOWED = {
    "/staff/calls": {"callcentre", "subdistrict", "admin"},
    "/staff/site": {"site", "admin"},
    "/admin": {"admin"},
}
OPEN = {"/staff", "/staff/login", "/staff/logout"}  # the sign-in page and its actions
ROLES = ["callcentre", "site", "subdistrict", "admin"]


def staff_routes():
    for route in ROUTES:
        if isinstance(route, Route) and route.path.startswith(("/staff", "/admin")) \
                and route.path not in OPEN:
            area = next(a for a in ALLOWED if route.path == a or route.path.startswith(a + "/"))
            for method in sorted(route.methods - {"HEAD"}):
                yield method, route.path, area


CASES = list(staff_routes())


def test_the_matrix_covers_every_staff_route():
    assert {path for _, path, _ in CASES} >= {"/admin"}
    assert len(CASES) >= 1


async def _signed_in(client, role):
    await make_site("TH01")
    kw = {"site_code": "TH01"} if role == "site" else {"subdistrict": "五山街"} if role == "subdistrict" else {}
    await make_staff(role, f"{role}-user", **kw)
    await sign_in(client, f"{role}-user")


@pytest.mark.parametrize("role", ROLES)
async def test_each_role_gets_exactly_its_own_pages(client, role):
    await _signed_in(client, role)
    token = client.cookies.get("csrftoken")  # set by the sign-in page
    for method, path, area in CASES:
        if method == "GET":
            response = await client.get(path)
        else:
            response = await client.post(path, data={"csrftoken": token})
        allowed = role in ALLOWED[area]
        if allowed:
            assert response.status_code != 403, (role, method, path)
            assert not response.headers.get("location", "").startswith("/staff?next"), (role, path)
        else:
            assert response.status_code == 403, (role, method, path, response.status_code)


async def test_strangers_are_sent_to_sign_in(client):
    await client.get("/staff")  # picks up the CSRF cookie, as a browser would
    token = client.cookies.get("csrftoken")
    for method, path, _ in CASES:
        if method == "GET":
            response = await client.get(path)
            assert response.status_code == 303, (method, path)
            assert response.headers["location"].startswith("/staff?next="), path
        else:
            response = await client.post(path, data={"csrftoken": token})
            assert response.status_code == 303 and response.headers["location"] == "/staff", path
