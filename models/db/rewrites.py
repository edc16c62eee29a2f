"""Stored rows rewritten in place, many at a time: the key rotation's batches (every cipher and
look-up hash under an old key, models/operations/rotation.py) and the purge's erasure of
records no longer needed (models/operations/purge.py). Plain statements through the caller's
transaction `tx`, `?` placeholders made PostgreSQL's by models/db/dialect.py; the table and
column names are the callers' constants, never input.
"""
from __future__ import annotations

import datetime as dt

from tortoise import connections

from . import dialect


def _db():
    return connections.get("default")


# ---- the key rotation


async def count_rows(table: str) -> int:
    return (await _db().execute_query(f"SELECT count(*) AS n FROM {table}"))[1][0]["n"]


async def rows_after(tx, table: str, columns: list[str], last_id: int, limit: int) -> list[dict]:
    """The next `limit` rows of `table` (these columns) after the id `last_id`, in id order."""
    sql = f"SELECT {', '.join(columns)} FROM {table} WHERE id > ? ORDER BY id LIMIT {int(limit)}"
    return (await tx.execute_query(dialect.sql(tx, sql), [last_id]))[1]


async def update_by_id(tx, table: str, names: tuple[str, ...], values: list[list]) -> None:
    """Set these columns of rows by id: each of `values` is the new values in `names`' order,
    then the row's id."""
    sets = ", ".join(f"{n} = ?" for n in names)
    await tx.execute_many(dialect.sql(tx, f"UPDATE {table} SET {sets} WHERE id = ?"), values)


async def table_exists(name: str) -> bool:
    conn = _db()
    if dialect.is_sqlite(conn):
        sql = "SELECT 1 AS hit FROM sqlite_master WHERE type = 'table' AND name = ?"
    else:
        sql = "SELECT 1 AS hit FROM pg_tables WHERE schemaname = current_schema() AND tablename = ?"
    return bool((await conn.execute_query(dialect.sql(conn, sql), [name]))[1])


async def phones_texted_since(since: dt.datetime) -> list[str]:
    """The phone ciphers of the SMS queued since a moment (to a number still on record)."""
    conn = _db()
    rows = (await conn.execute_query(
        dialect.sql(conn, "SELECT DISTINCT phone_cipher FROM sms_message WHERE phone_hash <> '' "
                          "AND created_at >= ?"), [dialect.moment(conn, since)]))[1]
    return [row["phone_cipher"] for row in rows]


async def distinct_values(tx, table: str, column: str) -> list:
    return [row["h"] for row in (await tx.execute_query(f"SELECT DISTINCT {column} AS h FROM {table}"))[1]]


async def replace_values(tx, table: str, column: str, pairs: list[list]) -> None:
    """Each [new, old] of `pairs`: the column's value old becomes new."""
    await tx.execute_many(dialect.sql(tx, f"UPDATE {table} SET {column} = ? WHERE {column} = ?"), pairs)


# ---- the purge

# One statement for a batch (executemany): an ORM update per person made a million take half an
# hour. invited_at / reminded_at are set when empty, so that no invitation or reminder batch
# picks an erased record (its phone is gone).
ERASE_SQL = ("UPDATE resident SET name = ?, id_hash = ?, id_cipher = ?, id_masked = ?, "
             "phone_hash = '', phone_cipher = ?, phone_masked = ?, invited_at = COALESCE(invited_at, ?), "
             "reminded_at = COALESCE(reminded_at, ?) WHERE id = ?")


async def erase_residents(tx, rows: list[dict], when: dt.datetime) -> None:
    """Overwrite these residents' personal values: each row {id, name, id_hash, id_cipher,
    id_masked, phone_cipher, phone_masked}; `when` marks them invited and reminded if not yet."""
    moment = dialect.moment(tx, when)  # as Tortoise stores a datetime there
    await tx.execute_many(dialect.sql(tx, ERASE_SQL), [
        [r["name"], r["id_hash"], r["id_cipher"], r["id_masked"], r["phone_cipher"], r["phone_masked"],
         moment, moment, r["id"]] for r in rows])
