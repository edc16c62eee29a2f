"""Every role against every staff page and action: allowed, 403, or sent to sign in; and, for
every route a role with an area reaches (a sub-district, a site), that area: outside it, refused
(403) and audited; inside it, the route works; the call centre and admins reach everyone."""
from __future__ import annotations

import itertools

import contextlib
import datetime as dt
import re
from dataclasses import dataclass
from typing import Callable

import pytest
from starlette.routing import Route

from models.booking import service
from models.db.tables import AuditEntry, Booking, GroupMember, Hold, Resident
from models.channels import groups
from models.people.pii import mask_name
from tests.conftest import NOW, VAULT
from tests.factories import book_for, make_resident, make_site, make_slot
from tests.staff_helpers import browser_at, make_staff, sign_in
from web.app import ROUTES

# Who may use what, written out independently of the code's own constants.
ALLOWED = {
    "/staff/calls": {"callcentre", "subdistrict", "admin", "clinic"},
    "/staff/site": {"site", "admin"},
    "/group": {"subdistrict", "admin"},
    "/admin": {"admin"},
}
OPEN = {"/staff", "/staff/login", "/staff/logout"}  # the sign-in page and its actions
ROLES = ["callcentre", "site", "subdistrict", "admin", "clinic"]
# See only their own area (a clinic account bound to a sub-district: the world's "clinic1");
# the others the whole district (a clinic account bound to none too: tests/test_clinic.py).
AREA_ROLES = {"subdistrict", "site", "clinic"}


def staff_routes():
    for route in ROUTES:
        if isinstance(route, Route) and route.path.startswith(tuple(ALLOWED)) \
                and route.path not in OPEN:
            area = next(a for a in ALLOWED if route.path == a or route.path.startswith(a + "/"))
            for method in sorted(route.methods - {"HEAD"}):
                yield method, route.path, area


CASES = list(staff_routes())


def test_the_matrix_covers_every_staff_route():
    assert {path for _, path, _ in CASES} >= {"/admin", "/staff/calls", "/staff/site"}
    assert len(CASES) >= 1


async def _signed_in(client, role):
    await make_site("TH01")
    kw = ({"site_code": "TH01"} if role == "site"
          else {"subdistrict": "五山街"} if role in ("subdistrict", "clinic") else {})
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


# ---- Areas -------------------------------------------------------------------------------------
# Every route that a role with an area reaches has an entry here, written out independently of
# the code: a new such route without one fails test_every_route_an_area_role_reaches_is_scoped.
# The world: site S01 in 五山街 (the sub-district account's; the site account works at S01) and
# site S02 in 龙洞街. For each request a fresh pair of people is made: "mine" (五山街, booked at
# S01) and "theirs" (龙洞街, booked at S02), each with an active booking for 2 July, a cancelled
# one, a held window, and a group list of their sub-district's with them on it.

@dataclass(frozen=True)
class Person:
    r: int  # resident row id
    b: int  # active booking
    c: int  # cancelled booking
    slot: int  # a window they hold (not the one booked)
    site: str  # the code of the site they are booked at
    code: str  # the active booking's code
    number: str  # full ID number (only ever posted)
    name: str  # as it appears masked
    id_masked: str
    g: int  # a group list of their sub-district with them on it
    list_name: str
    member: int = 0  # their row on that list


@dataclass(frozen=True)
class Scoped:
    """A request about a person (`params`: query or form; `list_id` goes into the path).
    Outside the area: 403, an `out_of_area` audit entry (with the person's row id if
    `names_resident`), nothing of theirs changed, nothing of them shown. Inside, and for the
    whole-district roles allowed on the route: `ok` (`wide`, if set, for those)."""
    params: Callable[[Person], dict]
    ok: int
    names_resident: bool = True
    wide: int | None = None
    roles: frozenset[str] | None = None  # the area roles the case is for (None: every one)


@dataclass(frozen=True)
class Filtered:
    """A search or a listing: someone outside the area is not in the answer (`shows` of them is
    missing), someone inside is; the whole-district roles see both. tests/test_scope.py checks
    that a search's answer about someone outside is exactly the answer about nobody."""
    params: Callable[[Person], dict]
    shows: Callable[[Person], str]


@dataclass(frozen=True)
class NoPerson:
    """Touches no resident, booking or list of anyone's."""
    why: str



SCOPE = {
    # The call-centre console.
    ("GET", "/staff/calls"): NoPerson("the search box"),
    ("POST", "/staff/calls/search"): Filtered(lambda p: {"q": p.number}, lambda p: p.name),
    ("GET", "/staff/calls/resident"): [Scoped(lambda p: {"r": p.r}, 200)],
    ("POST", "/staff/calls/reveal"): [Scoped(lambda p: {"r": p.r, "field": "id"}, 200),
                                      Scoped(lambda p: {"r": p.r, "field": "phone"}, 200)],
    ("GET", "/staff/calls/book"): [Scoped(lambda p: {"r": p.r}, 200)],
    ("POST", "/staff/calls/hold"): [Scoped(lambda p: {"r": p.r, "slot": p.slot}, 303)],
    ("GET", "/staff/calls/check"): [Scoped(lambda p: {"r": p.r, "slot": p.slot}, 200)],
    ("POST", "/staff/calls/confirm"): [
        Scoped(lambda p: {"r": p.r, "slot": p.slot, "key": "k1"}, 303, roles=frozenset({"subdistrict"})),
        # A clinic account says how the booking was made; the call centre and admins may not.
        Scoped(lambda p: {"r": p.r, "slot": p.slot, "key": "k1", "channel": "family_doctor"}, 303,
               wide=422, roles=frozenset({"clinic"})),
    ],
    ("GET", "/staff/calls/done"): [Scoped(lambda p: {"b": p.b}, 200)],
    ("GET", "/staff/calls/cancel"): [Scoped(lambda p: {"r": p.r}, 200)],
    ("POST", "/staff/calls/cancel"): [Scoped(lambda p: {"r": p.r, "b": p.b}, 303)],
    ("GET", "/staff/calls/cancelled"): [Scoped(lambda p: {"b": p.c}, 200)],
    # The waiting list from the console: everyone here is booked, so a join is refused (422).
    ("POST", "/staff/calls/waitlist"): [Scoped(lambda p: {"r": p.r, "scope": "any"}, 422)],
    ("POST", "/staff/calls/waitlist/leave"): [Scoped(lambda p: {"r": p.r}, 303)],
    ("GET", "/staff/calls/callbacks"): NoPerson("the call-back list: only the area's people, "
                                                "tests/test_waitlist_staff.py (nobody here has an offer)"),
    ("POST", "/staff/calls/callbacks/decline"): [Scoped(lambda p: {"r": p.r, "offer": 0}, 404)],
    # The site console: a site account's own site only, whatever the address or form says.
    ("GET", "/staff/site"): [Scoped(lambda p: {"site": p.site}, 200, names_resident=False)],
    ("POST", "/staff/site/lookup"): [Scoped(lambda p: {"site": p.site, "q": p.code}, 200,
                                            names_resident=False)],
    ("POST", "/staff/site/check-in"): [
        Scoped(lambda p: {"site": p.site, "booking": p.b}, 303, names_resident=False),
        # Another site's booking by its row id, posted from one's own site's form: an admin at
        # S01 gets the door's refusal (rule 10), a site account nothing about it.
        Scoped(lambda p: {"site": "S01", "booking": p.b}, 303, wide=422),
    ],
    ("GET", "/staff/site/close"): [Scoped(lambda p: {"site": p.site}, 200, names_resident=False)],
    ("POST", "/staff/site/close"): [Scoped(lambda p: {"site": p.site}, 303, names_resident=False)],
    # Same-day leftovers offered to the waiting list: the site's own only.
    ("GET", "/staff/site/leftovers"): [Scoped(lambda p: {"site": p.site}, 200, names_resident=False)],
    ("GET", "/staff/site/leftovers/check"): [Scoped(lambda p: {"site": p.site, "count": "2", "until": "23:30"},
                                                    200, names_resident=False)],
    ("POST", "/staff/site/leftovers"): [Scoped(lambda p: {"site": p.site, "count": "2", "until": "23:30"},
                                               303, names_resident=False)],
    # Group booking: a list belongs to a sub-district (its rows of other sub-districts are refused
    # row by row, audited: tests/test_group*.py).
    ("GET", "/group"): Filtered(lambda p: {}, lambda p: p.list_name),
    ("POST", "/group/new"): NoPerson("a new list is always of the account's own sub-district"),
    ("POST", "/group/add"): [Scoped(lambda p: {"g": p.g, "name": "王小明", "id_number": "", "phone": ""},
                                    303, names_resident=False)],
    # Book and move act only on what their page showed (its digest, `shown`): posted without
    # it, the page comes back with "check again" (409) and nothing is done.
    ("POST", "/group/book"): [Scoped(lambda p: {"g": p.g, "w": p.slot, "key": "k" * 12}, 409,
                                     names_resident=False)],
    ("POST", "/group/move"): [Scoped(lambda p: {"g": p.g, "w": p.slot}, 409, names_resident=False)],
    ("GET", "/group/{list_id}/row"): [Scoped(lambda p: {"list_id": p.g, "m": p.member}, 200,
                                             names_resident=False)],
    ("POST", "/group/row"): [Scoped(lambda p: {"g": p.g, "m": p.member, "name": "王小明", "id_number": "",
                                               "phone": ""}, 303, names_resident=False)],
    ("POST", "/group/remove"): [Scoped(lambda p: {"g": p.g, "m": p.member}, 303, names_resident=False)],
    ("POST", "/group/cancel"): [Scoped(lambda p: {"g": p.g}, 303, names_resident=False)],
    ("GET", "/group/{list_id}"): [Scoped(lambda p: {"list_id": p.g}, 200, names_resident=False)],
    ("GET", "/group/{list_id}/move"): [Scoped(lambda p: {"list_id": p.g}, 200, names_resident=False)],
    ("GET", "/group/{list_id}/cancel"): [Scoped(lambda p: {"list_id": p.g}, 200, names_resident=False)],
    ("GET", "/group/{list_id}/result"): [Scoped(lambda p: {"list_id": p.g}, 200, names_resident=False)],
    ("GET", "/group/{list_id}/result.csv"): [Scoped(lambda p: {"list_id": p.g}, 200,
                                                    names_resident=False)],
}


def _area_cases():
    """(method, path, area) of every route a role with an area may use."""
    return [(m, p, a) for m, p, a in CASES if ALLOWED[a] & AREA_ROLES]


def test_every_route_an_area_role_reaches_is_scoped():
    missing = [f"{m} {p}" for m, p, _ in _area_cases() if (m, p) not in SCOPE]
    assert not missing, f"add an entry to SCOPE in tests/test_role_matrix.py for: {missing}"
    routes = {(m, p) for m, p, _ in CASES}
    assert not [key for key in SCOPE if key not in routes], "SCOPE names a route that is gone"
    # Whatever only whole-district roles reach needs no area: the admin console.
    assert not ALLOWED["/admin"] & AREA_ROLES


FIRST = dt.date(2021, 6, 5)
DAY = dt.date(2021, 7, 2)  # the day everyone is booked for: the site console works on it
WHO = {"subdistrict": "wushan1", "site": "door1", "callcentre": "agent1", "admin": "boss1",
       "clinic": "clinic1"}


@pytest.fixture
async def world(db, district):
    here = await make_site("S01", "五山街", name="五山街社区卫生服务中心")
    there = await make_site("S02", "龙洞街", name="龙洞街社区卫生服务中心")
    slots = {}
    for site in (here, there):
        slots[site.code] = (await make_slot(site, DAY, "09:00", "10:00", capacity=500),
                            await make_slot(site, DAY, "10:00", "11:00", capacity=500))
    owners = {"S01": await make_staff("subdistrict", "wushan1", subdistrict="五山街"),
              "S02": await make_staff("subdistrict", "longdong1", subdistrict="龙洞街")}
    await make_staff("site", "door1", site_code="S01")
    await make_staff("clinic", "clinic1", subdistrict="五山街")
    await make_staff("callcentre", "agent1")
    await make_staff("admin", "boss1")
    return dict(sites={"S01": here, "S02": there}, slots=slots, owners=owners)


NAMES = itertools.cycle([f"{a}{b}{c}" for a in "赵钱孙李周吴郑王冯陈" for b in "大小晓" for c in "明华军英芳强"])


async def _person(district, world, site_code: str) -> Person:
    """A fresh person booked at the site, all as of NOW (the clock may be on the booked day)."""
    site = world["sites"][site_code]
    booked, held = world["slots"][site_code]
    resident, number = await make_resident(site, first_dose=FIRST, name=next(NAMES))
    first = await book_for(district, resident, booked, NOW)
    await service.cancel(district, resident.id, first.id)
    active = await book_for(district, resident, booked, NOW)
    await service.choose(district, await service.stand(district, resident, NOW), held.id)
    list_name = f"{resident.name}的名单"
    group = await groups.create_list(VAULT, world["owners"][site_code], list_name,
                                     f"{resident.name},{number},13800000000\n".encode())
    member = await GroupMember.get(group_id=group.id)
    return Person(resident.id, active.id, first.id, held.id, site_code, active.code, number,
                  mask_name(resident.name), resident.id_masked, group.id, list_name, member.id)


async def _state(person: Person):
    """What an out-of-area request must not change about a person."""
    bookings = await Booking.filter(resident_id=person.r).order_by("id").values_list("id", "status", "slot_id")
    holds = await Hold.filter(resident_id=person.r).order_by("id").values_list("id", "slot_id", "expires_at")
    members = await GroupMember.filter(group_id=person.g).count()
    resident = await Resident.get(id=person.r)
    return bookings, holds, members, resident.second_dose_date


async def _send(client, method: str, path: str, params: dict):
    """The request; path parameters ({list_id}) are taken from `params`."""
    params = dict(params)
    for name in re.findall(r"{(\w+)}", path):
        path = path.replace(f"{{{name}}}", str(params.pop(name)))
    if method == "GET":
        return path, await client.get(path, params=params)
    return path, await client.post(path, data={"csrftoken": client.cookies.get("csrftoken"), **params})


@pytest.mark.parametrize("role", sorted(AREA_ROLES))
async def test_outside_its_area_every_route_refuses_and_audits_inside_it_works(
        client, world, district, clock, role):
    """For each route this role reaches: theirs refused (or left out) and audited, mine served;
    and the whole-district roles allowed on the route are served for theirs too."""
    routes = [(m, p, a) for m, p, a in _area_cases() if role in ALLOWED[a]]
    if role == "site":
        clock.moment = NOW + dt.timedelta(days=1)  # the door works on the booked day
    wide_roles = sorted(set().union(*(ALLOWED[a] for _, _, a in routes)) - AREA_ROLES)
    async with contextlib.AsyncExitStack() as stack:
        others = {}
        for n, wide in enumerate(wide_roles):
            others[wide] = await stack.enter_async_context(browser_at(client.app, f"203.0.113.{20 + n}"))
            await sign_in(others[wide], WHO[wide])
        await sign_in(client, WHO[role])
        tried = 0
        for method, path, area in routes:
            entry = SCOPE[(method, path)]
            wide = sorted(ALLOWED[area] - AREA_ROLES)
            if isinstance(entry, Filtered):
                await _filtered(client, role, [others[w] for w in wide], district, world, method, path, entry)
            for case in entry if isinstance(entry, list) else []:
                if case.roles is not None and role not in case.roles:
                    continue
                await _refused(client, role, [others[w] for w in wide], district, world, method, path, case)
                tried += 1
    assert tried >= {"subdistrict": 20, "site": 6, "clinic": 11}[role]


async def _refused(client, role, others, district, world, method, path, case: Scoped):
    mine, theirs = await _person(district, world, "S01"), await _person(district, world, "S02")
    what = (role, method, path, case.params(theirs))
    before = await _state(theirs)
    audited = await AuditEntry.filter(action="out_of_area").count()
    url, response = await _send(client, method, path, case.params(theirs))
    assert response.status_code == 403, (*what, response.status_code, response.headers.get("location"))
    assert theirs.name not in response.text and theirs.id_masked not in response.text, what
    assert await _state(theirs) == before, what
    entries = await AuditEntry.filter(action="out_of_area").order_by("id")
    assert len(entries) == audited + 1, what
    last = entries[-1]
    assert last.username == WHO[role] and last.detail.startswith(f"{method} {url}"), (what, last.detail)
    assert last.resident_id == (theirs.r if case.names_resident else None), what

    _, response = await _send(client, method, path, case.params(mine))
    assert response.status_code == case.ok, (role, method, path, "mine", response.status_code)
    for other in others:
        someone = await _person(district, world, "S02")
        _, response = await _send(other, method, path, case.params(someone))
        assert response.status_code == (case.wide or case.ok), (method, path, response.status_code)
    assert await AuditEntry.filter(action="out_of_area").count() == audited + 1, what


async def _filtered(client, role, others, district, world, method, path, entry: Filtered):
    mine, theirs = await _person(district, world, "S01"), await _person(district, world, "S02")
    _, response = await _send(client, method, path, entry.params(theirs))
    assert response.status_code == 200 and entry.shows(theirs) not in response.text, (role, path)
    _, response = await _send(client, method, path, entry.params(mine))
    assert response.status_code == 200 and entry.shows(mine) in response.text, (role, path)
    for other in others:
        _, response = await _send(other, method, path, entry.params(theirs))
        assert response.status_code == 200 and entry.shows(theirs) in response.text, (path, "wide")
