"""Database start-up: Tortoise config (SQLite PRAGMAs, BEGIN IMMEDIATE), migrations, init."""
from __future__ import annotations

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


def is_sqlite(url: str) -> bool:
    return url.startswith("sqlite://")


def with_sqlite_pragmas(url: str) -> str:
    """Add our PRAGMAs to a sqlite URL (Tortoise turns URL parameters into PRAGMAs)."""
    if not is_sqlite(url) or ":memory:" in url:
        return url
    parts = urlsplit(url)
    params = {**SQLITE_PRAGMAS, **dict(parse_qsl(parts.query))}
    return urlunsplit(parts._replace(query=urlencode(params)))


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
    if is_sqlite(url) and ":memory:" not in url:
        _private_sqlite_file(Path(url.removeprefix("sqlite://").split("?")[0]))
    if migrate_schema:
        await migrate(config=tortoise_config(url))
    await Tortoise.init(config=tortoise_config(url), _enable_global_fallback=True)
    from . import fast  # imports Tortoise's fields: not needed before this point

    fast.forget_loaders()


def _private_sqlite_file(path: Path) -> None:
    """A new SQLite database is created 0600 in a folder made 0700 (it holds every resident):
    SQLite gives its -wal and -shm files the database file's mode. One already there is left as
    it is (`run.py` also starts with umask 077)."""
    import os

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
