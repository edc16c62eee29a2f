"""Shared fixtures and constants: one test clock, a fresh database per test (SQLite, and
PostgreSQL when TEST_POSTGRES_URL is set), the district and an HTTP client on the app."""
from __future__ import annotations

import datetime as dt
import logging
import os
import shutil
import tempfile
from pathlib import Path
from urllib.parse import urlsplit

import pytest
from argon2 import PasswordHasher
from tortoise.backends.base.executor import EXECUTOR_CACHE

from models.clock import TZ, FixedClock
from models.db.setup import close_db, init_db
from models.people.pii import Vault
from models.staff import accounts

# Staff passwords hashed with argon2's cheapest parameters in the tests' own process (a hash of
# the shipped parameters costs 0.3 s of CPU; the suite makes and checks thousands), as Django's
# tests swap in a fast hasher. A hash carries its parameters: servers started by the tests check
# these at their cost too. The shipped parameters: tests/test_staff_auth.py.
accounts.use_hasher(PasswordHasher(time_cost=1, memory_cost=8, parallelism=1))

TEST_SECRET = "test-secret-key-not-for-production"
VAULT = Vault(TEST_SECRET)  # the keys every test's district uses
# Under pytest-xdist each worker (gw0, gw1 …) has a PostgreSQL database of its own, named from
# the worker id beside TEST_POSTGRES_URL's, so workers never empty each other's tables.
WORKER = os.environ.get("PYTEST_XDIST_WORKER", "")


def _worker_url(url: str) -> str:
    if not url or not WORKER:
        return url
    parts = urlsplit(url)
    return parts._replace(path=f"{parts.path}_{WORKER}").geturl()


PG_URL = _worker_url(os.environ.get("TEST_POSTGRES_URL", ""))
ARTIFACTS = Path(__file__).resolve().parent.parent / "test-artifacts"

DB_BACKENDS = ["sqlite"] + (["postgres"] if PG_URL else [])

# The moment most tests live in: a Thursday morning, before the first time window of the day.
NOW = dt.datetime(2021, 7, 1, 8, 0, tzinfo=TZ)
TODAY = NOW.date()
BASE_URL = "http://testserver"


@pytest.fixture
def anyio_backend():
    return "asyncio"


@pytest.fixture
def clock() -> FixedClock:
    """The test clock, at NOW; move it with clock.advance(minutes=6) or set clock.moment."""
    return FixedClock(NOW)


class _Everything(logging.Handler):
    """Keeps every log line of the suite, to be searched for personal data at the end."""

    def __init__(self):
        super().__init__(logging.DEBUG)
        self.lines: list[str] = []

    def emit(self, record):
        try:
            self.lines.append(self.format(record))
        except Exception:  # a record that cannot be formatted is not ours to judge
            pass


SUITE_LOG = _Everything()


def pytest_collection_modifyitems(config, items):
    """The longest first: real-server tests, then browser tests, then the rest (a stable sort,
    so each file keeps its order). Under pytest-xdist the workers then end together, instead of
    one of them starting a rush of 400 residents alone when everything else is done."""
    # A module with browser tests has its other tests run just before them, never after: the
    # module-scoped browser (Playwright's sync API) runs an event loop while it lives, and an
    # async test of the same module run after a browser test, before the module ends, could not
    # start its own loop (seen running such a file alone).
    with_browser = {item.module for item in items if item.get_closest_marker("browser")}

    def weight(item) -> tuple[int, int]:
        if item.get_closest_marker("slow"):
            return 0, 0
        if item.module in with_browser:
            return 1, 1 if item.get_closest_marker("browser") else 0
        return 2, 0

    items.sort(key=weight)


def _create_worker_database(url: str) -> None:
    """Create this worker's PostgreSQL database when it does not exist yet."""
    import asyncio

    import asyncpg

    async def create():
        parts = urlsplit(url)
        name = parts.path.lstrip("/")
        admin = parts._replace(path="/postgres").geturl().replace("postgres://", "postgresql://", 1)
        conn = await asyncpg.connect(admin)
        try:
            if not await conn.fetchval("SELECT 1 FROM pg_database WHERE datname = $1", name):
                await conn.execute(f'CREATE DATABASE "{name}"')
        finally:
            await conn.close()

    asyncio.run(create())


def pytest_configure(config):
    logging.getLogger().addHandler(SUITE_LOG)
    logging.getLogger().setLevel(logging.DEBUG)
    if WORKER and PG_URL:
        _create_worker_database(PG_URL)
    if not WORKER:  # the controller (or a run without workers): a clean slate for the logs
        ARTIFACTS.mkdir(exist_ok=True)
        for old in ARTIFACTS.glob("inprocess-*.log"):
            old.unlink()


def pytest_sessionfinish(session, exitstatus):
    """Fail the run when any log of the suite (in-process or a server's) holds a full ID or phone.

    A worker writes its in-process log to a file; the controller (or a run without workers)
    reads every worker's file and every server's log, once every worker has finished."""
    from tests.pii_scan import find_personal_numbers

    if WORKER:
        ARTIFACTS.mkdir(exist_ok=True)
        (ARTIFACTS / f"inprocess-{WORKER}.log").write_text("\n".join(SUITE_LOG.lines))
        return
    texts = {"in-process log": "\n".join(SUITE_LOG.lines)}
    for path in [*ARTIFACTS.glob("inprocess-*.log"), *ARTIFACTS.glob("server-*.log")]:
        texts[path.name] = path.read_text(errors="replace")
    leaks = {name: found for name, t in texts.items() if (found := find_personal_numbers(t))}
    if leaks:
        print(f"\nPERSONAL DATA IN LOGS: {leaks}")
        session.exitstatus = 1


_pg_schema_current = False  # the PostgreSQL test database holds today's schema (migrated once)
_sqlite_template: Path | None = None  # a migrated SQLite file, copied for each test


async def reset_postgres(url: str) -> None:
    """Drop everything: the next process to start on it migrates it from nothing."""
    import asyncpg

    global _pg_schema_current
    _pg_schema_current = False
    conn = await asyncpg.connect(url.replace("postgres://", "postgresql://", 1))
    try:
        await conn.execute("DROP SCHEMA public CASCADE; CREATE SCHEMA public;")
    finally:
        await conn.close()


async def _empty_postgres(url: str) -> None:
    """Every table emptied and every id counting from 1 again, the schema migrated once per run:
    as fresh as a new database, in a few milliseconds instead of a second of migrations."""
    import asyncpg

    global _pg_schema_current
    if not _pg_schema_current:
        await reset_postgres(url)
        EXECUTOR_CACHE.clear()
        await init_db(url)
        await close_db()
        _pg_schema_current = True
        return
    conn = await asyncpg.connect(url.replace("postgres://", "postgresql://", 1))
    try:
        tables = await conn.fetch("SELECT tablename FROM pg_tables WHERE schemaname = 'public' "
                                  "AND tablename <> 'tortoise_migrations'")
        names = ", ".join(f'"{t["tablename"]}"' for t in tables)
        await conn.execute(f"TRUNCATE {names} RESTART IDENTITY CASCADE")
    finally:
        await conn.close()


async def _fresh_sqlite(path: Path) -> None:
    """A copy of one migrated file: a new database without running the migrations again."""
    global _sqlite_template
    if _sqlite_template is None:
        template = Path(tempfile.mkdtemp(prefix="booking-template-")) / "template.sqlite3"
        EXECUTOR_CACHE.clear()
        await init_db(f"sqlite://{template}")
        await close_db()  # the last connection closed: the WAL is folded into the file
        _sqlite_template = template
    shutil.copyfile(_sqlite_template, path)


@pytest.fixture(params=DB_BACKENDS)
async def db_url(request, tmp_path):
    """A fresh, empty, initialised database; yields its URL."""
    if request.param == "postgres":
        await _empty_postgres(PG_URL)
        url = PG_URL
    else:
        await _fresh_sqlite(tmp_path / "test.sqlite3")
        url = f"sqlite://{tmp_path}/test.sqlite3"
    # Tortoise caches SQL per connection name, whatever the dialect: start clean for each engine.
    EXECUTOR_CACHE.clear()
    await init_db(url, migrate_schema=False)
    yield url
    await close_db()


@pytest.fixture
async def db(db_url):
    """Same as db_url, for tests that only need the database to be there."""
    return db_url


@pytest.fixture
def settings(db_url):
    from web.settings import Settings

    return Settings(database_url=db_url, secret_key=TEST_SECRET, base_url=BASE_URL)


@pytest.fixture
def district(settings, clock):
    """The rule book, keys and clock, as create_app and run.py build them."""
    from web.settings import build_district

    return build_district(settings, clock=clock)


@pytest.fixture
async def client(settings, clock):
    """An httpx client on the app (the db fixture already opened the database)."""
    import httpx

    from web.app import create_app

    app = create_app(settings, manage_db=False, clock=clock)
    transport = httpx.ASGITransport(app=app, client=("203.0.113.7", 5000))
    async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as c:
        c.app = app
        yield c


@pytest.fixture(scope="module")
def browser():
    """Debian's Chromium under Playwright, for one module's browser tests.

    Per module, and requested after the module's data fixture: Playwright's sync API runs an
    event loop, and seeding the database with asyncio.run() cannot happen while it runs."""
    sync_api = pytest.importorskip("playwright.sync_api")
    from tests.realserver import launch

    with sync_api.sync_playwright() as p:
        b = launch(p)
        yield b
        b.close()
