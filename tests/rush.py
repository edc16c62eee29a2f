"""A resident as an HTTP client of the real server: the journey as plain form posts."""
from __future__ import annotations

import asyncio
import re
import ssl

import aiohttp
import httpx

CSRF = re.compile(r'name="csrftoken" value="([^"]+)"')
KEY = re.compile(r'name="key" value="([^"]+)"')
CODE = re.compile(r'class="code">([A-Z0-9-]+)<')
# Made once: a client that makes its own loads the CA bundle again, 30 ms of CPU for each of a
# crowd of 400 (the servers here speak plain HTTP anyway).
TLS = ssl.create_default_context()
GOOD = {200, 303, 422, 423}  # a page, a redirect, a form error, a locked link: never a 5xx
# Seconds waited on a waiting-room page before asking again: less than its Retry-After (3 s or
# more), as an impatient resident pulls to refresh. The line keeps their place either way (its
# cookie), and these tests are about the places, not the wait: a crowd of 400 waited minutes.
IMPATIENCE = 0.5


class Answer:
    """What the tests read of an answer, as httpx names it: status_code, text, headers."""

    __slots__ = ("status_code", "text", "headers")

    def __init__(self, status_code: int, text: str, headers):
        self.status_code, self.text, self.headers = status_code, text, headers


Page = Answer | httpx.Response  # an answer from either kind of client


class Browser:
    """One resident's browser on aiohttp: its own cookies, redirects not followed, a new
    connection per request. A crowd of them costs a quarter of the CPU httpx clients did
    (3.3 ms a request in the client alone: more than half of a 400-resident rush's CPU), and
    these tests share two cores with the server they measure."""

    def __init__(self, base_url: str):
        self.base_url = base_url.rstrip("/")
        self.session: aiohttp.ClientSession | None = None  # made in the loop that uses it

    async def request(self, method: str, url: str, data: dict | None = None) -> Answer:
        if self.session is None:
            self.session = aiohttp.ClientSession(
                cookie_jar=aiohttp.CookieJar(unsafe=True),  # unsafe: the server is at an IP address
                connector=aiohttp.TCPConnector(force_close=True, limit=0, ssl=TLS),
                timeout=aiohttp.ClientTimeout(total=60))
        async with self.session.request(method, self.base_url + url, data=data,
                                        allow_redirects=False) as r:
            return Answer(r.status, await r.text(), r.headers)

    async def aclose(self) -> None:
        if self.session is not None:
            await self.session.close()


class Person:
    def __init__(self, base_url: str, token: str, id_number: str,
                 transport: httpx.AsyncBaseTransport | None = None):
        # A new connection per request: a kept-alive one may be closed by the server at the very
        # moment it is reused (its idle timeout), which browsers retry and the clients here do not.
        # `transport`: an httpx transport to send through instead (tests/test_scale_out.py's
        # balancer between two instances).
        self.client = Browser(base_url) if transport is None else httpx.AsyncClient(
            base_url=base_url, timeout=60, transport=transport, verify=TLS,
            limits=httpx.Limits(max_keepalive_connections=0))
        self.token, self.id_number = token, id_number
        self.statuses: list[int] = []
        self.waits = 0  # waiting-room pages met (each followed, as a browser does)
        self.code: str | None = None  # set when a confirmation page was received

    async def close(self):
        await self.client.aclose()

    async def _send(self, method: str, url: str, **kw) -> Page:
        """One request; on the waiting room's page, wait a little and ask again, as the page's
        refresh (or its "send again" button) does in a browser (web/waiting_room.py)."""
        r = await self.client.request(method, url, **kw)
        while r.headers.get("x-waiting-room") == "1":
            self.waits += 1
            await asyncio.sleep(min(int(r.headers["retry-after"]), IMPATIENCE))
            r = await self.client.request(method, url, **kw)
        self.statuses.append(r.status_code)
        return r

    async def _get(self, url: str) -> Page:
        return await self._send("GET", url)

    async def _post(self, url: str, csrf_from: Page, data: dict) -> Page:
        token = CSRF.search(csrf_from.text).group(1)
        return await self._send("POST", url, data={"csrftoken": token, **data})

    async def sign_in(self) -> None:
        await self._get(f"/b/{self.token}")
        page = await self._get("/booking")
        r = await self._post("/booking/verify", page, {"id_number": self.id_number})
        assert r.status_code == 303, r.text[:300]

    async def choose(self, site_id: int, slot_id: int) -> Page | None:
        """Pick site and window (which holds the place); the check page, or None when full."""
        page = await self._get("/booking/site")
        await self._post("/booking/site", page, {"site": site_id})
        page = await self._get("/booking/slot")
        r = await self._post("/booking/slot", page, {"slot": slot_id})
        if r.status_code != 303:
            self.last_form = r  # "just taken, choose another": the page they are looking at
            return None
        check = await self._get("/booking/check")
        return check if check.status_code == 200 else None

    async def confirm(self, check: Page, slot_id: int, times: int = 1) -> None:
        """Press confirm `times` times at once (a double tap, a retry); then read the result."""
        key = KEY.search(check.text).group(1)
        await asyncio.gather(*(self._post("/booking/confirm", check, {"key": key, "slot": slot_id})
                               for _ in range(times)))
        await self.read_booking()

    async def confirm_stale(self, slot_id: int) -> None:
        """Post confirm for a window without holding it (an old page, the back button)."""
        await self._post("/booking/confirm", self.last_form, {"key": f"stale-{self.token[:8]}", "slot": slot_id})
        await self.read_booking()

    async def read_booking(self) -> None:
        r = await self._get("/booking")
        found = CODE.search(r.text) if r.status_code == 200 else None
        self.code = found.group(1).replace("-", "") if found else None

    async def cancel(self) -> None:
        page = await self._get("/booking/cancel")
        if page.status_code == 200:
            await self._post("/booking/cancel", page, {})
        await self.read_booking()


def seen_codes(crowd: list[Person]) -> set[str]:
    """The booking codes the crowd has been shown on a confirmation page so far."""
    return {p.code for p in crowd if p.code}
