"""What the backups ask of a database itself (models/operations/backup.py): SQLite's settings
on a file's connection and its integrity check, and which tables hold how many rows — on a
sqlite3 connection, or an asyncpg one for PostgreSQL. Table names are the callers' own
constants, never input.
"""
from __future__ import annotations

import sqlite3


def wait_for_locks(conn: sqlite3.Connection, ms: int) -> None:
    """Wait up to `ms` for another connection's lock instead of failing at once."""
    conn.execute(f"PRAGMA busy_timeout={int(ms)}")


def journal_mode(conn: sqlite3.Connection, mode: str) -> None:
    """DELETE: one self-contained file (no -wal beside it); WAL: as the service runs it."""
    if mode not in ("DELETE", "WAL"):
        raise ValueError(mode)
    conn.execute(f"PRAGMA journal_mode={mode}")


def integrity(conn: sqlite3.Connection) -> str:
    """SQLite's integrity check of the whole file: "ok", or what is wrong."""
    return conn.execute("PRAGMA integrity_check").fetchone()[0]


def sqlite_tables(conn: sqlite3.Connection) -> set[str]:
    return {r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type='table'")}


def sqlite_count(conn: sqlite3.Connection, table: str) -> int:
    return conn.execute(f'SELECT count(*) FROM "{table}"').fetchone()[0]


async def pg_tables(conn) -> set[str]:
    return {r["tablename"] for r in await conn.fetch(
        "SELECT tablename FROM pg_tables WHERE schemaname = current_schema()")}


async def pg_count(conn, table: str) -> int:
    return await conn.fetchval(f'SELECT count(*) FROM "{table}"')
