"""The Starlette application: create_app(settings) builds it; the routing table lives here."""
from __future__ import annotations

import asyncio
import contextlib
import logging

from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.responses import PlainTextResponse
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles

from models.booking import engine, waitlist
from models.clock import SystemClock
from models.db.setup import close_db, init_db, ping
from models.district import District
from starlette.exceptions import HTTPException

from . import errors, metrics, refusals, templating
from .keys import RotatingSessionMiddleware
from .routes import (admin, api, callcentre, calls_waitlist, entry, group, guide, public, resident, site,
                     staff, wechat)
from .routes import waitlist as waitlist_pages
from .limits import RateLimits
from .compression import GZip
from .csrf import CSRF
from .security import BodyGuard, SecurityHeaders
from models.messaging.delivery import GatewayRate, run_sender
from models.messaging.gateways import get_backend
from .settings import Settings, build_district, load_settings, rate_limit_rules, sms_config
from .logs import setup_logging
from .templating import STATIC_DIR
from .waiting_room import WaitingRoom

log = logging.getLogger("booking")


class CachedStatic(StaticFiles):
    """Static files are fingerprinted (?v=hash or a versioned name): cache them for a year."""

    async def get_response(self, path, scope):
        response = await super().get_response(path, scope)
        if response.status_code == 200:
            response.headers["Cache-Control"] = "public, max-age=31536000, immutable"
        return response


async def sweep_holds_forever(district: District, every: float = 30) -> None:
    """Give back the places of expired holds and waiting-list offers (to the list first), so
    availability pages count them free again."""
    while True:
        await asyncio.sleep(every)
        try:
            await engine.sweep_expired_holds(district.clock.now(), waitlist.offerer(district))
            await waitlist.sweep(district)  # offers run out: each place to the next person
        except Exception:  # the next round tries again; a sweep is never urgent
            log.exception("sweeping expired holds failed")


async def healthz(request):
    await ping()
    return PlainTextResponse("ok")


ROUTES = [
    Route("/", public.start_page, name="start"),
    Route("/healthz", healthz, name="healthz"),
    Route("/metrics", metrics.metrics_page, name="metrics"),  # not public: web/metrics.py
    Route("/lang/{lang}", public.set_language, name="set_language"),
    Route("/text-size", public.toggle_large_text, methods=["POST"], name="text_size"),
    Route("/b/{token}", resident.open_link, name="open_link"),
    Route("/booking", resident.booking_home, name="booking"),
    Route("/booking/verify", resident.booking_verify, methods=["POST"], name="verify"),
    Route("/booking/site", resident.booking_site, methods=["GET", "POST"], name="site"),
    Route("/booking/slot", resident.booking_slot, methods=["GET", "POST"], name="slot"),
    Route("/booking/check", resident.booking_check, name="check"),
    Route("/booking/confirm", resident.booking_confirm, methods=["POST"], name="confirm"),
    Route("/booking/done", resident.booking_done, name="done"),
    Route("/booking/cancel", resident.booking_cancel, methods=["GET", "POST"], name="cancel"),
    Route("/booking/cancelled", resident.booking_cancelled, name="cancelled"),
    Route("/booking/waitlist", waitlist_pages.booking_waitlist, methods=["GET", "POST"], name="waitlist"),
    Route("/booking/waitlist/leave", waitlist_pages.waitlist_leave, methods=["POST"], name="waitlist_leave"),
    Route("/o/{token}", waitlist_pages.open_offer, name="open_offer"),
    Route("/booking/offer", waitlist_pages.booking_offer, methods=["GET", "POST"], name="offer"),
    Route("/entry", entry.entry_start, methods=["GET", "POST"], name="entry"),
    Route("/entry/code", entry.entry_code, methods=["GET", "POST"], name="entry_code"),
    Route("/entry/resend", entry.entry_resend, methods=["POST"], name="entry_resend"),
    Route("/entry/family", entry.entry_family, name="entry_family"),
    Route("/entry/person", entry.entry_person, methods=["GET", "POST"], name="entry_person"),
    Route("/entry/leave", entry.entry_leave, methods=["POST"], name="entry_leave"),
    Route("/find", entry.find_booking, methods=["GET", "POST"], name="find_booking"),
    Route("/poster", entry.poster_page, name="poster"),
    Route("/guide", guide.guide_page, name="guide"),
    Route("/wechat", wechat.wechat_callback, methods=["GET", "POST"], name="wechat"),
    Route("/api/handoff", api.api_handoff, methods=["POST"], name="api_handoff"),
    Route("/h/{token}", api.open_handoff, name="open_handoff"),
    Route("/staff", staff.staff_home, name="staff"),
    Route("/staff/login", staff.staff_login, methods=["POST"], name="staff_login"),
    Route("/staff/logout", staff.staff_logout, methods=["POST"], name="staff_logout"),
    *admin.ROUTES,
    *callcentre.ROUTES,
    *calls_waitlist.ROUTES,
    *site.ROUTES,
    *group.ROUTES,
    Mount("/static", app=CachedStatic(directory=STATIC_DIR), name="static"),
]


# POSTs from other servers (WeChat, the city platform), each checked by its own signature: no
# browser, no cookie, so no CSRF token either.
SIGNED_BY_CALLER = frozenset({"/wechat", "/api/handoff"})


def middleware(settings: Settings) -> list[Middleware]:
    """The middleware, outermost first (bench/stack.py measures it one layer at a time)."""
    return [
        Middleware(SecurityHeaders, https=settings.https,
                   observe=metrics.observe if settings.metrics_on else None),
        Middleware(BodyGuard, refuse=errors.refuse, uploads=admin.UPLOADS, signed=SIGNED_BY_CALLER),
        # Every method but GET, HEAD, OPTIONS, TRACE on every path but SIGNED_BY_CALLER; an
        # upload's token is read as its handler reads the body, after the staff check.
        Middleware(CSRF, secret=settings.signing_keys, https=settings.https, refuse=errors.refuse,
                   base_url=settings.base_url, skip=SIGNED_BY_CALLER, streamed=admin.UPLOADS),
        # 9: 2x the CPU, 1% smaller; the compressor sized to the page (web/compression.py)
        Middleware(GZip, minimum_size=500, compresslevel=5),
        # Below CSRF and the body guard (refused requests never queue), above the work.
        Middleware(WaitingRoom, active=settings.waiting_room_active,
                   wait=settings.waiting_room_wait, post_wait=settings.waiting_room_post_wait,
                   secret=settings.signing_keys, https=settings.https),
        Middleware(  # signed with SECRET_KEY, still accepted when signed with SECRET_KEY_OLD
            RotatingSessionMiddleware, secret_keys=settings.signing_keys, session_cookie="session",
            max_age=4 * 3600, same_site="lax", https_only=settings.https,
        ),
        *([Middleware(metrics.RouteName)] if settings.metrics_on else []),  # the route's name
    ]


def create_app(settings: Settings | None = None, *, manage_db: bool = True,
               clock: SystemClock | None = None) -> Starlette:
    """Build the app and everything it hands down (the district, rate limits) from the settings.

    With manage_db the lifespan connects to the database and closes it; it does not migrate:
    `run.py serve` (and every other command) brings the schema up to date before workers start.
    """
    settings = settings or load_settings()
    district = build_district(settings, clock=clock)

    @contextlib.asynccontextmanager
    async def lifespan(app):
        if manage_db:
            await init_db(settings.database_url, migrate_schema=False)
        tasks = [asyncio.create_task(sweep_holds_forever(district))]
        if manage_db:  # the reports' resident snapshot, taken in the background (docs/reports.md)
            tasks.append(asyncio.create_task(admin.reports.warm_up(app)))
        if settings.sms_in_server:
            tasks.append(asyncio.create_task(send_sms_forever(settings, district)))
        try:
            yield
        finally:
            for task in tasks:
                task.cancel()
            await admin.imports.stop_imports(app)  # each run marked failed, with its rows written so far
            if manage_db:
                await close_db()

    app = Starlette(
        debug=settings.debug,
        routes=ROUTES,
        lifespan=lifespan,
        exception_handlers={HTTPException: errors.http_error, refusals.PageRefusal: refusals.answer,
                            500: errors.server_error},
        middleware=middleware(settings),
    )
    # Everything an app holds is its own (two apps in one process share nothing they change).
    app.state.settings = settings
    app.state.district = district
    app.state.templates = templating.environment(debug=settings.debug)  # DEBUG: edits show at once
    app.state.import_tasks = set()  # this app's background imports (web/routes/admin/imports.py)
    app.state.limits = RateLimits(rate_limit_rules(settings), redis_url=settings.redis_url,
                                  prefix=settings.redis_prefix, secret=settings.secret_key)
    return app


async def send_sms_forever(settings: Settings, district) -> None:
    """The SMS sender inside the server process, for `make run` (production runs `run.py send-sms`)."""
    config = sms_config(settings)
    rate = GatewayRate(config.rate_per_second, settings.redis_url or "memory://", settings.redis_prefix)
    backend = get_backend(config)
    while True:
        try:
            await run_sender(district.vault, backend, config, district.clock, rate=rate,
                             say=logging.getLogger("booking.sms").info)
        except Exception:  # a database hiccup must not stop the messages for good
            log.exception("SMS sender stopped; starting again in 5 s")
            await asyncio.sleep(5)


def app_factory():
    """Entry point for uvicorn --factory (one call per worker process)."""
    settings = load_settings()
    setup_logging(settings.log_format)
    return create_app(settings)
