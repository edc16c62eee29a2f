"""A write transaction written once as a sequence of SQL statements, run whole in one go.

Under a rush every booking and hold is a write transaction, and on SQLite only one runs at a
time. Run through Tortoise, each of its statements was a trip to aiosqlite's thread and back,
and between two statements the transaction waited for a turn of an event loop busy with other
residents' pages, holding the write lock all along: a hold of five statements kept the lock for
tens of milliseconds, and "choose a window" and "confirm" queued behind each other (300+ ms at
the median, bench/RESULTS.md). Here the transaction is a generator that yields its statements
(`Rows` for what it reads, `Count` for what it changes, `insert()` for a new row) and receives
their answers; the driver for the database runs it:

- SQLite: the whole generator runs on the database connection's own thread, BEGIN IMMEDIATE to
  COMMIT, in one hop from the event loop (under the client's lock, as Tortoise's transactions
  take it), so the write lock is held for the statements' own time only;
- PostgreSQL: statement by statement in a Tortoise transaction on the same connection pool.

So the logic of a transaction is written once for both databases; only plain values go in as
parameters (int, str, bool, None, date, aware datetime), `?` as placeholders. An exception
raised by the generator rolls the transaction back and reaches the caller; a unique constraint
broken is Tortoise's IntegrityError on both.
"""
from __future__ import annotations

import asyncio
import sqlite3
from functools import lru_cache
from typing import Any, Generator, NamedTuple, TypeVar

from tortoise import timezone
from tortoise.exceptions import IntegrityError
from tortoise.fields.data import DatetimeField
from tortoise.models import Model
from tortoise.transactions import in_transaction

from . import dialect, fast

T = TypeVar("T")


class Rows(NamedTuple):
    """A statement whose rows (tuples) come back: SELECT, or a write with RETURNING."""

    sql: str
    params: list


class Count(NamedTuple):
    """A statement whose count of rows changed comes back: UPDATE or DELETE."""

    sql: str
    params: list


Work = Generator["Rows | Count", Any, T]


@lru_cache(maxsize=32)
def _shape(model: type[Model]) -> tuple[str, tuple[str, ...], tuple[tuple[object, bool], ...]]:
    """The INSERT of a model's row (its columns but the generated id, RETURNING the id), and each
    column's default: (value, whether it is the time of the insert)."""
    meta = model._meta
    columns = tuple(c for name, c in meta.fields_db_projection.items() if name != meta.pk_attr)
    defaults = []
    for name in (n for n in meta.fields_db_projection if n != meta.pk_attr):
        field = meta.fields_map[name]
        if isinstance(field, DatetimeField) and (field.auto_now or field.auto_now_add):
            defaults.append((None, True))
            continue
        default = field.default() if callable(field.default) else field.default
        defaults.append((field.to_db_value(default, model) if default is not None else None, False))
    names = ", ".join(f'"{c}"' for c in columns)
    sql = (f'INSERT INTO "{meta.db_table}" ({names}) VALUES ({", ".join("?" for _ in columns)}) '
           f'RETURNING "{meta.db_pk_column}"')
    return sql, columns, tuple(defaults)


def insert(model: type[Model], row: dict) -> Rows:
    """The statement that inserts one row of `model` ({column: value}; a column left out takes
    its default, an auto_now(_add) time the time now) and returns its id."""
    sql, columns, defaults = _shape(model)
    now = None
    params = []
    for column, (default, is_now) in zip(columns, defaults):
        if column in row:
            params.append(row[column])
        elif is_now:
            now = now or timezone.now()
            params.append(now)
        else:
            params.append(default)
    return Rows(sql, params)


async def run(work: "Work[T]", using_db=None) -> T:
    """Run the transaction `work` (a started generator function's generator) and return what it
    returns."""
    client = fast.db(using_db)
    if dialect.is_sqlite(client):
        return await _group(client).run(work)
    async with in_transaction() as conn:
        return await run_on(conn, work)


async def run_on(conn, work: "Work[T]") -> T:
    """Run `work` statement by statement on `conn`, inside the transaction the caller has open
    there (PostgreSQL's way for every unit; on SQLite, a unit that belongs to a larger Tortoise
    transaction: a capacity raise and the offers of its new places)."""
    numbered = not dialect.is_sqlite(conn)
    answer = None
    while True:
        try:
            step = work.send(answer)
        except StopIteration as done:
            return done.value
        sql = dialect.numbered(step.sql) if numbered else step.sql
        if isinstance(step, Rows):
            answer = [tuple(row.values()) for row in await conn.execute_query_dict(sql, step.params)]
        else:
            answer = (await conn.execute_query(sql, step.params))[0]


class GroupCommit:
    """SQLite's units, one after another on the connection's thread, several to a COMMIT.

    A COMMIT waits for the disk (synchronous=FULL: a confirmed booking survives a power cut),
    and on a busy disk that wait, not the statements, bounded the bookings a second. Units that
    arrive while a COMMIT is under way are run together next, in order, each inside its own
    SAVEPOINT (a unit that fails is rolled back alone, its exception handed to its caller), then
    committed at once: each caller hears back only after the COMMIT that made its unit durable.
    Run one after another, each unit sees everything the ones before it wrote, exactly as if each
    had had its own transaction."""

    def __init__(self, client):
        self.client = client
        self.waiting: list[tuple[Work, asyncio.Future]] = []
        self.draining = False

    async def run(self, work: "Work[T]") -> T:
        future = asyncio.get_running_loop().create_future()
        self.waiting.append((work, future))
        if not self.draining:
            self.draining = True
            asyncio.get_running_loop().create_task(self._drain())
        return await future

    async def _drain(self) -> None:
        try:
            while self.waiting:
                batch, self.waiting = self.waiting, []
                try:
                    if self.client._connection is None:  # Tortoise connects on first use
                        await self.client.create_connection(with_db=True)
                    async with self.client._lock:  # as Tortoise's transactions and queries take it
                        connection = self.client._connection  # aiosqlite: its thread owns it
                        answers = await connection._execute(_run_here, connection._conn,
                                                            [work for work, _ in batch])
                except BaseException as exc:  # the COMMIT (or the connection) failed: all of them
                    for _, future in batch:
                        if not future.done():
                            future.set_exception(exc)
                    if isinstance(exc, asyncio.CancelledError):
                        raise
                    continue
                for (_, future), (ok, value) in zip(batch, answers):
                    if not future.done():  # its caller may have gone (cancelled)
                        future.set_result(value) if ok else future.set_exception(value)
        finally:
            self.draining = False


_groups: dict[int, tuple[object, GroupCommit]] = {}


def _group(client) -> GroupCommit:
    kept = _groups.get(id(client))
    if kept is None or kept[0] is not client:
        kept = _groups[id(client)] = (client, GroupCommit(client))
    return kept[1]


def _run_here(raw: sqlite3.Connection, works: list) -> list[tuple[bool, object]]:
    """The SQLite driver, on the connection's thread (autocommit mode: the transaction is ours):
    each unit in a SAVEPOINT, then one COMMIT. (True, result) or (False, exception) each."""
    answers: list[tuple[bool, object]] = []
    raw.execute("BEGIN IMMEDIATE")
    try:
        for work in works:
            raw.execute("SAVEPOINT unit")
            try:
                answers.append((True, _steps(raw, work)))
            except Exception as exc:
                raw.execute("ROLLBACK TO unit")
                error = IntegrityError(exc) if isinstance(exc, sqlite3.IntegrityError) else exc
                if error is not exc:
                    error.__cause__ = exc
                answers.append((False, error))
            raw.execute("RELEASE unit")
        raw.execute("COMMIT")
    except BaseException:
        if raw.in_transaction:
            raw.execute("ROLLBACK")
        raise
    return answers


def _steps(raw: sqlite3.Connection, work: "Work[T]") -> T:
    answer = None
    while True:
        try:
            step = work.send(answer)
        except StopIteration as done:
            return done.value
        cursor = raw.execute(step.sql, step.params)
        answer = [tuple(row) for row in cursor.fetchall()] if isinstance(step, Rows) else cursor.rowcount
