"""The waiting room (web/waiting_room.py): admission per process, the line's order, the page.

No timing: the app below the middleware blocks each request on an event the test sets, so the
places are filled and freed exactly when the test says; a wait of 0 gives the page at once, and
a long wait is never reached because the test frees a place first.
"""
from __future__ import annotations

import asyncio
import re
from urllib.parse import quote

import httpx
import pytest
from itsdangerous import TimestampSigner
from starlette.applications import Starlette

from tests.conftest import TEST_SECRET
from tests.pages import parse, text
from web.waiting_room import COOKIE, Line, WaitingRoom

LONG = 3600  # a wait that never ends in a test: the test frees a place first


class Blocking:
    """An ASGI app whose requests each wait for the test to let them finish."""

    def __init__(self):
        self.entered: list[str] = []
        self.gates: dict[str, asyncio.Event] = {}
        self.arrived = asyncio.Event()

    def gate(self, name: str) -> asyncio.Event:
        return self.gates.setdefault(name, asyncio.Event())

    def finish(self, name: str) -> None:
        self.gate(name).set()

    async def __call__(self, scope, receive, send):
        name = dict(h for h in scope["headers"]).get(b"x-name", b"?").decode()
        self.entered.append(name)
        self.arrived.set()
        message = await receive()
        await self.gate(name).wait()
        if name.startswith("boom"):
            raise RuntimeError("the handler failed")
        if name.startswith("leave"):
            return  # the client went away: no response
        await send({"type": "http.response.start", "status": 200,
                    "headers": [(b"content-type", b"text/plain")]})
        await send({"type": "http.response.body", "body": f"ok {name} {message.get('body', b'').decode()}".encode()})


class Call:
    """One request straight into the middleware, with its own receive and send."""

    def __init__(self, room, name, method="GET", path="/booking", *, cookies="", body=b"",
                 headers=()):
        hdrs = [(b"x-name", name.encode()), *((k.encode(), v.encode()) for k, v in headers)]
        if cookies:
            hdrs.append((b"cookie", cookies.encode("latin-1")))
        if body:
            hdrs.append((b"content-type", b"application/x-www-form-urlencoded"))
        path, _, query = path.partition("?")
        self.scope = {"type": "http", "method": method, "path": path, "raw_path": path.encode(),
                      "query_string": query.encode(), "headers": hdrs, "app": ROUTER,
                      "scheme": "http", "server": ("testserver", 80), "client": ("203.0.113.7", 1),
                      "root_path": "", "http_version": "1.1"}
        self.body = body
        self.gone = asyncio.Event()
        self.sent_body = False
        self.messages: list[dict] = []
        self.task = asyncio.ensure_future(room(self.scope, self.receive, self.send))

    async def receive(self):
        if not self.sent_body:
            self.sent_body = True
            return {"type": "http.request", "body": self.body, "more_body": False}
        await self.gone.wait()
        return {"type": "http.disconnect"}

    async def send(self, message):
        self.messages.append(message)

    async def done(self):
        await self.task
        return self

    @property
    def status(self) -> int:
        return self.messages[0]["status"]

    @property
    def headers(self) -> dict[str, str]:
        return {k.decode().lower(): v.decode() for k, v in self.messages[0]["headers"]}

    @property
    def cookies(self) -> list[str]:
        return [v.decode() for k, v in self.messages[0]["headers"] if k == b"set-cookie"]

    @property
    def text(self) -> str:
        return b"".join(m.get("body", b"") for m in self.messages[1:]).decode()


def _router():
    from web.app import ROUTES

    return Starlette(routes=ROUTES)  # the page's links are drawn from the real routing table


ROUTER = _router()


async def settle():
    """Let every task that can run, run (no clock involved)."""
    for _ in range(20):
        await asyncio.sleep(0)


def room_over(app, *, active=1, wait=LONG, post_wait=LONG):
    return WaitingRoom(app, active=active, wait=wait, post_wait=post_wait, secret=TEST_SECRET)


@pytest.fixture
def app():
    return Blocking()


async def test_under_the_limit_requests_pass_untouched(app):
    room = room_over(app, active=2)
    a, b = Call(room, "a"), Call(room, "b", "POST", "/booking/site", body=b"site=1")
    await settle()
    assert app.entered == ["a", "b"] and room.line.active == 2
    app.finish("a")
    app.finish("b")
    await a.done()
    await b.done()
    assert (a.status, a.text) == (200, "ok a ")
    assert (b.status, b.text) == (200, "ok b site=1")
    assert "x-waiting-room" not in a.headers and not a.cookies
    assert room.line.active == 0


async def test_over_the_limit_a_get_gets_the_waiting_page_in_chinese(app):
    room = room_over(app, wait=0)
    first = Call(room, "first")
    await settle()
    page = await Call(room, "second", path="/booking/slot?day=2021-07-02").done()
    assert app.entered == ["first"]
    assert page.status == 200
    assert page.headers["x-waiting-room"] == "1"
    assert int(page.headers["retry-after"]) >= 1
    assert page.headers["cache-control"] == "no-store"
    assert any(c.startswith(f"{COOKIE}=") and "HttpOnly" in c for c in page.cookies)
    refresh = re.search(r'<meta http-equiv="refresh" content="(\d+); url=([^"]+)">', page.text)
    assert refresh and refresh.group(2) == "/booking/slot?day=2021-07-02"
    assert refresh.group(1) == page.headers["retry-after"]
    assert '<html lang="zh-Hans">' in page.text and "正在排队" in page.text
    assert "<script" not in page.text.split("</head>")[1]  # nothing on the page needs JavaScript
    app.finish("first")
    await first.done()
    assert room.line.active == 0


async def test_the_waiting_page_speaks_english_and_large_text_with_their_cookies(app):
    room = room_over(app, wait=0)
    Call(room, "first")
    await settle()
    page = await Call(room, "second", cookies="lang=en; text=large").done()
    assert '<html lang="en">' in page.text
    assert "You are in the queue" in page.text and "正在排队" not in page.text
    assert '<body class="large"' in page.text
    app.finish("first")


async def test_an_htmx_request_is_sent_to_load_the_page_for_real(app):
    room = room_over(app, wait=0)
    Call(room, "first")
    await settle()
    page = await Call(room, "second", path="/booking/site", headers=[("hx-request", "true"),
                                                                    ("hx-boosted", "true")]).done()
    assert page.headers["hx-redirect"] == "/booking/site"  # its <meta refresh> would be lost
    app.finish("first")


async def test_a_refreshed_resident_goes_in_before_newer_arrivals(app):
    room = room_over(app, wait=0)
    Call(room, "first")
    await settle()
    bounced = await Call(room, "early").done()
    cookie = bounced.cookies[0].split(";")[0]
    room.wait = LONG
    Call(room, "new")  # arrives after "early" first queued, with no cookie
    await settle()
    Call(room, "early-again", cookies=cookie)  # the refresh, behind "new" in arrival
    await settle()
    assert room.line.waiting() == 2
    app.finish("first")
    await settle()
    assert app.entered == ["first", "early-again"]
    app.finish("early-again")
    await settle()
    assert app.entered == ["first", "early-again", "new"]
    app.finish("new")
    await settle()
    assert room.line.active == 0


async def test_of_two_queued_residents_the_one_who_queued_first_goes_first(app):
    room = room_over(app)
    signer = TimestampSigner(TEST_SECRET, salt="booking.waiting-room")
    Call(room, "first")
    await settle()
    Call(room, "later", cookies=f"{COOKIE}={signer.sign('1000000000000').decode()}")
    await settle()
    Call(room, "earlier", cookies=f"{COOKIE}={signer.sign('999999999000').decode()}")
    await settle()
    app.finish("first")
    await settle()
    assert app.entered == ["first", "earlier"]


async def test_residents_mid_journey_go_in_before_queued_residents_and_new_arrivals(app):
    room = room_over(app)
    session = TimestampSigner(TEST_SECRET).sign("eyJyIjogMX0=").decode()  # as SessionMiddleware
    queued = TimestampSigner(TEST_SECRET, salt="booking.waiting-room").sign("999999999000").decode()
    Call(room, "first")
    await settle()
    Call(room, "new")
    Call(room, "queued", cookies=f"{COOKIE}={queued}")
    Call(room, "forged-session", cookies="session=eyJyIjogMX0=.forged.sig")
    Call(room, "journey", cookies=f"session={session}")
    await settle()
    for name in ("first", "journey", "queued", "new"):
        app.finish(name)
        await settle()
    assert app.entered == ["first", "journey", "queued", "new", "forged-session"]


@pytest.mark.parametrize("forged", [
    "garbage", "1.2.3", "", "\xff\xfe", "9" * 400,
    TimestampSigner("another-secret", salt="booking.waiting-room").sign("1").decode(),
    TimestampSigner(TEST_SECRET, salt="booking.waiting-room").sign("not-a-time").decode(),
    TimestampSigner(TEST_SECRET, salt="booking.waiting-room").sign("99999999999999").decode(),  # future
], ids=["garbage", "dots", "empty", "not-utf8", "long", "other-key", "not-a-time", "future"])
async def test_a_forged_or_garbled_queue_cookie_is_a_new_arrival(app, forged):
    room = room_over(app)
    Call(room, "first")
    await settle()
    Call(room, "honest")
    await settle()
    Call(room, "forger", cookies=f"{COOKIE}={forged}; lang=en")
    await settle()
    app.finish("first")
    await settle()
    assert app.entered == ["first", "honest"]
    room.wait = 0  # and its waiting page is drawn, not a 500
    page = await Call(room, "forger2", cookies=f"{COOKIE}={forged}").done()
    assert page.status == 200 and page.headers["x-waiting-room"] == "1"


@pytest.mark.parametrize("path", ["/staff", "/staff/calls", "/admin", "/admin/reports",
                                  "/staff/site", "/group", "/static/app.css", "/healthz"])
async def test_staff_static_and_health_paths_are_never_queued(app, path):
    room = room_over(app, wait=0)
    Call(room, "first")
    await settle()
    staff = Call(room, "staff", path=path)
    await settle()
    assert app.entered == ["first", "staff"]
    app.finish("staff")
    assert (await staff.done()).text == "ok staff "
    assert room.line.active == 1


async def test_posts_go_in_before_new_gets_and_wait_longer(app):
    room = room_over(app, wait=LONG, post_wait=LONG)
    Call(room, "first")
    await settle()
    Call(room, "get")
    await settle()
    post = Call(room, "post", "POST", "/booking/confirm", body=b"key=k&slot=7")
    await settle()
    room.wait = 0
    bounced = await Call(room, "impatient").done()  # a GET is given the page at once …
    assert bounced.headers["x-waiting-room"] == "1"
    assert "您前面大约还有2人" in text(parse_html(bounced.text))  # … the two ahead counted
    app.finish("first")
    await settle()
    assert app.entered == ["first", "post"]  # … while the POST still waits, and goes first
    app.finish("post")
    assert (await post.done()).text == "ok post key=k&slot=7"  # its form reached the handler
    await settle()
    assert app.entered == ["first", "post", "get"]


async def test_a_post_past_its_longer_wait_gets_its_form_back(app):
    room = room_over(app, post_wait=0)
    Call(room, "first")
    await settle()
    page = await Call(room, "post", "POST", "/booking/verify",
                      body=b"csrftoken=t0k&id_number=11010519491231002X").done()
    assert page.status == 200 and page.headers["x-waiting-room"] == "1"
    soup = parse_html(page.text)
    assert soup.find("meta", attrs={"http-equiv": "refresh"}) is None  # a GET would lose the form
    form = soup.find("form", attrs={"action": "/booking/verify"})
    assert {i["name"]: i["value"] for i in form.find_all("input")} == {
        "csrftoken": "t0k", "id_number": "11010519491231002X"}
    assert app.entered == ["first"]


async def test_places_come_back_after_errors_and_clients_who_leave(app):
    room = room_over(app, active=2)
    boom, leaver = Call(room, "boom"), Call(room, "leave")
    await settle()
    waiting = Call(room, "waiting")  # in line …
    await settle()
    waiting.gone.set()  # … and gone before its turn: it leaves the line, nothing is answered
    await waiting.done()
    assert waiting.messages == [] and room.line.waiting() == 0
    cancelled = Call(room, "cancelled")  # in line when the server cancels it
    await settle()
    cancelled.task.cancel()
    await settle()
    app.finish("boom")
    with pytest.raises(RuntimeError):
        await boom.done()
    leaver.gone.set()
    app.finish("leave")
    await leaver.done()
    assert app.entered == ["boom", "leave"]
    assert room.line.active == 0 and room.line.waiting() == 0
    again = Call(room, "again")  # and the places are free for the next ones
    await settle()
    assert app.entered[-1] == "again"


async def test_a_place_handed_to_a_waiter_that_is_cancelled_passes_on():
    line = Line(1)
    line.active = 1
    first = asyncio.ensure_future(line.wait((2, 1.0), LONG))
    second = asyncio.ensure_future(line.wait((2, 2.0), LONG))
    await settle()
    line.release()  # hands the place to `first` …
    first.cancel()  # … which is cancelled before it could run
    with pytest.raises(asyncio.CancelledError):
        await first
    assert await second is True and line.active == 1
    line.release()
    assert line.active == 0 and line.waiting() == 0


async def test_the_settings_come_from_the_environment_and_0_turns_the_room_off(app, monkeypatch):
    from web.settings import load_settings

    monkeypatch.setenv("WAITING_ROOM_ACTIVE", "0")
    monkeypatch.setenv("WAITING_ROOM_WAIT", "0")
    monkeypatch.setenv("WAITING_ROOM_POST_WAIT", "2.5")
    settings = load_settings(secret_key=TEST_SECRET)
    assert (settings.waiting_room_active, settings.waiting_room_wait,
            settings.waiting_room_post_wait) == (0, 0, 2.5)
    room = room_over(app, active=0, wait=0)
    calls = [Call(room, f"r{i}") for i in range(50)]
    await settle()
    assert len(app.entered) == 50  # no waiting room: everyone goes straight in
    for call in calls:
        app.finish(call.scope["headers"][0][1].decode())
    for bad in ("-1", "many", "nan", "inf"):
        monkeypatch.setenv("WAITING_ROOM_WAIT", bad)
        with pytest.raises(ValueError, match="WAITING_ROOM_WAIT"):
            load_settings(secret_key=TEST_SECRET)


async def test_waiters_who_gave_up_are_swept_from_the_line():
    line = Line(1)
    line.active = 1
    gave_up = await asyncio.gather(*(line.wait((2, float(i)), 0) for i in range(600)))
    assert not any(gave_up)
    assert line.waiting() == 0 and len(line._heap) < 600  # swept, not kept for ever
    line.release()
    assert line.active == 0


def parse_html(html: str):
    from bs4 import BeautifulSoup

    return BeautifulSoup(html, "html.parser")


@pytest.fixture
async def full_app(db, settings, clock, monkeypatch):
    """The real app with one place, taken: a client on it and its waiting room."""
    from web.app import create_app

    rooms = []
    build = WaitingRoom.__init__

    def remember(self, *args, **kwargs):
        build(self, *args, **kwargs)
        rooms.append(self)

    monkeypatch.setattr(WaitingRoom, "__init__", remember)
    app = create_app(settings.with_(waiting_room_active=1, waiting_room_wait=0,
                                    waiting_room_post_wait=0), manage_db=False, clock=clock)
    transport = httpx.ASGITransport(app=app, client=("203.0.113.7", 5000))
    async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as client:
        client.token = parse(await client.get("/")).find("input", attrs={"name": "csrftoken"})["value"]
        (room,) = rooms
        room.line.active = room.line.limit  # every place taken
        yield client, room


async def test_the_real_app_draws_the_page_with_every_safety_header(full_app):
    client, room = full_app
    response = await client.get("/booking", headers={"Accept-Encoding": "gzip"})
    assert response.status_code == 200 and response.headers["x-waiting-room"] == "1"
    for header in ("content-security-policy", "x-frame-options", "referrer-policy",
                   "x-content-type-options"):
        assert header in response.headers
    assert response.headers["cache-control"] == "no-store"
    page = parse(response)
    assert page.find("meta", attrs={"http-equiv": "refresh"})["content"].endswith("url=/booking")
    assert "正在排队" in page.title.string
    assert (await client.get("/healthz")).text == "ok"  # never queued
    assert (await client.get("/staff")).status_code == 200
    assert room.line.active == room.line.limit
    room.line.active = 0
    assert "x-waiting-room" not in (await client.get("/booking")).headers
    assert room.line.active == 0


async def test_the_apps_own_session_cookie_counts_as_mid_journey(full_app, clock):
    from models.people.links import issue_link
    from tests.factories import make_resident, make_site

    client, room = full_app
    resident, _ = await make_resident(await make_site("S01"), first_dose=clock.now().date())
    room.line.active = 0
    await client.get(f"/b/{await issue_link(resident, now=clock.now())}")
    assert room._in_journey(client.cookies["session"])
    assert not room._in_journey(client.cookies["session"] + "x")


@pytest.mark.parametrize("value", ["x" * 1000, "%00%ff", "\r\nSet-Cookie: a=b", "<script>", "😀",
                                   "//evil.example", "%2F%2Fevil.example", "a b'\"c", "\x00"])
async def test_hostile_addresses_and_forms_get_the_waiting_page_not_an_error(full_app, value):
    client, _ = full_app
    for method, url, kw in [
        ("GET", f"/b/{quote(value, safe='')}", {"params": {"next": value, "day": value}}),
        ("GET", f"/booking/slot?{quote(value, safe='=&%')}", {"headers": {"hx-request": "true"}}),
        ("GET", f"/lang/{quote(value, safe='/')}", {"params": {value: value}}),
        ("POST", "/booking/site", {"data": {"csrftoken": client.token, "site": value, value: value}}),
        ("POST", "/entry", {"content": b"csrftoken=" + client.token.encode() + b"&phone=%ff%fe&&=&a",
                            "headers": {"content-type": "application/x-www-form-urlencoded"}}),
    ]:
        response = await client.request(method, url, **kw)
        assert response.status_code == 200, (method, url, response.status_code)
        assert response.headers["x-waiting-room"] == "1" and "Traceback" not in response.text
        soup = parse(response)
        refresh = soup.find("meta", attrs={"http-equiv": "refresh"})
        if refresh:  # the same address, never another site's
            again = refresh["content"].split("url=", 1)[1]
            assert again.startswith("/") and not again.startswith("//")


async def test_the_waiting_pages_are_valid_html(full_app, tmp_path):
    """The Nu HTML checker (as test_a11y_html.py runs it) on the page for a GET, in English with
    large text, and for a POST that keeps its form."""
    import json
    import shutil
    import subprocess

    from tests.realserver import ROOT

    vnu = ROOT / "node_modules" / "vnu-jar" / "build" / "dist" / "vnu.jar"
    if not vnu.exists() or not shutil.which("java"):
        pytest.skip("vnu.jar (npm ci) and Java are needed: `make test` installs them")
    client, _ = full_app
    pages = [await client.get("/booking"),
             await client.get("/booking", cookies={"lang": "en", "text": "large"}),
             await client.post("/booking/site", data={"csrftoken": client.token, "site": "S01"})]
    assert 'lang="en' in pages[1].text and "large" in pages[1].text
    files = []
    for n, response in enumerate(pages):
        assert response.headers["x-waiting-room"] == "1"
        files.append(tmp_path / f"waiting{n}.html")
        files[-1].write_text(response.text, encoding="utf-8")
    run = subprocess.run(["java", "-jar", str(vnu), "--errors-only", "--format", "json", *map(str, files)],
                         capture_output=True, text=True, timeout=120)
    messages = json.loads(run.stderr or run.stdout or '{"messages": []}')["messages"]
    assert [m.get("message") for m in messages if m.get("type") == "error"] == []
