"""Issue 21, findings 1, 8 and 9 (Bearer): request bodies are bounded before anything reads them,
the upload's body is read only after the staff check, every valid form of the multipart header is
understood (never a 500), and the CSRF check has no way around it and refuses cross-site posts.
"""
from __future__ import annotations

import asyncio
import re
import select
import socket
import time
import urllib.request
from pathlib import Path

import httpx
import pytest

from models.db.tables import ImportRun
from tests.conftest import TEST_SECRET
from tests.factories import make_site
from tests.pages import csrf, get_page, parse, text
from tests.realserver import Server
from tests.staff_helpers import make_staff, sign_in
from web.routes.admin import imports as console

UPLOAD = console.UPLOAD_PATH
SAFETY = ("content-security-policy", "x-frame-options", "referrer-policy", "cache-control")
CSV = "name,id_number,phone,first_dose_date,site_code\n张三明,not-an-id,none,2021-06-01,TH01\n".encode()


def assert_page(response, status: int) -> None:
    """A refusal: the status, a page in the user's language, every safety header."""
    assert response.status_code == status, (response.status_code, response.text[:300])
    for header in SAFETY:
        assert header in response.headers, f"{header} missing on a {status}"
    assert "Traceback" not in response.text
    parse(response)


def multipart(fields: list[tuple[str, str | bytes, str | None]], boundary: str = "x") -> bytes:
    """A multipart body as a browser writes it: (name, value, filename or None) in order."""
    out = b""
    for name, value, filename in fields:
        value = value.encode() if isinstance(value, str) else value
        disposition = f'form-data; name="{name}"' + (f'; filename="{filename}"' if filename else "")
        out += f"--{boundary}\r\nContent-Disposition: {disposition}\r\n".encode()
        if filename:
            out += b"Content-Type: text/csv\r\n"
        out += b"\r\n" + value + b"\r\n"
    return out + f"--{boundary}--\r\n".encode()


async def token_of(client, url: str = "/") -> str:
    return csrf(await get_page(client, url))


# ---- finding 8: every valid form of the header, and broken bodies: never a 5xx ----------------

HEADER_FORMS = [
    "multipart/form-data;boundary=x",                   # no space: valid HTTP, asgi-csrf's 500
    'multipart/form-data; boundary="x"',                 # quoted
    "multipart/form-data; BOUNDARY=x",                   # parameter names have no case
    "MULTIPART/Form-Data; boundary=x",                   # nor have media types
    "multipart/form-data; charset=utf-8; boundary=x; foo=bar",  # extra parameters
    "multipart/form-data ;  boundary = x",               # spaces around
]


@pytest.mark.parametrize("header", HEADER_FORMS)
async def test_every_valid_form_of_the_multipart_header_gets_the_normal_answer(client, db, header):
    token = await token_of(client)
    body = multipart([("csrftoken", token, None), ("next", "/guide", None)])
    r = await client.post("/text-size", content=body, headers={"content-type": header})
    assert r.status_code == 303, (header, r.status_code, r.text[:300])
    assert r.headers["location"] == "/guide", "the handler read the form"


BROKEN = [
    ("multipart/form-data; boundary=x", b"--x\r\ngarbage without a colon\r\n\r\nv\r\n--x--\r\n"),
    ("multipart/form-data; boundary=x", b"not multipart at all"),
    ("multipart/form-data; boundary=x", b"--x\r\nContent-Disposition: form-data\r\n\r\nv\r\n--x--\r\n"),
    ("multipart/form-data; boundary=x", b"--x\r\nContent-Disposition: form-data; name=\"csrftoken\"\r\n\r\nab"),
    ("multipart/form-data; boundary=", b"--\r\n\r\n"),
    ('multipart/form-data; boundary=""', b"--\r\n\r\n"),
    ("multipart/form-data; boundary", b"x"),
    ("multipart/form-data; boundary=" + "b" * 71, b"x"),       # longer than RFC 2046 allows
    ("multipart/form-data; boundary*=UTF-8''%E4%B8%AD", b"x"),  # not a boundary's characters
]


@pytest.mark.parametrize("header,body", BROKEN)
async def test_a_broken_multipart_body_or_boundary_is_a_4xx_page(client, db, header, body):
    await token_of(client)  # the cookie, so only the body decides
    r = await client.post("/text-size", content=body, headers={"content-type": header})
    assert 400 <= r.status_code < 500, (header, body, r.status_code)
    assert_page(r, r.status_code)


async def test_a_malformed_body_with_a_good_boundary_and_the_token_is_a_400(client, db):
    token = await token_of(client)
    body = multipart([("csrftoken", token, None)])[:-4] + b"\r\nBroken: \x00\r\n--x\r\nnonsense"
    r = await client.post("/text-size", content=body,
                          headers={"content-type": "multipart/form-data;boundary=x"})
    assert_page(r, 400)
    assert "无法处理这个请求" in text(parse(r))


# ---- finding 9 and the same-origin check ------------------------------------------------------


async def test_a_bearer_header_does_not_skip_the_csrf_check(client, db):
    await token_of(client)  # a csrftoken cookie, as any visitor's browser has
    r = await client.post("/text-size", data={"next": "/"}, headers={"Authorization": "Bearer x"})
    assert_page(r, 403)
    client.cookies.clear()
    r = await client.post("/text-size", data={"next": "/"}, headers={"Authorization": "Bearer x"})
    assert_page(r, 403)


async def test_every_post_needs_the_token_even_without_cookies_but_signed_callers(client, db):
    for path in ("/text-size", "/staff/login", "/booking/verify", "/entry", UPLOAD, "/nowhere"):
        for method in ("POST", "PUT", "DELETE", "PATCH"):
            r = await client.request(method, path, data={"next": "/"})
            assert_page(r, 403)
    r = await client.post("/api/handoff", content=b"{}", headers={"content-type": "application/json"})
    assert "页面已过期" not in r.text, "the hand-off is not the CSRF check's: it checks its signature"


@pytest.mark.parametrize("headers", [
    {"Origin": "https://evil.example"},
    {"Origin": "http://testserver.evil.example"},
    {"Origin": "http://testserver:8080"},
    {"Origin": "null", "Sec-Fetch-Site": "cross-site"},
    {"Origin": "garbage"},
    {"Sec-Fetch-Site": "cross-site"},
    {"Sec-Fetch-Site": "same-site"},
    {"Sec-Fetch-Site": "cross-site", "Origin": "http://testserver"},
])
async def test_a_cross_site_post_with_a_valid_token_pair_is_refused(client, db, headers):
    token = await token_of(client)
    r = await client.post("/text-size", data={"csrftoken": token, "next": "/"}, headers=headers)
    assert_page(r, 403)
    r = await client.post("/text-size", data={"next": "/"}, headers={"X-CSRFToken": token, **headers})
    assert_page(r, 403)


@pytest.mark.parametrize("headers", [
    {}, {"Origin": "http://testserver"}, {"Sec-Fetch-Site": "same-origin"}, {"Sec-Fetch-Site": "none"},
    {"Origin": "http://TESTSERVER:80", "Sec-Fetch-Site": "same-origin"},
    # A browser's form post from our pages: Referrer-Policy no-referrer makes its Origin "null"
    {"Origin": "null", "Sec-Fetch-Site": "same-origin"}, {"Origin": "null"},
])
async def test_a_same_origin_post_with_the_token_goes_through(client, db, headers):
    token = await token_of(client)
    r = await client.post("/text-size", data={"csrftoken": token, "next": "/"}, headers=headers)
    assert r.status_code == 303, (headers, r.status_code)
    r = await client.post("/text-size", data={"next": "/"}, headers={"X-CSRFToken": token, **headers})
    assert r.status_code == 303, (headers, r.status_code)


async def test_base_url_is_our_origin_behind_a_proxy(settings, clock, db):
    """Behind nginx the app is asked for 127.0.0.1:8000; the browser's Origin is BASE_URL's."""
    from web.app import create_app

    app = create_app(settings.with_(base_url="https://booking.example.gov.cn"), manage_db=False,
                     clock=clock)
    transport = httpx.ASGITransport(app=app, client=("203.0.113.7", 5000))
    async with httpx.AsyncClient(transport=transport, base_url="https://127.0.0.1:8000") as c:
        token = await token_of(c)
        ok = await c.post("/text-size", data={"csrftoken": token, "next": "/"},
                          headers={"Origin": "https://booking.example.gov.cn"})
        assert ok.status_code == 303
        other = await c.post("/text-size", data={"csrftoken": token, "next": "/"},
                             headers={"Origin": "https://booking.example.com"})
        assert_page(other, 403)


async def test_a_wrong_or_missing_token_or_cookie_is_refused_in_the_users_language(client, db):
    token = await token_of(client)
    client.cookies.set("lang", "en")
    for data in ({"next": "/"}, {"csrftoken": token + "x"}, {"csrftoken": ""}):
        r = await client.post("/text-size", data=data)
        assert_page(r, 403)
        assert "This page has expired" in text(parse(r))
    forged = token.rsplit(".", 1)[0] + ".AAAA"
    client.cookies.clear()
    client.cookies.set("csrftoken", forged)
    r = await client.post("/text-size", data={"csrftoken": forged})
    assert_page(r, 403)


async def test_the_csrf_cookie_is_httponly_lax_and_varies(client, db):
    r = await client.get("/")
    cookie = r.headers["set-cookie"]
    assert cookie.startswith("csrftoken=") and "HttpOnly" in cookie and "SameSite=Lax" in cookie
    assert "Cookie" in r.headers["vary"]
    again = await client.get("/")
    assert "csrftoken=" not in again.headers.get("set-cookie", ""), "a good cookie is kept"


# ---- the upload: read only after the staff check, its token checked as it streams ------------


async def _raw(app, method: str, path: str, headers: list[tuple[bytes, bytes]], chunks: list[bytes]):
    """Call the app as a server would; the response and how many body messages it asked for."""
    asked = 0
    sent: list[dict] = []

    async def receive():
        nonlocal asked
        asked += 1
        if asked <= len(chunks):
            return {"type": "http.request", "body": chunks[asked - 1], "more_body": asked < len(chunks)}
        return {"type": "http.disconnect"}

    async def send(message):
        sent.append(message)

    scope = {"type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1", "method": method,
             "scheme": "http", "path": path, "raw_path": path.encode(), "query_string": b"",
             "root_path": "", "headers": [(b"host", b"testserver"), *headers],
             "client": ("203.0.113.7", 5000), "server": ("testserver", 80)}
    await asyncio.wait_for(app(scope, receive, send), 30)
    status = next(m["status"] for m in sent if m["type"] == "http.response.start")
    return status, asked, sent


def _cookie_header(client) -> tuple[bytes, bytes]:
    return b"cookie", "; ".join(f"{k}={v}" for k, v in client.cookies.items()).encode()


async def test_an_anonymous_or_non_admin_upload_is_refused_without_reading_the_body(client, db):
    app = client.app
    token = await token_of(client, "/staff")
    body = multipart([("csrftoken", token, None), ("file", CSV, "a.csv")])
    headers = [(b"content-type", b"multipart/form-data; boundary=x"),
               (b"content-length", str(200 * 1024 * 1024).encode()), _cookie_header(client)]
    status, asked, _ = await _raw(app, "POST", UPLOAD, headers, [body])
    assert (status, asked) == (303, 0), "anonymous: sent to sign in, not a byte read"
    await make_site("TH01")
    await make_staff("site", "door", site_code="TH01")
    await sign_in(client, "door")
    token = await token_of(client, "/staff/site")
    headers[2] = _cookie_header(client)
    status, asked, _ = await _raw(app, "POST", UPLOAD, headers, [body])
    assert (status, asked) == (403, 0), "another role: refused, not a byte read"
    assert await ImportRun.all().count() == 0


async def test_a_small_form_declaring_more_than_64_kb_is_refused_unread(client, db):
    headers = [(b"content-type", b"application/x-www-form-urlencoded"),
               (b"content-length", b"100000"), _cookie_header(client)]
    status, asked, _ = await _raw(client.app, "POST", "/text-size", headers, [b"next=/"])
    assert (status, asked) == (413, 0)


@pytest.fixture
async def admin(client, db):
    await make_site("TH01")
    await make_staff("admin", "boss")
    await sign_in(client, "boss")
    client.token = await token_of(client, "/admin/imports")
    return client


async def test_an_admins_upload_without_the_token_first_is_refused(admin):
    file = ("file", CSV, "first_doses.csv")
    for fields in ([file], [file, ("csrftoken", admin.token, None)],
                   [("csrftoken", admin.token + "x", None), file], [("csrftoken", "", None), file],
                   [("other", "1", None)], [("csrftoken", "a" * 1000, None), file]):
        r = await admin.post(UPLOAD, content=multipart(fields),
                             headers={"content-type": "multipart/form-data;boundary=x"})
        assert_page(r, 403)
    assert await ImportRun.all().count() == 0
    ok = await admin.post(UPLOAD, content=multipart([("csrftoken", admin.token, None), file]),
                          headers={"content-type": 'multipart/form-data; boundary="x"'})
    assert ok.status_code == 303, ok.text[:300]
    await console.wait_for_imports(admin.app)
    header = await admin.post(UPLOAD, content=multipart([file]), headers={
        "content-type": "multipart/form-data; boundary=x", "X-CSRFToken": admin.token})
    assert header.status_code == 303, "the token in its header (htmx) works too"
    await console.wait_for_imports(admin.app)
    assert await ImportRun.all().count() == 2


def _chunks(body: bytes, size: int = 16 * 1024):
    async def gen():
        for i in range(0, len(body), size):
            yield body[i:i + size]
    return gen()


async def test_a_chunked_upload_is_counted_and_cut_off_past_the_limit(admin, monkeypatch):
    monkeypatch.setitem(console.UPLOADS, UPLOAD, 256 * 1024)
    small = multipart([("csrftoken", admin.token, None), ("file", CSV, "first_doses.csv")])
    r = await admin.post(UPLOAD, content=_chunks(small),
                         headers={"content-type": "multipart/form-data; boundary=x"})
    assert r.status_code == 303, "a chunked upload within the limit is taken (no Content-Length)"
    await console.wait_for_imports(admin.app)
    big = multipart([("csrftoken", admin.token, None),
                     ("file", CSV + b"x" * (300 * 1024), "first_doses.csv")])
    r = await admin.post(UPLOAD, content=_chunks(big),
                         headers={"content-type": "multipart/form-data; boundary=x"})
    assert_page(r, 413)
    assert await ImportRun.all().count() == 1
    small_form = await admin.post("/text-size", content=_chunks(b"next=/&x=" + b"a" * 70_000),
                                  headers={"content-type": "application/x-www-form-urlencoded"})
    assert_page(small_form, 413)


async def test_a_body_longer_than_its_content_length_is_cut_off(admin, monkeypatch):
    """The bytes that arrive are counted, not the length the client declared."""
    monkeypatch.setitem(console.UPLOADS, UPLOAD, 256 * 1024)
    head = multipart([("csrftoken", admin.token, None)])[:-len(b"--x--\r\n")]
    chunks = [head + b'--x\r\nContent-Disposition: form-data; name="file"; filename="a.csv"\r\n\r\n']
    chunks += [b"y" * (64 * 1024)] * 6
    headers = [(b"content-type", b"multipart/form-data; boundary=x"), (b"content-length", b"1000"),
               _cookie_header(admin)]
    status, asked, _ = await _raw(admin.app, "POST", UPLOAD, headers, chunks)
    assert status == 413 and asked <= 6
    assert await ImportRun.all().count() == 0


# ---- finding 1 on a real server: memory stays flat, the refusal comes at once -----------------

BIG = 200 * 1024 * 1024


def _group_rss(pgid: int) -> int:
    """Resident memory of every process of the server's group, in bytes."""
    total = 0
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
            fields = stat[stat.rindex(")") + 2:].split()
            if int(fields[2]) != pgid:  # field 5 of stat: the process group
                continue
            status = (entry / "status").read_text()
        except (OSError, ValueError):
            continue
        match = re.search(r"^VmRSS:\s+(\d+) kB", status, re.M)
        total += int(match.group(1)) * 1024 if match else 0
    return total


def _post_big(port: int, shape: str, cookie: str = "") -> tuple[bytes, float]:
    """An anonymous 200 MB multipart POST to the upload, written a megabyte at a time (never held
    whole): after 4 MB the client stops and waits for an answer (up to a minute: a loaded machine
    is slow, but an app that reads the whole body before answering never answers while the rest
    is held back), then sends the rest anyway, as an attacker would. The answer's first line and
    the seconds it took (inf: none came)."""
    if shape == "field":  # one huge ordinary field: what asgi-csrf kept in memory, twice
        head = b'--x\r\nContent-Disposition: form-data; name="text"\r\n\r\n'
    else:
        head = b'--x\r\nContent-Disposition: form-data; name="file"; filename="a.csv"\r\n\r\n'
    tail = b"\r\n--x--\r\n"
    block = b"a" * (1024 * 1024)
    with socket.create_connection(("127.0.0.1", port), timeout=60) as s:
        request = (f"POST {UPLOAD} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n"
                   f"Content-Type: multipart/form-data; boundary=x\r\n"
                   + (f"Cookie: {cookie}\r\n" if cookie else "")
                   + f"Content-Length: {len(head) + BIG + len(tail)}\r\n\r\n")
        s.sendall(request.encode() + head)
        started = time.monotonic()
        written = 0
        for _ in range(4):
            s.sendall(block)
            written += len(block)
        if not select.select([s], [], [], 60)[0]:
            return b"", float("inf")  # an app that reads the whole body first answers only then
        answer, seconds = s.recv(4096), time.monotonic() - started
        try:
            while written < BIG:
                s.sendall(block)
                written += len(block)
            s.sendall(tail)
        except (BrokenPipeError, ConnectionResetError):
            pass  # the server may close the connection once it has answered
    return answer.split(b"\r\n", 1)[0], seconds


def test_an_anonymous_200_mb_upload_is_refused_at_once_and_takes_no_memory(tmp_path):
    server = Server(f"sqlite://{tmp_path}/bodies.sqlite3", TEST_SECRET, workers=1)
    try:
        with urllib.request.urlopen(server.base_url + "/staff", timeout=10) as r:
            cookie = r.headers["set-cookie"].split(";", 1)[0]  # csrftoken=…, as any visitor has
        _post_big(server.port, "file", cookie)  # warm up: every module loaded, every buffer made
        before = _group_rss(server.proc.pid)
        for shape, cookies, status in (("field", cookie, b"303"), ("file", "", b"403"),
                                       ("file", cookie, b"303"), ("field", "", b"403")):
            line, seconds = _post_big(server.port, shape, cookies)
            # 303: to the sign-in page (the staff check); 403: no CSRF cookie, refused before it
            # Answered while 196 of the 200 MB were still held back: nothing was waited for.
            assert line.startswith(b"HTTP/1.1 " + status), (shape, cookies, line, seconds)
        grown = _group_rss(server.proc.pid) - before
        assert grown < 30 * 1024 * 1024, f"the server kept {grown >> 20} MB after 800 MB refused"
        with urllib.request.urlopen(server.base_url + "/healthz", timeout=10) as r:
            assert r.status == 200
    finally:
        server.stop()
