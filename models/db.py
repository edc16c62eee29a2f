"""Database start-up: Tortoise init, schema, and the constraints Tortoise cannot declare."""
from __future__ import annotations

from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

from tortoise import Tortoise, connections
from tortoise.backends.base.config_generator import generate_config

MODULES = {"models": ["models.tables"]}

# Sqlite: WAL (Tortoise's default), a busy timeout so concurrent writers wait instead of failing,
# and full fsync so a booking the resident saw confirmed survives a crash.
SQLITE_PRAGMAS = {"busy_timeout": "10000", "synchronous": "FULL"}

# One active booking per person, enforced by the database on both engines.
ONE_ACTIVE_BOOKING = (
    "CREATE UNIQUE INDEX IF NOT EXISTS booking_one_active_per_resident "
    "ON booking (resident_id) WHERE status = 'active'"
)

SQLITE_CAPACITY_TRIGGERS = [
    f"""CREATE TRIGGER IF NOT EXISTS slot_capacity_{when}
    BEFORE {when.upper()} ON slot
    WHEN NEW.booked > NEW.capacity OR NEW.booked < 0
    BEGIN SELECT RAISE(ABORT, 'slot booked outside 0..capacity'); END"""
    for when in ("insert", "update")
]

PG_CAPACITY_CHECK = """
DO $$ BEGIN
  IF NOT EXISTS (SELECT 1 FROM pg_constraint WHERE conname = 'slot_booked_within_capacity') THEN
    ALTER TABLE slot ADD CONSTRAINT slot_booked_within_capacity
      CHECK (booked >= 0 AND booked <= capacity);
  END IF;
END $$;
"""


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
    if is_sqlite(url):
        config["connections"]["default"]["engine"] = "models.sqlite_immediate"
    return config


async def init_db(url: str, *, create_schema: bool = True) -> None:
    """Connect Tortoise to `url` and make sure the schema and its constraints exist."""
    if is_sqlite(url):
        path = url.removeprefix("sqlite://").split("?")[0]
        if path and path != ":memory:":
            from pathlib import Path

            Path(path).parent.mkdir(parents=True, exist_ok=True)
    await Tortoise.init(config=tortoise_config(url), _enable_global_fallback=True)
    if create_schema:
        await create_schema_objects(url)


async def create_schema_objects(url: str) -> None:
    """Create tables (if missing) and the extra constraints; safe to run repeatedly."""
    await Tortoise.generate_schemas(safe=True)
    conn = connections.get("default")
    await conn.execute_script(ONE_ACTIVE_BOOKING)
    if is_sqlite(url):
        for sql in SQLITE_CAPACITY_TRIGGERS:
            await conn.execute_script(sql)
    else:
        await conn.execute_script(PG_CAPACITY_CHECK)


async def close_db() -> None:
    await Tortoise.close_connections()
