"""Database start-up: Tortoise config (SQLite PRAGMAs, BEGIN IMMEDIATE), migrations, init."""
from __future__ import annotations

import os
import sqlite3
from pathlib import Path
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

from tortoise import Tortoise, connections
from tortoise.migrations.api import migrate
from tortoise.backends.base.config_generator import generate_config

MODULES = {"models": ["models.db.tables"]}
MIGRATIONS = "models.db.migrations"

# Sqlite: WAL (Tortoise's default), a busy timeout so concurrent writers wait instead of failing,
# and full fsync so a booking the resident saw confirmed survives a crash.
SQLITE_PRAGMAS = {"busy_timeout": "10000", "synchronous": "FULL"}

# How long a PostgreSQL server may take to accept a connection before a command gives up.
CONNECT_TIMEOUT_SECONDS = 5.0


class DatabaseUnusable(Exception):
    """DATABASE_URL names a database that cannot be used: no file can be made or opened there, or
    the server does not answer. The message is one line, without the URL's password."""


def is_sqlite(url: str) -> bool:
    return url.startswith("sqlite://")


def with_sqlite_pragmas(url: str) -> str:
    """Add our PRAGMAs to a sqlite URL (Tortoise turns URL parameters into PRAGMAs)."""
    if not is_sqlite(url) or ":memory:" in url:
        return url
    # Not urlsplit/urlunsplit: they turn sqlite:////srv/x (an absolute path) into sqlite://srv/x.
    base, _, query = url.partition("?")
    params = {**SQLITE_PRAGMAS, **dict(parse_qsl(query))}
    return f"{base}?{urlencode(params)}"


def sqlite_file(url: str) -> Path:
    """The file of a sqlite:// URL (sqlite://data/x is relative, sqlite:///srv/x absolute)."""
    return Path(url.removeprefix("sqlite://").split("?")[0])


def tortoise_config(url: str) -> dict:
    """Tortoise's config for the URL; SQLite gets our BEGIN IMMEDIATE backend and PRAGMAs."""
    config = generate_config(with_sqlite_pragmas(url), app_modules=MODULES)
    config["apps"]["models"]["migrations"] = MIGRATIONS
    if is_sqlite(url):
        config["connections"]["default"]["engine"] = "models.db.sqlite_immediate"
    return config


async def init_db(url: str, *, migrate_schema: bool = True) -> None:
    """Connect Tortoise to `url`, first bringing the schema up to date (models/db/migrations/)."""
    if ":memory:" in url:
        # Migrations and the app would each get their own empty in-memory database.
        raise ValueError("in-memory SQLite is not supported: use a file, sqlite://path/to/db.sqlite3")
    # Before Tortoise touches it: Tortoise 1.1.9 keeps its connection lock when opening the file
    # fails, and the migration that follows waits on that lock for ever (issue 22).
    if is_sqlite(url):
        _usable_sqlite_file(sqlite_file(url))
    else:
        await _postgres_answers(url)
    if migrate_schema:
        await migrate(config=tortoise_config(url))
    await Tortoise.init(config=tortoise_config(url), _enable_global_fallback=True)
    from . import fast  # imports Tortoise's fields: not needed before this point

    fast.forget_loaders()


def _usable_sqlite_file(path: Path) -> None:
    """Make (or find) the SQLite file and open it once; else DatabaseUnusable saying why."""
    if path.is_dir():
        raise DatabaseUnusable(f"{path} is a folder, not a database file")
    try:
        _private_sqlite_file(path)
    except IsADirectoryError:
        raise DatabaseUnusable(f"{path} is a folder, not a database file") from None
    except OSError as exc:
        raise DatabaseUnusable(f"cannot create {exc.filename or path}: {exc.strerror}") from None
    folder = path.parent
    if not os.access(folder, os.W_OK | os.X_OK):
        raise DatabaseUnusable(f"the folder {folder} is not writable (SQLite writes its journal beside the file)")
    if not os.access(path, os.R_OK | os.W_OK):
        raise DatabaseUnusable(f"{path} cannot be read and written by this user")
    try:
        probe = sqlite3.connect(path, timeout=1)
        try:
            probe.execute("PRAGMA schema_version").fetchone()
        finally:
            probe.close()
    except sqlite3.OperationalError as exc:
        if "locked" not in str(exc):  # a database busy with another writer is usable
            raise DatabaseUnusable(f"{path}: {exc}") from None
    except sqlite3.DatabaseError as exc:
        raise DatabaseUnusable(f"{path}: {exc}") from None


async def _postgres_answers(url: str) -> None:
    """Connect once, within CONNECT_TIMEOUT_SECONDS; else DatabaseUnusable with the host and why."""
    import asyncio

    import asyncpg

    parts = urlsplit(url)
    # Tortoise's own parameters (maxsize=…) are no PostgreSQL settings: only sslmode goes along.
    query = urlencode([(k, v) for k, v in parse_qsl(parts.query) if k == "sslmode"])
    dsn = urlunsplit(parts._replace(scheme="postgresql", query=query))
    where = parts.hostname or "the local socket"
    if parts.port:
        where += f":{parts.port}"
    try:
        conn = await asyncio.wait_for(asyncpg.connect(dsn, timeout=CONNECT_TIMEOUT_SECONDS),
                                      CONNECT_TIMEOUT_SECONDS + 1)
    except (asyncio.TimeoutError, TimeoutError):
        raise DatabaseUnusable(f"PostgreSQL at {where} did not answer within "
                               f"{CONNECT_TIMEOUT_SECONDS:.0f} seconds") from None
    except (OSError, asyncpg.PostgresError, asyncpg.InterfaceError, ValueError) as exc:
        if isinstance(exc, OSError) and exc.errno:  # not asyncio's "Connect call failed (…)"
            reason = os.strerror(exc.errno)
        else:
            reason = (str(exc) or type(exc).__name__).splitlines()[0]
        if parts.password:
            reason = reason.replace(parts.password, "***")
        raise DatabaseUnusable(f"PostgreSQL at {where}: {reason}") from None
    await conn.close()


def _private_sqlite_file(path: Path) -> None:
    """A new SQLite database is created 0600 in a folder made 0700 (it holds every resident):
    SQLite gives its -wal and -shm files the database file's mode. One already there is left as
    it is (`run.py` also starts with umask 077)."""
    if not path.parent.is_dir():
        path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    try:
        os.close(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600))
    except FileExistsError:
        pass


async def ping() -> None:
    """Ask the database something trivial: raises when it does not answer."""
    await connections.get("default").execute_query("SELECT 1")


async def close_db() -> None:
    await Tortoise.close_connections()


# For Tortoise's own CLI: `tortoise -c models.db.setup.TORTOISE_ORM makemigrations`.
TORTOISE_ORM = tortoise_config("sqlite://:memory:")
