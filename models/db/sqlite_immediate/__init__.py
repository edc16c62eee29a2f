"""Tortoise's SQLite backend, with every transaction started as BEGIN IMMEDIATE.

Tortoise 1.1.9 starts transactions with a plain (deferred) BEGIN. A deferred transaction that
reads and then writes can fail at once with "database is locked" when another process wrote in
between, whatever the busy timeout. IMMEDIATE takes the write lock up front (waiting up to the
busy timeout for it), so each of our write transactions either runs whole or waits its turn.
"""
from __future__ import annotations

import sqlite3

from tortoise.backends.base.client import NestedTransactionContext, TransactionContext
from tortoise.backends.sqlite.client import (
    SqliteClient,
    SqliteTransactionContext,
    SqliteTransactionWrapper,
)
from tortoise.exceptions import TransactionManagementError


class ImmediateTransactionWrapper(SqliteTransactionWrapper):
    async def begin(self) -> None:
        try:
            await self._connection.commit()
            await self._connection.execute("BEGIN IMMEDIATE")
        except sqlite3.OperationalError as exc:
            raise TransactionManagementError(exc) from exc

    def _in_transaction(self) -> TransactionContext:
        return NestedTransactionContext(ImmediateTransactionWrapper(self))


class ImmediateSqliteClient(SqliteClient):
    def _in_transaction(self) -> TransactionContext:
        return SqliteTransactionContext(ImmediateTransactionWrapper(self), self._lock)


client_class = ImmediateSqliteClient
