"""The Starlette application: create_app(settings) builds it; the routing table lives here."""
from __future__ import annotations

import asyncio
import contextlib
import logging

from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.middleware.gzip import GZipMiddleware
from starlette.middleware.sessions import SessionMiddleware
from starlette.responses import PlainTextResponse
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles

from models.booking import engine
from models.clock import SystemClock
from models.db.setup import close_db, init_db, ping
from models.district import District
from starlette.exceptions import HTTPException

from . import errors
from .routes import admin, callcentre, public, resident, site, staff
from .security import BodyGuard, RateLimits, SecurityHeaders, csrf
from .settings import Settings, build_district, load_settings, rate_limit_rules
from .templating import STATIC_DIR

log = logging.getLogger("booking")


class CachedStatic(StaticFiles):
    """Static files are fingerprinted (?v=hash or a versioned name): cache them for a year."""

    async def get_response(self, path, scope):
        response = await super().get_response(path, scope)
        if response.status_code == 200:
            response.headers["Cache-Control"] = "public, max-age=31536000, immutable"
        return response


async def sweep_holds_forever(district: District, every: float = 30) -> None:
    """Give back the places of expired holds, so availability pages count them free again."""
    while True:
        await asyncio.sleep(every)
        try:
            await engine.sweep_expired_holds(district.clock.now())
        except Exception:  # the next round tries again; a sweep is never urgent
            log.exception("sweeping expired holds failed")


async def healthz(request):
    await ping()
    return PlainTextResponse("ok")


ROUTES = [
    Route("/", public.start_page, name="start"),
    Route("/healthz", healthz, name="healthz"),
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
    Route("/staff", staff.staff_home, name="staff"),
    Route("/staff/login", staff.staff_login, methods=["POST"], name="staff_login"),
    Route("/staff/logout", staff.staff_logout, methods=["POST"], name="staff_logout"),
    *admin.ROUTES,
    *callcentre.ROUTES,
    *site.ROUTES,
    Mount("/static", app=CachedStatic(directory=STATIC_DIR), name="static"),
]


def post_paths(routes) -> set[str]:
    return {r.path for r in routes if isinstance(r, Route) and "POST" in (r.methods or ())}


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
        sweeper = asyncio.create_task(sweep_holds_forever(district))
        try:
            yield
        finally:
            sweeper.cancel()
            await admin.imports.stop_imports()  # each run marked failed, with its rows written so far
            if manage_db:
                await close_db()

    app = Starlette(
        debug=settings.debug,
        routes=ROUTES,
        lifespan=lifespan,
        exception_handlers={HTTPException: errors.http_error, 500: errors.server_error},
        middleware=[
            Middleware(SecurityHeaders, https=settings.https),
            Middleware(BodyGuard, refuse=errors.refuse, uploads=admin.UPLOADS),
            Middleware(csrf, secret=settings.secret_key, post_paths=post_paths(ROUTES),
                       https=settings.https, refuse=errors.refuse),
            Middleware(GZipMiddleware, minimum_size=500),
            Middleware(
                SessionMiddleware, secret_key=settings.secret_key, session_cookie="session",
                max_age=4 * 3600, same_site="lax", https_only=settings.https,
            ),
        ],
    )
    app.state.settings = settings
    app.state.district = district
    app.state.limits = RateLimits(rate_limit_rules(settings), redis_url=settings.redis_url,
                                  prefix=settings.redis_prefix)
    return app


def app_factory():
    """Entry point for uvicorn --factory (one call per worker process)."""
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s %(message)s")
    return create_app()
