"""SQLite set-up: WAL, busy timeout, full sync, and write transactions that start IMMEDIATE."""
from __future__ import annotations

import sqlite3

import pytest
from tortoise import connections
from tortoise.transactions import in_transaction


@pytest.fixture
def sqlite_path(db_url):
    if not db_url.startswith("sqlite://"):
        pytest.skip("SQLite only")
    return db_url.removeprefix("sqlite://")


async def test_pragmas_for_concurrent_processes_and_durability(sqlite_path):
    conn = connections.get("default")
    values = {}
    for pragma in ("journal_mode", "busy_timeout", "synchronous"):
        _, rows = await conn.execute_query(f"PRAGMA {pragma}")
        values[pragma] = rows[0][0]
    assert values == {"journal_mode": "wal", "busy_timeout": 10000, "synchronous": 2}


async def test_a_transaction_holds_the_write_lock_from_begin(sqlite_path):
    async with in_transaction() as conn:
        await conn.execute_query("SELECT count(*) FROM slot")  # only a read so far
        other = sqlite3.connect(sqlite_path, timeout=0)
        try:
            with pytest.raises(sqlite3.OperationalError, match="locked"):
                other.execute("BEGIN IMMEDIATE")
        finally:
            other.close()
