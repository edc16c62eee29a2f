"""Many rows into one table in one statement (executemany), without a Model object per row.

The imports and the invitation batches write hundreds of thousands of rows: building a Tortoise
Model for each (its __init__, its field checks, to_db_value per column) cost more than the
database's own work. Rows here are plain dicts of values as they go to the database; the INSERT
is Tortoise's own for the model (same columns, same placeholders on SQLite and PostgreSQL).
"""
from __future__ import annotations

import datetime as dt
from typing import Iterable

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
            self.defaults.append((column, default))

    def values(self, row: dict) -> list:
        return [row[column] if column in row else default for column, default in self.defaults]

    async def insert(self, rows: Iterable[dict]) -> int:
        """Write the rows (one executemany); how many."""
        values = [self.values(row) for row in rows]
        if values:
            await self.conn.execute_many(self.sql, values)
        return len(values)
