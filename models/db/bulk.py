"""Many rows into one table in one statement (executemany), without a Model object per row;
and WriteBehind, which writes one batch while the next is worked out.

The imports and the invitation batches write hundreds of thousands of rows: building a Tortoise
Model for each (its __init__, its field checks, to_db_value per column) cost more than the
database's own work. Rows here are plain dicts of values as they go to the database; the INSERT
is Tortoise's own for the model (same columns, same placeholders on SQLite and PostgreSQL).
"""
from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
from typing import Awaitable, Callable, Iterable

from tortoise import timezone
from tortoise.fields.data import DatetimeField
from tortoise.models import Model


class Rows:
    """INSERT rows of `model` through the connection `conn` (a transaction's, usually).

    A row is {field name: value}; a field left out takes its default (None for a nullable one),
    an auto_now / auto_now_add time takes the time this object was made (one time for the
    batch). Values must already be what the column holds: str, int, date, bool, None, an aware
    datetime (as Tortoise passes them on). Foreign keys by their column: `resident_id`."""

    def __init__(self, model: type[Model], conn, now: dt.datetime | None = None):
        self.model, self.conn = model, conn
        executor = conn.executor_class(model=model, db=conn)
        self.columns: list[str] = list(executor.regular_columns)
        self.sql: str = executor.insert_query
        self.now = now or timezone.now()
        if timezone.is_naive(self.now):
            raise ValueError("an aware datetime is needed")
        fields = model._meta.fields_map
        self.defaults: list[tuple[str, object]] = []
        for column in self.columns:
            field = fields[column]
            if isinstance(field, DatetimeField) and (field.auto_now or field.auto_now_add):
                default = self.now
            else:  # a required column without a default (None) is given by the caller
                default = field.default() if callable(field.default) else field.default
                default = field.to_db_value(default, model) if default is not None else None
            if isinstance(default, dt.datetime) and conn.capabilities.dialect == "sqlite":
                # What the sqlite3 adapter Tortoise registers would make of it, once, not a row.
                default = default.isoformat(" ")
            self.defaults.append((column, default))

    def values(self, row: dict) -> list:
        return [row[column] if column in row else default for column, default in self.defaults]

    async def insert(self, rows: Iterable[dict]) -> int:
        """Write the rows (one executemany); how many."""
        values = [self.values(row) for row in rows]
        if values:
            await self.conn.execute_many(self.sql, values)
        return len(values)


class WriteBehind:
    """Write one batch while the next is worked out: the database's work overlaps Python's.

    `await add(write)` waits for the batch before it to be written, then starts write() (an
    async callable); its answer goes to on_written(answer) once it is done. So batches are
    written one after another, in order, each after the one before it is done, and at most one
    is being written. Used as `async with WriteBehind(on_written) as behind:`: leaving the block
    waits for the last write; leaving it by an exception lets the write under way end first
    (or, when the task is cancelled, cancels it too) and then raises. The imports
    (models/operations/imports/) and the invitation batches (invitations.py) both work so."""

    def __init__(self, on_written: Callable[[object], None] | None = None):
        self.on_written = on_written
        self.pending: asyncio.Future | None = None

    async def add(self, write: Callable[[], Awaitable[object]]) -> None:
        await self.wait()
        self.pending = asyncio.ensure_future(write())

    async def wait(self) -> None:
        """Wait for the write under way, if any, and hand its answer to on_written."""
        if self.pending is not None:
            task, self.pending = self.pending, None
            answer = await task
            if self.on_written is not None:
                self.on_written(answer)

    async def __aenter__(self) -> "WriteBehind":
        return self

    async def __aexit__(self, kind, exc, tb) -> None:
        if exc is None:
            await self.wait()
            return
        if self.pending is not None:  # the write under way ends first (or stops with us)
            if isinstance(exc, asyncio.CancelledError):
                self.pending.cancel()
            with contextlib.suppress(BaseException):
                await self.wait()
