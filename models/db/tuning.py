"""The database set for a long bulk write (the imports of models/operations/imports/): a larger
page cache, commits that do not wait for the disk, and how many ids one look-up asks for. Its
PRAGMAs and SET LOCAL live here, behind models/db, as every query string does.
"""
from __future__ import annotations

import contextlib

from tortoise import connections

IN_CLAUSE = 500  # ids in one `IN (…)` look-up


@contextlib.asynccontextmanager
async def sqlite_bulk_settings(cache_kb: int, relaxed_commits: bool):
    """On SQLite, while a bulk write runs (restored after):
    - a larger page cache for the connection, at least cache_kb: new records go into three
      indexes at random places (the ID hash, the phone hash, the reports'), and past a few
      hundred thousand records the default 2 MB cache reads most of their pages again for every
      batch. Memory: at most cache_kb, whatever the file's size;
    - with relaxed_commits (the command line's import only), `synchronous = NORMAL`: in WAL mode
      a commit no longer waits for the disk; a power cut may lose the last batches, never the
      database's consistency, and importing the file again finishes the run (a row already
      written is unchanged).
    On another database, nothing (relax_commit() does the second, a transaction at a time)."""
    conn = connections.get("default")
    if conn.capabilities.dialect != "sqlite":
        yield
        return
    restore: list[str] = []
    try:
        _, rows = await conn.execute_query("PRAGMA cache_size")
        before = int(rows[0][0])
        # Set in pages, or as large already: leave it.
        if cache_kb and before < 0 and -before < cache_kb:
            await conn.execute_script(f"PRAGMA cache_size = -{int(cache_kb)}")
            restore.append(f"PRAGMA cache_size = {before}")
        if relaxed_commits:
            _, rows = await conn.execute_query("PRAGMA synchronous")
            before = int(rows[0][0])
            if before > 1:  # FULL (2) or EXTRA (3)
                await conn.execute_script("PRAGMA synchronous = NORMAL")
                restore.append(f"PRAGMA synchronous = {before}")
        yield
    finally:
        for statement in restore:
            with contextlib.suppress(Exception):
                await conn.execute_script(statement)


async def relax_commit(conn) -> None:
    """On PostgreSQL, as SQLite's synchronous = NORMAL (sqlite_bulk_settings) for the transaction
    `conn` only: its commit does not wait for the disk."""
    if conn.capabilities.dialect == "postgres":
        await conn.execute_script("SET LOCAL synchronous_commit = off")
