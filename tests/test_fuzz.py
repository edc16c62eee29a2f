"""Every route, every field, hostile values: no 5xx and no traceback, ever.

The routes come from the app's own routing table and the fields from the templates and the
handlers, so a new route or field is fuzzed without touching this file; a route that no session
below can reach fails the test until it is given one.
"""
from __future__ import annotations

import datetime as dt
import inspect
import logging
import re
from pathlib import Path
from urllib.parse import quote

import httpx
import pytest
from starlette.routing import Route

from models.db.tables import GroupMember
from models.channels import groups
from models.people.links import issue_link
from tests.conftest import NOW, VAULT
from tests.factories import book_for, make_resident, make_site, make_slot
from tests.pages import csrf, get_page, post_form
from tests.staff_helpers import PASSWORD, make_staff, sign_in

ROOT = Path(__file__).resolve().parent.parent
HUGE = "9223372036854775808"
HOSTILE = ["", "0", "-1", HUGE, "-" + HUGE, "1e309", "1.5", "NaN", "x" * 1000, "\x00", "\r\nSet-Cookie: a=b",
           "%00%ff", "<script>alert(1)</script>", "../../etc/passwd", "２０２１－０７－０２",
           "2021-13-45", "9999-12-31", "0001-01-01", "😀" * 50, "' OR 1=1 --"]
NASTY = [HUGE, "\x00\n" + "x" * 3000]
# Every valid way of writing a multipart Content-Type (issue 21: `boundary=x` without a space was
# a 500 on every POST route), and broken ones: each gets the normal answer or a 4xx page.
MULTIPART_FORMS = ["multipart/form-data;boundary=x", 'multipart/form-data; boundary="x"',
                   "multipart/form-data; BOUNDARY=x", "MULTIPART/Form-Data; boundary=x; charset=utf-8; a=b"]
BAD_BOUNDARIES = ["multipart/form-data; boundary=", 'multipart/form-data; boundary=""',
                  "multipart/form-data; boundary=" + "x" * 80, "multipart/form-data; boundary=a\xe9"]
METHODS = ["GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"]
# The routes are fuzzed in this many parts, each its own test (a fresh world and sessions), so
# that the suite's workers share them (one part alone was the suite's longest test: 58 s of CPU).
PARTS = 8


def field_names() -> set[str]:
    """Every form field a template sends and every value a handler reads."""
    names = set()
    for path in (ROOT / "templates").rglob("*.html"):
        names |= set(re.findall(r'name="([a-z_]+)"', path.read_text(encoding="utf-8")))
    for path in (ROOT / "web" / "routes").glob("*.py"):
        names |= set(re.findall(r'(?:form|q|query_params|source)\.get\("([a-z_]+)"',
                                path.read_text(encoding="utf-8")))
    return names - {"csrftoken", "viewport"}


def fields_read_by(endpoint) -> set[str]:
    """The form and query fields a handler reads itself, or through a helper of its module that it
    calls (`_asked(request)`), for the one-field-at-a-time round."""
    handler = inspect.unwrap(endpoint)
    source = inspect.getsource(handler)
    module = inspect.getmodule(handler)
    for name in set(re.findall(r"\b(_[a-z_]+)\(", source)):
        helper = getattr(module, name, None)
        if inspect.isfunction(helper):
            source += inspect.getsource(helper)
    return set(re.findall(r'(?:form|q|query_params|source)\.get\("([a-z_]+)"', source))


class Errors(logging.Handler):
    def __init__(self):
        super().__init__(logging.ERROR)
        self.records: list[str] = []

    def emit(self, record):
        self.records.append(f"{record.name}: {record.getMessage()}")


@pytest.fixture
async def world(db, settings, clock):
    site = await make_site("S01")
    resident, number = await make_resident(site, first_dose=dt.date(2021, 6, 5))
    booked, _ = await make_resident(site, first_dose=dt.date(2021, 6, 5), phone="13900000001")
    slot = await make_slot(site, dt.date(2021, 7, 2), "09:00", "10:00", capacity=50)
    from web.settings import build_district

    booking = await book_for(build_district(settings, clock=clock), booked, slot)
    boss = await make_staff("admin", "boss")
    await make_staff("site", "door", site_code="S01")
    group = await groups.create_list(VAULT, boss, "fuzz", f"张三明,{number},13812345678\n".encode())
    member = await GroupMember.get(group=group)
    return {"token": await issue_link(resident, now=NOW), "number": number,
            "valid": {"r": resident.id, "b": booking.id, "slot": slot.id, "site": site.id,
                      "g": group.id, "list_id": group.id, "m": member.id, "w": slot.id,
                      "text": f"张三明,{number}",
                      "booking": booking.id, "day": "2021-07-02", "q": number, "field": "id",
                      "id_number": number, "username": "boss", "password": PASSWORD,
                      "next": "/", "resident": resident.id, "before": 10, "action": "login",
                      "key": "k", "moved": "1", "lang": "en", "token": "x",
                      "from_day": "2021-06-26", "to_day": "2021-07-02", "subdistrict": "五山街",
                      "channel": "callcentre"}}


async def _browser(app):
    transport = httpx.ASGITransport(app=app, client=("203.0.113.99", 5000), raise_app_exceptions=False)
    return httpx.AsyncClient(transport=transport, base_url="http://testserver")


async def sessions(app, world) -> dict[str, httpx.AsyncClient]:
    """A browser per kind of visitor, each with a page's CSRF token at hand."""
    anonymous, resident, admin, door = [await _browser(app) for _ in range(4)]
    await resident.get(f"/b/{world['token']}")
    page = await get_page(resident, "/booking")
    await post_form(resident, "/booking/verify", page, {"id_number": world["number"]})
    await sign_in(admin, "boss")
    await sign_in(door, "door")
    return {"public": anonymous, "resident": resident, "admin": admin, "site": door}


def who_fuzzes(path: str) -> str:
    """The visitor who gets furthest into a route."""
    if path.startswith("/booking"):
        return "resident"
    if path.startswith("/staff/site"):
        return "site"
    if path.startswith(("/staff/calls", "/admin", "/group")):
        return "admin"
    if path in ("/", "/healthz", "/metrics", "/lang/{lang}", "/text-size", "/b/{token}", "/staff",
                "/staff/login", "/staff/logout", "/find", "/poster", "/api/handoff",
                "/h/{token}", "/o/{token}", "/guide", "/wechat") or path.startswith("/entry"):
        return "public"
    raise AssertionError(f"the fuzz test does not know who may use {path}: add it to who_fuzzes()")


def query_groups(fields: dict[str, str], most: int = 40) -> list[dict[str, str]]:
    """The fields in groups small enough for one address (httpx refuses a query over 64 KiB:
    70 fields of 1000 characters are more)."""
    names = sorted(fields)
    return [{n: fields[n] for n in names[i:i + most]} for i in range(0, len(names), most)]


def multipart_body(fields: dict[str, str], boundary: str = "x") -> bytes:
    """A multipart body as a browser writes it, the fields in order (the token first)."""
    parts = [f'--{boundary}\r\nContent-Disposition: form-data; name="{name}"\r\n\r\n'.encode()
             + str(value).encode() + b"\r\n" for name, value in fields.items()]
    return b"".join(parts) + f"--{boundary}--\r\n".encode()


def fill(path: str, value: str, valid: dict | None = None) -> str:
    """The route's path with `value` (percent-encoded) in each path parameter, or the valid
    value of a parameter `valid` has one for (a list's id: to get past "no such list")."""
    def one(match):
        name = match.group(0)[1:-1]
        return quote(str(valid[name]) if valid and name in valid else value, safe="") or "x"

    return re.sub(r"\{[a-z_]+\}", one, path)


@pytest.mark.parametrize("part", range(PARTS))
async def test_no_route_answers_hostile_input_with_a_server_error(world, client, db_url, part):
    from web.app import ROUTES, SIGNED_BY_CALLER

    app = client.app
    # The hand-off on (HANDOFF_PARTNERS): its handlers read the settings at each request.
    app.state.settings = app.state.settings.with_(handoff_partners=(("fuzz", "fuzz-secret-0123456789"),))
    # The official account's callback on (WECHAT_TOKEN), plain mode: unsigned, everything is a 403.
    app.state.settings = app.state.settings.with_(wechat_token="fuzz-wechat-token")
    # /metrics open to every address (METRICS_ALLOW): its handler reads the settings.
    app.state.settings = app.state.settings.with_(metrics_allow=("0.0.0.0/0", "::/0"))
    browsers = await sessions(app, world)
    tokens = {name: csrf(await get_page(b, "/" if name == "public" else {
        "resident": "/booking/site", "admin": "/admin", "site": "/staff/site"}[name]))
        for name, b in browsers.items()}
    fields = field_names()
    # A field this fixture has no value for gets "1": an id, a count or a day offset alike.
    valid = {name: str(world["valid"].get(name, "1")) for name in fields}
    errors = Errors()
    logging.getLogger().addHandler(errors)
    # The test client logs each URL it requests, and the valid baseline puts an ID number in
    # some query strings: that is the client's log, not the service's, and must stay out of the
    # suite's personal-data scan. The service's own access log never writes a query string.
    client_log = logging.getLogger("httpx")
    client_level = client_log.level
    client_log.setLevel(logging.WARNING)
    failures: list[str] = []
    sent = 0

    async def send(browser, method, url, **kw):
        nonlocal sent
        sent += 1
        r = await browser.request(method, url, **kw)
        if r.status_code >= 500 or "Traceback" in r.text:
            failures.append(f"{method} {url[:80]} {kw.get('data') or kw.get('content') or ''}"[:300]
                            + f" -> {r.status_code}")

    routes = [r for r in ROUTES if isinstance(r, Route) and r.name != "staff_logout"][part::PARTS]
    # What only the body parser sees (multipart, content types, broken bodies) is the same
    # whatever the database: sent on SQLite; PostgreSQL gets every value a query may meet.
    parsing = db_url.startswith("sqlite")
    try:
        for route in routes:
            who = who_fuzzes(route.path)
            browser, token = browsers[who], tokens[who]
            for method in METHODS:  # every method, plain values
                await send(browser, method, fill(route.path, "x", valid), params=valid)
            for value in HOSTILE:  # every field hostile at once, in the path, query and body
                url = fill(route.path, value)
                everything = {name: value for name in fields}
                for group in query_groups(everything):
                    await send(browser, "GET", url, params=group)
                await send(browser, "POST", url, data={"csrftoken": token, **everything})
                if parsing:
                    await send(browser, "POST", url, files={
                        "csrftoken": (None, token), **{k: (None, v) for k, v in everything.items()}})
            for name in sorted(fields_read_by(route.endpoint)):  # one hostile, the rest valid
                for value in NASTY:
                    one = {**valid, name: value}
                    await send(browser, "GET", fill(route.path, "x", valid), params=one)
                    await send(browser, "POST", fill(route.path, "x", valid), data={"csrftoken": token, **one})
            raw = fill(route.path, "x")  # bytes that are not UTF-8, duplicated fields, wrong types
            await send(browser, "GET", raw + "?r=%ff%fe&slot=1&slot=2&day=%c0%af")
            await send(browser, "POST", raw, content=b"csrftoken=" + token.encode() + b"&r=\xff\xfe&slot=1&slot=2",
                       headers={"content-type": "application/x-www-form-urlencoded"})
            if not parsing:
                continue
            for content_type in ("application/json", "text/plain", "multipart/form-data",
                                 "multipart/form-data; boundary=", "application/x-www-form-urlencoded; charset=latin-1"):
                await send(browser, "POST", raw, content=b"r=1&slot=\xe9",
                           headers={"content-type": content_type})
            url = fill(route.path, "x", valid)
            body = multipart_body({"csrftoken": token, **valid})
            for content_type in MULTIPART_FORMS:  # every valid form of the header, a good body
                await send(browser, "POST", url, content=body, headers={"content-type": content_type})
            for content_type in BAD_BOUNDARIES:
                await send(browser, "POST", url, content=body,
                           headers={"content-type": content_type.encode("latin-1")})
            for broken in (body[:len(body) // 2] + b"\r\n--x\r\nno colon here\r\n\r\n--x--\r\n",
                           body[:len(body) // 2], b"--x\r\n\r\n" + body, b"junk" + body):
                await send(browser, "POST", url, content=broken,  # a good boundary, a broken body
                           headers={"content-type": "multipart/form-data;boundary=x"})
            bearer = await browser.post(url, data=valid, headers={"authorization": "Bearer x"})
            sent += 1
            if bearer.status_code != 403 and route.path not in SIGNED_BY_CALLER:  # no token: refused
                failures.append(f"POST {url[:80]} with a Bearer header and no token -> {bearer.status_code}")
    finally:
        logging.getLogger().removeHandler(errors)
        client_log.setLevel(client_level)
        for b in browsers.values():
            await b.aclose()
    assert not failures, f"{len(failures)} of {sent} requests failed, e.g.:\n" + "\n".join(failures[:15])
    assert not errors.records, "errors logged:\n" + "\n".join(errors.records[:10])
    assert sent > 1000 // PARTS
