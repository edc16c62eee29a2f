"""Counters kept in the database: the rate limits' (and the SMS caps' per-number row, below).

Rate-limit counters in the database (web/limits.py's store when no Redis is set), so every
worker process and every host on the same database counts together.

One row per key and window. Taking a hit is one statement, atomic on SQLite and PostgreSQL
alike: INSERT … ON CONFLICT DO UPDATE … WHERE hits < cap RETURNING hits. Two requests at the
same moment can never both take the last place: the second one finds the row the first one
wrote (PostgreSQL locks the row and checks the WHERE again on its newest version; SQLite has
one writer at a time), and gets no row back: refused.
"""
from __future__ import annotations

from functools import lru_cache

from . import dialect, fast
from .tables import Link, RateCounter, SmsQuota


@lru_cache(maxsize=1)
def _table() -> str:
    return fast.table(RateCounter)


async def counts(key: str, periods: list[int]) -> dict[int, int]:
    """The hits of the key in each of these windows (0 when none)."""
    marks = ", ".join("?" for _ in periods)
    found = await fast.rows(f"SELECT period, hits FROM {_table()} WHERE key = ? AND period IN ({marks})",
                            [key, *periods])
    return {int(row["period"]): int(row["hits"]) for row in found}


async def take(key: str, period: int, cap: int, expires: int) -> int | None:
    """Count one hit in the window if it holds fewer than `cap`: the new count, else None."""
    if cap < 1:
        return None
    conn = fast.db()
    rows = await conn.execute_query_dict(dialect.sql(conn, (
        f"INSERT INTO {_table()} (key, period, hits, expires) VALUES (?, ?, 1, ?) "
        f"ON CONFLICT (key, period) DO UPDATE SET hits = {_table()}.hits + 1 "
        f"WHERE {_table()}.hits < ? RETURNING hits")), [key, period, expires, cap])
    return int(rows[0]["hits"]) if rows else None


async def give_back(key: str, period: int) -> None:
    """Take one hit off the window (never below 0)."""
    conn = fast.db()
    await conn.execute_query(dialect.sql(conn, f"UPDATE {_table()} SET hits = hits - 1 "
                                        "WHERE key = ? AND period = ? AND hits > 0"), [key, period])


async def forget(before: int) -> None:
    """Delete the windows that no longer count."""
    conn = fast.db()
    await conn.execute_query(dialect.sql(conn, f"DELETE FROM {_table()} WHERE expires < ?"), [before])


# ---- the SMS caps' per-number row (models/messaging/caps.py)

@lru_cache(maxsize=1)
def _quota_upsert() -> str:
    # The no-op update is what takes the row's lock (and RETURNING its newest moments).
    table = fast.table(SmsQuota)
    return (f"INSERT INTO {table} (phone_hash, times, last_at) VALUES (?, '', ?) "
            f"ON CONFLICT (phone_hash) DO UPDATE SET phone_hash = excluded.phone_hash RETURNING times")


async def lock_quota(conn, phone_hash: str, moment: int) -> str:
    """The number's row of SMS moments (comma-separated seconds), created when new and locked for
    the transaction `conn` until it ends."""
    found = await conn.execute_query_dict(dialect.sql(conn, _quota_upsert()), [phone_hash, moment])
    return found[0]["times"] if found else ""


# ---- a personal link's wrong ID numbers (models/people/links.py: check_id)
# The two writes of every ID check, written once: Tortoise builds an UPDATE's SQL anew with
# pypika each time (about 0.3 ms of CPU each), the database answers in tens of µs. The same
# statements as `Link.filter(...).update(...)` sent; the rows changed.

def _link_table() -> str:
    return fast.table(Link)


async def take_link_try(link_id: int, now, max_failures: int) -> int:
    """Count one try against the link unless it is locked or out of tries: 1 when counted."""
    conn = fast.db()
    sql = (f'UPDATE {_link_table()} SET "failures" = "failures" + 1 WHERE ("locked_until" IS NULL OR '
           '"locked_until" <= ?) AND "id" = ? AND "failures" < ?')
    return (await conn.execute_query(dialect.sql(conn, sql), [dialect.moment(conn, now), link_id, max_failures]))[0]


async def give_link_tries_back(link_id: int) -> int:
    """The right number: the link's tries and lock cleared."""
    conn = fast.db()
    sql = f'UPDATE {_link_table()} SET "failures" = 0, "locked_until" = NULL WHERE "id" = ?'
    return (await conn.execute_query(dialect.sql(conn, sql), [link_id]))[0]

