"""The benchmark's district: residents who just got their invitation SMS, into a new database.

    .venv/bin/python -m bench.dataset --url sqlite:///tmp/bench.sqlite3 --residents 200000

As of today (Beijing time), reproducible from --seed:

- `sites` sites over the 21 sub-districts; slots on the `days` days after today, four windows a
  day (scripts/district_data.py's), each with room for everyone: capacity enough for every
  resident of the site to book (about 45 places a window for 200,000 residents);
- residents eligible for their second dose: first dose 21 to 34 days ago (so none is late within
  the slots' days), a product from the rule book, the first-dose site by turns (`(id - 1) % sites`),
  invited this morning, no booking yet;
- one live personal link each. Links are stored as the SHA-256 of their token only, so the token
  is derived from the seed and the resident's id (`token_for`), as is the ID number
  (`id_number_for`): the load generator knows both without a file of secrets.

SQLite rows go in with plain sqlite3 executemany (scripts/district_data.py's fast connection);
PostgreSQL rows with COPY (asyncpg). The schema comes from the migrations (`init_db`) either way.
"""
from __future__ import annotations

import argparse
import asyncio
import base64
import datetime as dt
import hashlib
import math
import multiprocessing
import os
import random
import shutil
import sys
import time
from dataclasses import asdict, dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from models.clock import SystemClock  # noqa: E402
from models.db.setup import close_db, init_db, is_sqlite  # noqa: E402
from models.people import pii  # noqa: E402
from models.rules.tianhe import AREA_CODE, SUBDISTRICTS  # noqa: E402
from models.tokens import token_hash  # noqa: E402
from scripts.district_data import WINDOWS, fast_connection, fictional_name  # noqa: E402

VACCINES = ["北京生物", "武汉生物", "科兴", ""]  # all 21 to 56 days (config/vaccines.toml)
BIRTH_DAYS = 23_000  # birth dates 1940-01-01 onwards; ID numbers: (birth date, sequence) unique
CHUNK = 20_000

SITE_COLUMNS = ("id", "code", "name", "subdistrict", "address", "phone", "active")
SLOT_COLUMNS = ("id", "site_id", "day", "start", "end", "capacity", "booked", "held", "closed_reason")
RESIDENT_COLUMNS = (
    "id", "name", "id_hash", "id_cipher", "id_masked", "birth_year", "phone_hash", "phone_cipher",
    "phone_masked", "first_dose_date", "first_site_id", "vaccine", "subdistrict", "second_dose_date",
    "second_dose_site_id", "invited_at", "reminded_at", "lang", "created_at", "updated_at")
LINK_COLUMNS = ("id", "token_hash", "resident_id", "created_at", "expires_at", "revoked", "failures",
                "locked_until")


def token_for(seed: int, resident_id: int) -> str:
    """The raw link token of a resident: 22 URL-safe characters, like models/tokens.py's."""
    digest = hashlib.sha256(f"bench-link:{seed}:{resident_id}".encode()).digest()
    return base64.urlsafe_b64encode(digest[:16]).decode().rstrip("=")


def id_number_for(seed: int, resident_id: int) -> str:
    """The resident's (fictional, valid) ID number: one birth date and sequence per id."""
    born = dt.date(1940, 1, 1) + dt.timedelta(days=resident_id % BIRTH_DAYS)
    return pii.build_id_number(AREA_CODE, born, (resident_id // BIRTH_DAYS + seed) % 1000)


def phone_for(resident_id: int) -> str:
    return f"13{resident_id:09d}"


@dataclass(frozen=True)
class Dataset:
    url: str
    residents: int
    sites: int
    days: int
    capacity: int
    seed: int
    today: str
    seconds: float = 0.0
    from_cache: bool = False

    def summary(self) -> dict:
        return asdict(self)


def _cache_key(*params) -> str:
    """The parameters and the migrations (a new one changes the schema): a name for the file."""
    h = hashlib.sha256(repr(params).encode())
    for path in sorted((ROOT / "models" / "db" / "migrations").glob("*.py")):
        h.update(path.name.encode() + path.read_bytes())
    return "bench-" + h.hexdigest()[:20]


def default_capacity(residents: int, sites: int, days: int) -> int:
    """Places per window so that every resident of a site could book there, with a margin."""
    per_site = math.ceil(residents / sites)
    return max(5, math.ceil(1.1 * per_site / (days * len(WINDOWS))))


def _resident_batch(chunk) -> list[tuple]:
    """The rows of residents first..last-1 (their names from a random generator of their own)."""
    first, last, sites, seed, today, secret_key, text, invited, created, subs = chunk
    vault, rng = pii.Vault(secret_key), random.Random(f"{seed}:{first}")
    day = (lambda d: d.isoformat()) if text else (lambda d: d)
    batch = []
    for rid in range(first, last):
        number, phone = id_number_for(seed, rid), phone_for(rid)
        site = (rid - 1) % sites + 1
        born = dt.date(1940, 1, 1) + dt.timedelta(days=rid % BIRTH_DAYS)
        batch.append((
            rid, fictional_name(rng), vault.keyed_hash(number), vault.encrypt(number),
            pii.mask_id(number), born.year, vault.keyed_hash(phone), vault.encrypt(phone),
            pii.mask_phone(phone), day(today - dt.timedelta(days=21 + rid % 14)), site,
            VACCINES[rid % len(VACCINES)], subs[site], None, None, invited, None, "zh",
            created, created))
    return batch


def _rows(residents: int, sites: int, days: int, capacity: int, seed: int, today: dt.date,
          secret_key: str, text: bool):
    """(table, columns, row batches) in insertion order; dates and times as text for SQLite."""
    day = (lambda d: d.isoformat()) if text else (lambda d: d)
    stamp = (lambda t: t.isoformat(sep=" ")) if text else (lambda t: t)
    now = dt.datetime.now(dt.timezone.utc).replace(microsecond=0)
    created, invited = stamp(now - dt.timedelta(hours=1)), stamp(now - dt.timedelta(minutes=30))
    expires = stamp(now + dt.timedelta(days=60))

    site_rows, subs = [], {}
    for n in range(1, sites + 1):
        sub = SUBDISTRICTS[(n - 1) % len(SUBDISTRICTS)]
        subs[n] = sub
        site_rows.append((n, f"B{n:03d}", f"{sub}第{(n - 1) // len(SUBDISTRICTS) + 1}接种点", sub,
                          f"天河区{sub}{n}号", f"020-8{n:07d}", True))
    yield "site", SITE_COLUMNS, [site_rows]

    slot_rows = []
    for n in range(1, sites + 1):
        for offset in range(1, days + 1):
            d = day(today + dt.timedelta(days=offset))
            for start, end in WINDOWS:
                slot_rows.append((len(slot_rows) + 1, n, d, start, end, capacity, 0, 0, ""))
    yield "slot", SLOT_COLUMNS, [slot_rows]

    def residents_batches():
        # The ciphers cost most of the time: the batches are made by every core at once, in order.
        chunks = [(at, min(at + CHUNK, residents + 1), sites, seed, today, secret_key, text,
                   invited, created, subs) for at in range(1, residents + 1, CHUNK)]
        if len(chunks) == 1:
            yield _resident_batch(chunks[0])
            return
        with multiprocessing.get_context("fork").Pool(min(len(chunks), os.cpu_count() or 1)) as pool:
            yield from pool.imap(_resident_batch, chunks)

    yield "resident", RESIDENT_COLUMNS, residents_batches()

    def link_batches():
        for at in range(1, residents + 1, CHUNK):
            yield [(rid, token_hash(token_for(seed, rid)), rid, created, expires, False, 0, None)
                   for rid in range(at, min(at + CHUNK, residents + 1))]

    yield "link", LINK_COLUMNS, link_batches()


async def _fresh_schema(url: str) -> None:
    """An empty database with today's schema: a new SQLite file, or PostgreSQL's public schema
    dropped (the database created if missing), then the migrations."""
    if is_sqlite(url):
        path = Path(url.removeprefix("sqlite://").split("?")[0])
        for suffix in ("", "-wal", "-shm"):
            Path(f"{path}{suffix}").unlink(missing_ok=True)
    else:
        import asyncpg

        dsn = url.replace("postgres://", "postgresql://", 1)
        try:
            conn = await asyncpg.connect(dsn)
        except asyncpg.InvalidCatalogNameError:
            name = dsn.rsplit("/", 1)[1].split("?")[0]
            admin = await asyncpg.connect(dsn.rsplit("/", 1)[0] + "/postgres")
            try:
                await admin.execute(f'CREATE DATABASE "{name}"')
            finally:
                await admin.close()
            conn = await asyncpg.connect(dsn)
        try:
            await conn.execute("DROP SCHEMA public CASCADE; CREATE SCHEMA public;")
        finally:
            await conn.close()
    await init_db(url)
    await close_db()


def _load_sqlite(url: str, tables) -> None:
    db = fast_connection(url)
    try:
        for table, columns, batches in tables:
            names = ", ".join(f'"{c}"' for c in columns)
            sql = f'INSERT INTO "{table}" ({names}) VALUES ({", ".join("?" * len(columns))})'
            db.execute("BEGIN")
            for batch in batches:
                db.executemany(sql, batch)
            db.execute("COMMIT")
        db.execute("ANALYZE")
    finally:
        db.close()


async def _load_postgres(url: str, tables) -> None:
    import asyncpg

    conn = await asyncpg.connect(url.replace("postgres://", "postgresql://", 1))
    try:
        for table, columns, batches in tables:
            async with conn.transaction():
                for batch in batches:
                    await conn.copy_records_to_table(table, records=batch, columns=list(columns))
            await conn.execute(f"SELECT setval(pg_get_serial_sequence('{table}', 'id'), "
                               f"(SELECT COALESCE(MAX(id), 1) FROM \"{table}\"))")
        await conn.execute("ANALYZE")
    finally:
        await conn.close()


def build(url: str, *, secret_key: str, residents: int = 200_000, sites: int = 100, days: int = 14,
          capacity: int | None = None, seed: int = 14, today: dt.date | None = None,
          cache_dir: str | Path | None = None, say=lambda text: None) -> Dataset:
    """Make the data set in a new database at `url` (whatever was there is dropped). SQLite with
    `cache_dir`: a copy of the file made earlier with the same parameters, schema and day, if
    there is one (and the file is kept there for next time)."""
    started = time.monotonic()
    today = today or SystemClock().today()
    capacity = capacity or default_capacity(residents, sites, days)
    cached = None
    if cache_dir and is_sqlite(url):
        cached = Path(cache_dir) / f"{_cache_key(residents, sites, days, capacity, seed, today, secret_key)}.sqlite3"
        if cached.is_file():
            path = Path(url.removeprefix("sqlite://").split("?")[0])
            path.parent.mkdir(parents=True, exist_ok=True)
            for suffix in ("-wal", "-shm"):
                Path(f"{path}{suffix}").unlink(missing_ok=True)
            shutil.copyfile(cached, path)
            seconds = round(time.monotonic() - started, 1)
            say(f"data set copied from {cached} ({seconds}s)")
            return Dataset(url, residents, sites, days, capacity, seed, today.isoformat(), seconds, True)
    asyncio.run(_fresh_schema(url))
    say(f"schema ready ({time.monotonic() - started:.1f}s)")
    sqlite = is_sqlite(url)
    tables = _rows(residents, sites, days, capacity, seed, today, secret_key, text=sqlite)
    if sqlite:
        _load_sqlite(url, tables)
    else:
        asyncio.run(_load_postgres(url, tables))
    if cached is not None:  # a copy of the finished file, renamed into place: never half a file
        cached.parent.mkdir(parents=True, exist_ok=True)
        partial = cached.with_suffix(f".{os.getpid()}.partial")
        shutil.copyfile(url.removeprefix("sqlite://").split("?")[0], partial)
        partial.replace(cached)
        # Yesterday's are no use (the key holds the day), and a 200,000 one is ~200 MB: keep the
        # newest eight of the last day.
        kept = sorted(cached.parent.glob("bench-*.sqlite3"), key=lambda f: f.stat().st_mtime, reverse=True)
        for n, old in enumerate(kept):
            if n >= 8 or time.time() - old.stat().st_mtime > 86_400:
                old.unlink(missing_ok=True)
    seconds = round(time.monotonic() - started, 1)
    say(f"{residents:,} residents, {sites} sites, {sites * days * len(WINDOWS):,} windows of "
        f"{capacity} places ({seconds}s)")
    return Dataset(url, residents, sites, days, capacity, seed, today.isoformat(), seconds)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--url", required=True, help="sqlite:///path/file.sqlite3 or postgres://…")
    parser.add_argument("--secret-key", default="bench-secret-key-not-for-production")
    parser.add_argument("--residents", type=int, default=200_000)
    parser.add_argument("--sites", type=int, default=100)
    parser.add_argument("--days", type=int, default=14)
    parser.add_argument("--capacity", type=int, default=None)
    parser.add_argument("--seed", type=int, default=14)
    parser.add_argument("--cache-dir", default=None, help="SQLite: keep (and reuse) the file there")
    args = parser.parse_args(argv)
    build(args.url, secret_key=args.secret_key, residents=args.residents, sites=args.sites,
          days=args.days, capacity=args.capacity, seed=args.seed, cache_dir=args.cache_dir,
          say=lambda text: print(text, file=sys.stderr, flush=True))
    return 0


if __name__ == "__main__":
    sys.exit(main())
