"""The waiting list under the rush (`python -m bench --waitlist`, issue 24): places freed by
cancellations while residents rush the journey go to the people waiting, and to nobody else.

Before the server starts (in this process, through the booking service and the list's own
`join`, as tests/test_waitlist_race.py seeds its world):

- on `--waitlist-sites` sites (the first ones), the mornings are full: the two morning windows
  of the next two days hold as many places as are booked on them (people of that site, booked
  through the booking service), every later morning window none; the afternoons keep their room
  for the rush, so the site's own residents still book there through the journey;
- half of those booked people will cancel (`--cancels` in all, shared between the sites);
- `--waiting` people of those sites join the list for their first-dose site, mornings only, so
  the only places that suit them are the ones the cancellations free.

During the journeys, the cancellers walk their personal link (link → ID page → ID check → the
"are you sure?" page → cancel), arriving evenly over the first `--cancel-over` seconds of the
rush (default: half of --duration, at most 30 s), each on their own, beside it; each cancel
offers its place to the next person on the list in the same transaction (models/booking/offers.py).
After the journeys, before the server stops, each offer is taken the way its SMS says: the link
read from the SMS body in the outbox (/o/… → the offer page → confirm → the confirmation).

Reported under `waitlist` in the JSON line: how many were booked, cancelled, waiting, offers made
and taken (the database's count and the bench's), the places freed that a public resident got
(`public_on_freed`, must be 0), each step's milliseconds, and errors; every error also counts in
the line's `errors_total` (and so in the exit status), beside `run.py check` (no overbooking).
"""
from __future__ import annotations

import asyncio
import re
import threading
import time
from dataclasses import dataclass, field

from bench.dataset import id_number_for, token_for
from bench.load import CODE, KEY, Generator, JourneyFailed, Plan, Resident
from bench.report import percentiles
from scripts.district_data import WINDOWS

CANCEL_SHARE = 0.5  # of the people booked on the full mornings, this share cancels
TAKES_AT_ONCE = 10
FULL_DAYS = 2  # the morning windows of the next two days hold the booked places
NOON = "12:00"
OFFER_LINK = re.compile(r"/o/([A-Za-z0-9_-]+)")
CANCEL_STEPS = ("link", "id_page", "id_check", "cancel_page", "cancel")
TAKE_STEPS = ("offer_link", "offer_page", "offer_confirm", "offer_booked")


def split(n: int, parts: int) -> list[int]:
    return [n // parts + (1 if i < n % parts else 0) for i in range(parts)]


@dataclass
class Setup:
    """Who plays which part: resident ids (their links and ID numbers come from the seed)."""

    sites: list[int]
    cancellers: list[int]
    keepers: list[int]  # booked on the full mornings, not cancelling
    waiting: list[int]
    full_slots: list[int] = field(default_factory=list)  # the morning windows holding the places

    @property
    def reserved(self) -> set[int]:
        """Left out of the rush: they have their own part."""
        return {*self.cancellers, *self.keepers, *self.waiting}


def choose_people(*, sites: int, residents: int, warmup: int, full_sites: int, cancels: int,
                  waiting: int) -> Setup:
    """Resident ids for each part, from the top of each full site's residents in the measured
    range (the rush plays the others, from the bottom). SystemExit when there are too few."""
    if waiting < cancels:
        raise SystemExit("error: --waiting must be at least --cancels (every freed place has someone to go to)")
    if not 1 <= full_sites <= sites:
        raise SystemExit("error: --waitlist-sites must be between 1 and --sites")
    last = residents - warmup
    setup = Setup(list(range(1, full_sites + 1)), [], [], [])
    for site, n_cancels, n_waiting in zip(setup.sites, split(cancels, full_sites), split(waiting, full_sites)):
        n_booked = round(n_cancels / CANCEL_SHARE)
        # Resident rid's first-dose site is (rid - 1) % sites + 1 (bench/dataset.py).
        mine = list(range(site, last + 1, sites))[::-1]
        if len(mine) < n_booked + n_waiting + 1:
            raise SystemExit(f"error: site {site} has {len(mine)} residents for {n_booked} booked and "
                             f"{n_waiting} waiting: more --residents or fewer --cancels/--waiting")
        booked, mine = mine[:n_booked], mine[n_booked:]
        setup.cancellers += booked[:n_cancels]
        setup.keepers += booked[n_cancels:]
        setup.waiting += mine[:n_waiting]
    return setup


def prepare(url: str, settings, setup: Setup, say) -> dict:
    """Fill the full sites' mornings with bookings and put the waiting people on the list
    (nothing suits them yet: no offer is made). Returns the counts."""
    from models.db.setup import close_db, init_db

    async def run():
        await init_db(url)
        try:
            return await _prepare(settings, setup)
        finally:
            await close_db()

    started = time.monotonic()
    done = asyncio.run(run())
    say(f"waiting list: {done['booked']} booked on {len(setup.sites)} full site(s)' mornings, "
        f"{len(setup.cancellers)} to cancel, {done['waiting']} waiting ({time.monotonic() - started:.1f}s)")
    return done


async def _prepare(settings, setup: Setup) -> dict:
    import datetime as dt

    from models.booking import service, waitlist
    from models.clock import SystemClock
    from models.db.tables import Resident, Slot, WaitlistOffer
    from web.settings import build_district

    district = build_district(settings, clock=SystemClock())
    today = district.clock.today()
    mornings = [start for start, _ in WINDOWS if start < NOON]
    booked_by_site: dict[int, list[int]] = {site: [] for site in setup.sites}
    for rid in [*setup.cancellers, *setup.keepers]:
        booked_by_site[(await Resident.get(id=rid)).first_site_id].append(rid)
    for site, people in booked_by_site.items():
        full = await Slot.filter(site_id=site, start__in=mornings, day__gte=today + dt.timedelta(days=1),
                                 day__lte=today + dt.timedelta(days=FULL_DAYS)).order_by("day", "start")
        setup.full_slots += [slot.id for slot in full]
        places = dict(zip((slot.id for slot in full), split(len(people), len(full))))
        await Slot.filter(site_id=site, start__in=mornings).update(capacity=0)
        for slot_id, capacity in places.items():
            await Slot.filter(id=slot_id).update(capacity=capacity)
        # By turns over the windows (a, b, c, a, b, …), cancellers first: each window has some
        # of its places freed and keeps some of its bookings.
        turns = [slot_id for turn in range(max(places.values(), default=0))
                 for slot_id, n in places.items() if turn < n]
        for rid, slot_id in zip(sorted(people, key=lambda r: r in setup.keepers), turns):
            resident = await Resident.get(id=rid)
            standing = await service.stand(district, resident)
            await service.confirm(district, standing, slot_id, request_key=None, channel="sms", chosen=slot_id)
    for rid in setup.waiting:
        standing = await service.stand(district, await Resident.get(id=rid))
        await waitlist.join(district, standing, waitlist.Choice("site", "any", "morning"))
    if await WaitlistOffer.all().count():
        raise RuntimeError("an offer was made before the rush: the full mornings are not full")
    return {"booked": len(setup.cancellers) + len(setup.keepers), "waiting": len(setup.waiting)}


# ---- over HTTP: the cancellations beside the rush, the offers taken after it


class Walk:
    """The waiting list's HTTP side, on the load generator's Resident (cookies, waiting room,
    timing by step), with its own tally."""

    def __init__(self, base_url: str, seed: int, session, disconnected):
        plan = Plan(base_url=base_url, mode="waitlist", concurrency=1, start_at=time.time(),
                    duration=10**9, max_journeys=0, seed=seed, label="waitlist")
        self.gen = Generator(plan, session, disconnected)
        self.seed = seed
        self.cancelled_at: list[float] = []  # time.time() of each cancel answered
        self.taken = 0

    @property
    def cancelled(self) -> int:
        return len(self.cancelled_at)

    async def cancel(self, rid: int) -> None:
        """A booked person cancels through their personal link."""
        r = Resident(self.gen, rid)
        await r.expect("link", "GET", f"/b/{token_for(self.seed, rid)}", 303, "/booking")
        page = await r.expect("id_page", "GET", "/booking", 200)
        await r.expect("id_check", "POST", "/booking/verify", 303, "/booking",
                       r.form(page, "id_check", id_number=id_number_for(self.seed, rid)))
        page = await r.expect("cancel_page", "GET", "/booking/cancel", 200)
        await r.expect("cancel", "POST", "/booking/cancel", 303, "/booking/cancelled", r.form(page, "cancel"))
        self.cancelled_at.append(time.time())

    async def take(self, token: str) -> None:
        """The person offered a place follows their SMS's link and confirms."""
        r = Resident(self.gen, 0)
        await r.expect("offer_link", "GET", f"/o/{token}", 303, "/booking/offer")
        page = await r.expect("offer_page", "GET", "/booking/offer", 200)
        key = KEY.search(page)
        if not key:
            raise JourneyFailed("offer_page: no request key")
        await r.expect("offer_confirm", "POST", "/booking/offer", 303, "/booking/done",
                       r.form(page, "offer_confirm", action="confirm", key=key.group(1)))
        page = await r.expect("offer_booked", "GET", "/booking/done", 200)
        if not CODE.search(page):
            raise JourneyFailed("offer_booked: no booking code")
        self.taken += 1

    async def each(self, work, items, at_once: int) -> None:
        """`work(item)` for every item, `at_once` at a time; a failure counted by kind."""
        queue = list(items)[::-1]

        async def worker():
            while queue:
                item = queue.pop()
                try:
                    await work(item)
                except JourneyFailed as exc:
                    self.gen.tally.errors[f"waitlist {exc.kind}"] += 1
                except Exception as exc:
                    self.gen.tally.errors[f"waitlist exception {type(exc).__name__}: {str(exc)[:80]}"] += 1

        await asyncio.gather(*(worker() for _ in range(at_once)))

    async def spread(self, work, items, over: float) -> None:
        """`work(item)` for every item, the k-th of n started k/n of `over` seconds late (each
        its own resident: they do not wait for each other)."""
        items = list(items)

        async def one(k: int, item):
            await asyncio.sleep(over * k / max(len(items), 1))
            await self.each(work, [item], 1)

        await asyncio.gather(*(one(k, item) for k, item in enumerate(items)))


async def _walk(base_url: str, seed: int, what) -> Walk:
    import aiohttp

    connector = aiohttp.TCPConnector(limit=0, force_close=False)
    async with aiohttp.ClientSession(connector=connector, timeout=aiohttp.ClientTimeout(total=60),
                                     cookie_jar=aiohttp.DummyCookieJar()) as session:
        walk = Walk(base_url, seed, session, (aiohttp.ServerDisconnectedError, aiohttp.ClientOSError))
        await what(walk)
        return walk


class Cancellations:
    """The cancellers, in a thread of this process while the generator processes rush."""

    def __init__(self, base_url: str, seed: int, setup: Setup, over: float, delay: float = 0.5):
        self.walk: Walk | None = None
        self.error: BaseException | None = None

        def run():
            time.sleep(delay)  # when the rush starts (bench/runner.py: run_phase's start_at)
            try:
                self.walk = asyncio.run(_walk(base_url, seed, lambda w: w.spread(
                    w.cancel, setup.cancellers, over)))
            except BaseException as exc:  # reported, not lost in the thread
                self.error = exc

        self.thread = threading.Thread(target=run, name="bench-cancellations", daemon=True)
        self.thread.start()

    def wait(self) -> Walk:
        self.thread.join()
        if self.error is not None:
            raise self.error
        return self.walk


def offer_tokens(url: str, secret_key: str) -> list[str]:
    """The link of every open offer, read from its SMS in the outbox as the phone would show it."""
    from models.db.setup import close_db, init_db
    from models.db.tables import SmsMessage, WaitlistOffer
    from models.people.pii import Vault

    async def read():
        await init_db(url, migrate_schema=False)
        try:
            open_for = set(await WaitlistOffer.filter(status=WaitlistOffer.OPEN).values_list("resident_id", flat=True))
            rows = await SmsMessage.filter(kind="offer", resident_id__in=open_for).order_by("id").values(
                "resident_id", "body_cipher")
        finally:
            await close_db()
        vault, tokens = Vault(secret_key), {}
        for row in rows:  # the latest SMS of each person's
            found = OFFER_LINK.search(vault.decrypt(row["body_cipher"]))
            if found:
                tokens[row["resident_id"]] = found.group(1)
        return list(tokens.values())

    return asyncio.run(read())


def take_offers(base_url: str, seed: int, tokens: list[str]) -> Walk:
    return asyncio.run(_walk(base_url, seed, lambda w: w.each(w.take, tokens, TAKES_AT_ONCE)))


def tally(url: str, setup: Setup) -> dict:
    """What the database says after the run: offers by state, bookings on the full mornings."""
    from models.db.setup import close_db, init_db
    from models.db.tables import Booking, WaitlistOffer

    async def read():
        await init_db(url, migrate_schema=False)
        try:
            offers = await WaitlistOffer.all().values_list("status", flat=True)
            on_full = await Booking.filter(slot_id__in=setup.full_slots, status=Booking.ACTIVE).values_list(
                "resident_id", flat=True)
            cancelled = await Booking.filter(resident_id__in=setup.cancellers, status=Booking.CANCELLED).count()
        finally:
            await close_db()
        return {"offers": offers, "on_full": on_full, "cancelled": cancelled}

    return asyncio.run(read())


def report(setup: Setup, cancels: Walk, takes: Walk, db: dict, rush_ended: float) -> dict:
    """The `waitlist` part of the JSON line; its errors (HTTP, and any place not offered, not
    taken, or got by the public) under `errors`. `rush_ended`: time.time() when the journeys
    ended."""
    made = len(db["offers"])
    taken = sum(status == "taken" for status in db["offers"])
    public = sum(rid not in setup.reserved for rid in db["on_full"])
    errors = dict(cancels.gen.tally.errors) | dict(takes.gen.tally.errors)
    if made != db["cancelled"]:
        errors["waitlist: offers made ≠ places freed by cancellations"] = abs(made - db["cancelled"])
    if taken != made:
        errors["waitlist: offers not taken"] = made - taken
    if public:
        errors["waitlist: freed places booked by the public"] = public
    latencies = {**cancels.gen.tally.latencies, **takes.gen.tally.latencies}
    return {
        "sites": len(setup.sites),
        "booked_before": len(setup.cancellers) + len(setup.keepers),
        "waiting": len(setup.waiting),
        "cancels_sent": len(setup.cancellers),
        "cancelled": db["cancelled"],
        "cancelled_during_journeys": sum(at <= rush_ended for at in cancels.cancelled_at),
        "offers_made": made,
        "offers_taken": taken,
        "offers_taken_seen": takes.taken,  # confirmations the bench was shown
        "offers_open": sum(status == "open" for status in db["offers"]),
        "public_on_freed": public,
        "bookings_seen": len(setup.cancellers) - cancels.cancelled + len(setup.keepers) + takes.taken,
        "steps_ms": {step: percentiles(latencies.get(step, [])) for step in (*CANCEL_STEPS, *TAKE_STEPS)},
        "statuses": {str(k): v for k, v in (cancels.gen.tally.statuses + takes.gen.tally.statuses).items()},
        "waits": cancels.gen.tally.waits + takes.gen.tally.waits,
        "errors": errors,
    }
