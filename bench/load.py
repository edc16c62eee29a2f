"""The load generator: residents who just got their SMS, each playing the no-JS journey.

One generator process runs `concurrency` residents at once on one event loop (aiohttp's client:
several times cheaper per request than httpx). Each resident takes the next unbooked resident of
the process's share, opens their link and walks the pages a browser without JavaScript would:

    link → ID page → ID check → site page → keep the first-dose site → window page → a window
    → check page → confirm → booking page                                       (10 requests)

following each 303 itself (every request is timed as its own step), with its own cookies
(session, CSRF), the CSRF token read from the page as a browser posts it back. A window just
taken by someone else (422) is chosen again from the page that says so. With --think-time each
page is read for a random 0.5–1.5× that many seconds before the next request.

The waiting room (web/waiting_room.py, contract in the issue's plan): an answer with
`X-Waiting-Room: 1` is counted as a wait, not an error; the resident waits `Retry-After` (or the
page's meta refresh) seconds and asks for the same page again (a POST is sent again, as a
resident pressing the button once more would).

The `healthz` mode is the same processes and concurrency asking for `/healthz` in a loop: what
this generator and this server stack can do at most, to compare the journey with.
"""
from __future__ import annotations

import asyncio
import errno
import random
import re
import resource
import time
from collections import Counter
from dataclasses import dataclass
from urllib.parse import urlencode

from bench.dataset import id_number_for, token_for

CSRF = re.compile(r'name="csrftoken" value="([^"]+)"')
KEY = re.compile(r'name="key" value="([^"]+)"')
KEEP = re.compile(r'name="site" value="(\d+)" class="keep"')
WINDOW = re.compile(r'<input type="radio" name="slot" id="slot-\d+" value="(\d+)"([^>]*)>')
CODE = re.compile(r'class="code">([A-Z0-9-]+)<')
REFRESH = re.compile(r'http-equiv="refresh" content="(\d+)')
STEPS = ("link", "id_page", "id_check", "site_page", "site_keep", "window_page", "window_choose",
         "check_page", "confirm", "booking_page")
RESET = (errno.ECONNRESET, errno.EPIPE)
MAX_WINDOW_TRIES = 5
MAX_WAIT_PER_JOURNEY = 300.0  # seconds in the waiting room before a journey counts as failed


@dataclass
class Plan:
    """What one generator process does (picklable: handed to a new process)."""

    base_url: str
    mode: str  # journey | healthz
    concurrency: int
    start_at: float  # time.time() at which every process starts
    duration: float  # seconds from start_at: no journey (request) starts after that
    max_journeys: int  # (healthz: requests) at most this many, then stop
    residents: range = range(0)  # the ids this process may play, in order
    seed: int = 14
    think_time: float = 0.0
    ramp: float = 0.0  # seconds over which the residents arrive (0: all at once)
    timeout: float = 60.0
    label: str = ""


class JourneyFailed(Exception):
    def __init__(self, kind: str):
        super().__init__(kind)
        self.kind = kind


class Tally:
    """Everything one process counts; merged by the runner."""

    def __init__(self):
        self.latencies: dict[str, list[float]] = {}  # step → milliseconds
        self.errors: Counter = Counter()
        self.statuses: Counter = Counter()
        self.requests = 0
        self.journeys_started = 0
        self.journeys_completed = 0  # ended on the booking page with a booking code
        self.bookings = 0  # confirm POSTs answered 303 → /booking/done
        self.window_retries = 0  # a window taken meanwhile: chosen again
        self.waits = 0  # waiting-room answers
        self.wait_seconds = 0.0
        self.waited_journeys = 0
        self.disconnect_retries = 0
        self.abandoned = 0  # journeys still running when the time was up
        self.journey_ms: list[float] = []

    def as_dict(self) -> dict:
        return {k: (dict(v) if isinstance(v, Counter) else v) for k, v in vars(self).items()}


class Resident:
    """One resident's browser: their cookies, and how long they have waited in the waiting room."""

    def __init__(self, gen: "Generator", resident_id: int):
        self.gen, self.id = gen, resident_id
        self.cookies: dict[str, str] = {}
        self.waited = 0.0

    def _keep_cookies(self, response) -> None:
        """Set-Cookie read as a browser keeps it for one site: name=value, or gone when expired
        (by hand: several times cheaper than parsing each into a SimpleCookie)."""
        for header in response.headers.getall("Set-Cookie", ()):
            pair, _, attributes = header.partition(";")
            name, _, value = pair.strip().partition("=")
            attributes = attributes.lower()
            if "max-age=0" in attributes or "1970" in attributes or "max-age=-" in attributes:
                self.cookies.pop(name, None)
            else:
                self.cookies[name] = value

    async def request(self, step: str, method: str, path: str, data: dict | None = None):
        """One request, timed as `step`, waiting-room answers waited out; (status, location, text)."""
        gen = self.gen
        # The form encoded here, as bytes: much cheaper than aiohttp's FormData for a dict.
        body = urlencode(data).encode() if data is not None else None
        while True:
            headers = {"Cookie": "; ".join(f"{k}={v}" for k, v in self.cookies.items())} if self.cookies else {}
            if body is not None:
                headers["Content-Type"] = "application/x-www-form-urlencoded"
            for attempt in (1, 2):
                started = time.perf_counter()
                try:
                    async with gen.session.request(method, gen.base_url + path, data=body, headers=headers,
                                                   allow_redirects=False) as r:
                        text = (await r.read()).decode("utf-8", "replace")
                        status, location = r.status, r.headers.get("Location", "")
                        waiting = r.headers.get("X-Waiting-Room") == "1"
                        retry_after = r.headers.get("Retry-After", "")
                        self._keep_cookies(r)
                    break
                except gen.disconnected as exc:
                    # A kept-alive connection closed by the server as it was reused (the server's
                    # close, or a reset/broken pipe as we wrote on it): browsers send the request
                    # again on a new one, and so do we, once. A refused connection is not that.
                    if attempt == 2 or getattr(exc, "errno", None) not in (None, *RESET):
                        raise
                    gen.tally.disconnect_retries += 1
            elapsed = (time.perf_counter() - started) * 1000
            gen.tally.requests += 1
            gen.tally.statuses[status] += 1
            if waiting:
                seconds = _wait_seconds(retry_after, text)
                if self.waited + seconds > MAX_WAIT_PER_JOURNEY:
                    raise JourneyFailed(f"waited over {MAX_WAIT_PER_JOURNEY:.0f}s: {step}")
                gen.tally.waits += 1
                gen.tally.wait_seconds += seconds
                self.waited += seconds
                await asyncio.sleep(seconds)
                continue
            gen.tally.latencies.setdefault(step, []).append(elapsed)
            if status >= 500:
                raise JourneyFailed(f"HTTP {status}: {step}")
            return status, location, text

    async def think(self) -> None:
        if self.gen.think_time:
            await asyncio.sleep(self.gen.think_time * (0.5 + self.gen.rng.random()))

    async def expect(self, step: str, method: str, path: str, status: int, to: str = "",
                     data: dict | None = None) -> str:
        got, location, text = await self.request(step, method, path, data)
        if got != status or (to and location != to):
            raise JourneyFailed(f"{step}: HTTP {got}" + (f" → {location}" if location else ""))
        return text

    def form(self, page: str, step: str, **fields) -> dict:
        found = CSRF.search(page)
        if not found:
            raise JourneyFailed(f"{step}: no CSRF token on the page")
        return {"csrftoken": found.group(1), **fields}

    async def journey(self) -> None:
        gen = self.gen
        await self.expect("link", "GET", f"/b/{token_for(gen.seed, self.id)}", 303, "/booking")
        page = await self.expect("id_page", "GET", "/booking", 200)
        await self.think()
        await self.expect("id_check", "POST", "/booking/verify", 303, "/booking/site",
                          self.form(page, "id_check", id_number=id_number_for(gen.seed, self.id)))
        page = await self.expect("site_page", "GET", "/booking/site", 200)
        keep = KEEP.search(page)
        if not keep:
            raise JourneyFailed("site_page: no button to keep the first-dose site")
        await self.think()
        await self.expect("site_keep", "POST", "/booking/site", 303, "/booking/slot",
                          self.form(page, "site_keep", site=keep.group(1)))
        page = await self.expect("window_page", "GET", "/booking/slot", 200)
        for tries in range(MAX_WINDOW_TRIES):
            free = [w for w, attrs in WINDOW.findall(page) if "disabled" not in attrs]
            if not free:
                raise JourneyFailed("window_page: no free window on the day shown")
            window = gen.rng.choice(free)
            await self.think()
            status, location, page = await self.request(
                "window_choose", "POST", "/booking/slot", self.form(page, "window_choose", slot=window))
            if status == 303 and location == "/booking/check":
                break
            if status != 422:
                raise JourneyFailed(f"window_choose: HTTP {status}" + (f" → {location}" if location else ""))
            gen.tally.window_retries += 1  # just taken: the page says so and shows the others
        else:
            raise JourneyFailed("window_choose: every window tried was taken")
        page = await self.expect("check_page", "GET", "/booking/check", 200)
        key = KEY.search(page)
        if not key:
            raise JourneyFailed("check_page: no request key")
        await self.think()
        await self.expect("confirm", "POST", "/booking/confirm", 303, "/booking/done",
                          self.form(page, "confirm", key=key.group(1), slot=window))
        gen.tally.bookings += 1
        page = await self.expect("booking_page", "GET", "/booking/done", 200)
        if not CODE.search(page):
            raise JourneyFailed("booking_page: no booking code")


def _wait_seconds(retry_after: str, page: str) -> float:
    try:
        return max(0.1, float(retry_after))
    except ValueError:
        found = REFRESH.search(page)
        return max(0.1, float(found.group(1))) if found else 1.0


class Generator:
    def __init__(self, plan: Plan, session, disconnected):
        self.plan, self.session, self.disconnected = plan, session, disconnected
        self.base_url, self.seed, self.think_time = plan.base_url, plan.seed, plan.think_time
        self.rng = random.Random(f"{plan.seed}:{plan.label}")
        self.tally = Tally()
        self.next_resident = iter(plan.residents)
        self.started = 0
        self.deadline = plan.start_at + plan.duration

    def take(self) -> int | None:
        """The next resident to play, or None when the time, the count or the residents run out."""
        if time.time() >= self.deadline or self.started >= self.plan.max_journeys:
            return None
        rid = next(self.next_resident, None)
        if rid is not None:
            self.started += 1
        return rid

    async def resident_loop(self, arrives: float = 0.0) -> None:
        if arrives:
            await asyncio.sleep(arrives)
        while (rid := self.take()) is not None:
            self.tally.journeys_started += 1
            resident = Resident(self, rid)
            began = time.perf_counter()
            try:
                await resident.journey()
            except JourneyFailed as exc:
                self.tally.errors[exc.kind] += 1
            except asyncio.TimeoutError:
                self.tally.errors["timeout"] += 1
            except Exception as exc:  # a broken connection, a refused one: counted by kind
                self.tally.errors[f"exception {type(exc).__name__}: {str(exc)[:80]}"] += 1
            else:
                self.tally.journeys_completed += 1
                self.tally.journey_ms.append((time.perf_counter() - began) * 1000)
            if resident.waited:
                self.tally.waited_journeys += 1

    async def healthz_loop(self) -> None:
        url = self.base_url + "/healthz"
        while time.time() < self.deadline and self.started < self.plan.max_journeys:
            self.started += 1
            began = time.perf_counter()
            try:
                async with self.session.get(url) as r:
                    await r.read()
                    status = r.status
            except Exception as exc:
                self.tally.errors[f"exception {type(exc).__name__}"] += 1
                continue
            self.tally.requests += 1
            self.tally.statuses[status] += 1
            self.tally.latencies.setdefault("healthz", []).append((time.perf_counter() - began) * 1000)
            if status != 200:
                self.tally.errors[f"HTTP {status}: healthz"] += 1


async def _run(plan: Plan) -> dict:
    import aiohttp

    connector = aiohttp.TCPConnector(limit=0, ttl_dns_cache=None, force_close=False)
    timeout = aiohttp.ClientTimeout(total=plan.timeout)
    async with aiohttp.ClientSession(connector=connector, timeout=timeout,
                                     cookie_jar=aiohttp.DummyCookieJar(), auto_decompress=True) as session:
        gen = Generator(plan, session, (aiohttp.ServerDisconnectedError, aiohttp.ClientOSError))
        delay = plan.start_at - time.time()
        if delay > 0:
            await asyncio.sleep(delay)
        before = resource.getrusage(resource.RUSAGE_SELF)
        began = time.perf_counter()
        if plan.mode == "journey":  # with a ramp, the k-th resident arrives k/n of it late
            tasks = [asyncio.create_task(gen.resident_loop(plan.ramp * k / plan.concurrency))
                     for k in range(plan.concurrency)]
        else:
            tasks = [asyncio.create_task(gen.healthz_loop()) for _ in range(plan.concurrency)]
        # At the deadline, journeys still under way are left (counted as abandoned, not errors):
        # the rate counts what finished in the time.
        remaining = plan.start_at + plan.duration - time.time()
        done, pending = await asyncio.wait(tasks, timeout=max(remaining, 0) + 0.001)
        for task in pending:
            task.cancel()
        if pending:
            await asyncio.gather(*pending, return_exceptions=True)
            gen.tally.abandoned += len(pending) if plan.mode == "journey" else 0
        for task in done:
            if task.exception() is not None:
                gen.tally.errors[f"generator {type(task.exception()).__name__}"] += 1
        elapsed = time.perf_counter() - began
    after = resource.getrusage(resource.RUSAGE_SELF)
    cpu = after.ru_utime + after.ru_stime - before.ru_utime - before.ru_stime
    return {**gen.tally.as_dict(), "elapsed": elapsed, "cpu_seconds": cpu}


def ready(linger: float) -> None:
    """Start a generator process ahead of the measurement: its imports done, then `linger`
    seconds busy, so that the pool starts one process per call."""
    import aiohttp  # noqa: F401

    time.sleep(linger)


def run_plan(plan: Plan) -> dict:
    """A generator process's whole work (the target of multiprocessing)."""
    try:
        import uvloop  # when installed (the server's stack may pin it): a cheaper loop
        uvloop.install()
    except ImportError:
        pass
    return asyncio.run(_run(plan))
